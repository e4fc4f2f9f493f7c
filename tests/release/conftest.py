"""`project`: a fresh synthetic project (tests/release/project.py) with its own sqlite MLflow registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
    return tmp_path
