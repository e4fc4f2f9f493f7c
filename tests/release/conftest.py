"""`project`: a fresh synthetic project (tests/release/project.py) with its own sqlite MLflow registry.

Its model files are not TorchScript, so the release's re-measurement (mlops/release/measure.py) is replaced by
`measured`: it agrees with eval/metrics.json unless a test sets `measured.scores`. tests/release/
test_measure.py measures a real trained model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops.release import measure
from mlops.report.scores import flat_scores
from tests.repo import ROOT, sh


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / ".gitignore").write_text("mlflow.db\nmlartifacts/\nmodel_store/\n.dvc/cache/\n")
    sh(["git", "init", "-q", "-b", "main"], tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    # Absolute: MLflow caches one store per URI, so a relative sqlite path would outlive the chdir.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setattr(measure, "measure", measured)
    measured.scores = None
    return tmp_path


def measured(params=None) -> measure.Measurement:
    """Stand-in for measure.measure: the report's own scores, or `measured.scores` when a test sets them."""
    import json

    reported = flat_scores(json.loads(Path("eval/metrics.json").read_text()))
    return measure.Measurement(dict(measured.scores if measured.scores is not None else reported))


measured.scores = None
