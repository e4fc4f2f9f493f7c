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


# The MLflow run that trained the model in artifacts/model. It lives OUTSIDE the DVC-tracked model folder
# (and is git-ignored): a run id differs on every retrain, and inside the folder it would change the
# folder's md5, so the same code, params and data would never give the same dvc.lock twice.
RUN_RECORD = Path("artifacts/train_run.json")


def write_run(run_id: str, experiment: str, model_file: Path) -> dict:
    """Record the training run, tied to the model bytes it produced (md5 of `model_file`)."""
    import hashlib
    import json

    record = {
        "tracking_uri": tracking_uri(),
        "experiment": experiment,
        "run_id": run_id,
        "model_md5": hashlib.md5(model_file.read_bytes()).hexdigest(),
    }
    RUN_RECORD.parent.mkdir(parents=True, exist_ok=True)
    RUN_RECORD.write_text(json.dumps(record, indent=2) + "\n")
    return record


def train_run(model_file: Path = Path("artifacts/model/model.pt"), record: Path = RUN_RECORD) -> dict:
    """The run that trained `model_file`, or {} when unknown.

    Unknown when no run was recorded here, or the record belongs to other bytes: a model restored from
    the DVC cache or a CI run (`mlops adopt`) was not trained by the run this machine last recorded.
    Models from before the record existed kept the run in meta.json's `mlflow` key; that is still read."""
    import hashlib
    import json

    if not model_file.exists():
        return {}
    if record.exists():
        found = json.loads(record.read_text())
        if found.get("model_md5") == hashlib.md5(model_file.read_bytes()).hexdigest():
            return found
        return {}
    meta = model_file.parent / "meta.json"
    return (json.loads(meta.read_text()).get("mlflow") or {}) if meta.exists() else {}
