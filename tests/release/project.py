"""Helpers for the release tests: a small synthetic project against a real sqlite MLflow registry.

The project holds what promotion reads: dvc.lock (train and evaluate outputs), the DVC cache's file list
for artifacts/model, the model files and eval/metrics.json, inside a git repository.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from mlops.release import artifacts, registry
from tests.repo import sh
from tests.schema import MODEL_NAME, PARAMS

REGISTERED = PARAMS.mlflow.registered_model  # the registry's model name, from params.yaml `name`
MAR = f"model_store/{MODEL_NAME}.mar"  # where `mlops archive` puts the champion's archive

# what train writes into meta.json and the archive requires: the task and the request schema
META = {
    "task": "classification",
    "features": ["a"],
    "classes": ["x", "y"],
    "schema": [{"name": "a", "type": "float"}],
}
GOOD = {"accuracy": 0.96, "precision": 0.95, "recall": 0.95, "f1": 0.95, "roc_auc": 0.99, "log_loss": 0.1}


def write_model(project: Path, weights: bytes, metrics: dict) -> None:
    """Write model files and metrics; record their md5s in dvc.lock and the DVC cache, as a repro would."""
    model_dir = project / "artifacts/model"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.pt").write_bytes(weights)
    (model_dir / "meta.json").write_text(json.dumps(META))
    (project / "eval").mkdir(exist_ok=True)
    (project / "eval/metrics.json").write_text(json.dumps(metrics))
    entries = [{"md5": artifacts.md5(f), "relpath": f.name} for f in sorted(model_dir.iterdir())]
    listing = json.dumps(entries).encode()
    digest = hashlib.md5(listing).hexdigest() + ".dir"
    cache = project / ".dvc/cache/files/md5" / digest[:2]
    cache.mkdir(parents=True, exist_ok=True)
    (cache / digest[2:]).write_bytes(listing)
    lock = {
        "schema": "2.0",
        "stages": {
            "train": {
                "cmd": "mlops train",
                "outs": [{"path": "artifacts/model", "hash": "md5", "md5": digest}],
            },
            "evaluate": {
                "cmd": "mlops evaluate",
                "outs": [
                    {
                        "path": "eval/metrics.json",
                        "hash": "md5",
                        "md5": artifacts.md5(project / "eval/metrics.json"),
                    }
                ],
            },
        },
    }
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))


def commit(project: Path, message: str) -> None:
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-q", "--allow-empty", "-m", message], project)


def champion(project: Path) -> str | None:
    from mlflow import MlflowClient

    from mlops.config import tracking

    client = MlflowClient(tracking_uri=tracking.tracking_uri())  # the test's own sqlite file
    found = registry._alias(client, REGISTERED, registry.CHAMPION)
    return None if found is None else str(found.version)


def promote_two(project: Path) -> None:
    """Version 1, then a better version 2, both promoted: v2 is champion and v1 the rollback target."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.97})
    commit(project, "model 2")
    registry.promote()
