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


def experiment_id(name: str) -> str:
    """Get or create the experiment; embedded stores keep artifacts in ./mlartifacts, not the cwd."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    location = DEFAULT_ARTIFACTS.resolve().as_uri() if is_embedded(uri) else None
    return mlflow.create_experiment(name, artifact_location=location)
