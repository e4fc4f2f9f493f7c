"""Promotion of a model trained on a swapped dataset: the champion's metrics are not its baseline.

Uses the release tests' synthetic project (tests/release/project.py) and a real sqlite MLflow registry.
"""

from __future__ import annotations

import json
import shutil

import pytest

from mlops.release import registry
from tests.release.project import GOOD, champion, commit, write_model
from tests.repo import ROOT, sh

BINARY = {"task": "classification", "label": "diagnosis", "classes": ["benign", "malignant"]}


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / ".gitignore").write_text("mlflow.db\nmlartifacts/\nmodel_store/\n.dvc/cache/\n")
    sh(["git", "init", "-q", "-b", "main"], tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_SHA", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


def test_new_classes_are_not_gated_against_the_champion(project):
    """0.05 below the champion's accuracy is refused on the same dataset (tests/release); with other
    classes it is a new dataset's first model: floors only, and the summary says why."""
    write_model(project, b"weights-1", {**GOOD, "dataset": BINARY})
    commit(project, "model 1")
    registry.promote()
    swapped = {**BINARY, "classes": ["adelie", "chinstrap", "gentoo"]}
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.91, "dataset": swapped})
    commit(project, "model 2: penguins")
    summary = project / "summary.md"
    assert registry.promote(summary=str(summary)) in (0, None)
    assert champion(project) == "2"
    text = summary.read_text()
    assert (
        "skipped: no comparable champion v1 baseline: the classes changed "
        "(benign, malignant → adelie, chinstrap, gentoo)" in text
    )
    assert "| min accuracy | PASS" in text


def test_the_same_dataset_is_still_gated(project):
    write_model(project, b"weights-1", {**GOOD, "dataset": BINARY})
    commit(project, "model 1")
    registry.promote()
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.91, "dataset": dict(BINARY)})
    commit(project, "model 2")
    with pytest.raises(registry.UserError, match="max regression accuracy"):
        registry.promote()
    assert champion(project) == "1"
    assert json.loads((project / "model_store/release.json").read_text())["version"] == "1"
