"""Bringing your own data is a data + config change only: no code edits (slow: real training)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.model.wine import use_wine
from tests.repo import copy_project, sh

pytestmark = pytest.mark.slow


def test_a_different_table_runs_the_whole_pipeline(tmp_path):
    repo = copy_project(tmp_path / "repo", tmp_path / "remote")
    params = use_wine(repo)  # 13 other columns, 3 classes, another label name, Parquet not CSV

    sh(["dvc", "repro"], repo)

    metrics = json.loads((repo / "eval/metrics.json").read_text())
    assert metrics["accuracy"] > 0.8 and 0 < metrics["roc_auc"] <= 1
    meta = json.loads((repo / "artifacts/model/meta.json").read_text())
    assert meta["features"] == list(params["data"]["features"])
    confusion = pd.read_csv(repo / "eval/plots/confusion.csv")
    assert len(confusion) == 9 and confusion["count"].sum() == len(
        pd.read_parquet(repo / "artifacts/prepared/test.parquet")
    )
    report = json.loads((repo / "reports/validation.json").read_text())
    assert report["ok"] and report["class_balance"] == {"cultivar_0": 59, "cultivar_1": 71, "cultivar_2": 48}
