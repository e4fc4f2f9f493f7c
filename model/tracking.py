"""MLflow connection. Default: a sqlite file and a local artifact folder (git-ignored), no server.

Set MLFLOW_TRACKING_URI (and the usual MLFLOW_* / AWS_* variables) to use a real tracking server;
no code changes.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACTS = Path("mlartifacts")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def is_embedded(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


def artifact_location() -> str | None:
    """Where a new experiment keeps artifacts: ./mlartifacts for embedded stores (not the cwd); a
    server decides for itself."""
    return DEFAULT_ARTIFACTS.resolve().as_uri() if is_embedded(tracking_uri()) else None


def experiment_id(name: str) -> str:
    """Get or create the experiment (created with `artifact_location()`)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    found = mlflow.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_location())
