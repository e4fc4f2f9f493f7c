"""A real table with unlabelled rows runs validate -> prepare -> train -> evaluate with no hand-cleaning
(slow: real training). Its labels are 15% missing, its bools are spelled YES/no/Y, and its date column
is declared `type: date`, as a user following the README would."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from model.examples import mixed_table
from tests.model.wine import swap_table
from tests.repo import copy_project, sh

pytestmark = pytest.mark.slow

FEATURES = {
    "island": {"type": "category"},
    "bill_length_mm": {"type": "float", "min": 0},
    "flipper_length_mm": {"type": "int", "min": 0},
    "body_mass_g": {"type": "float", "min": 0},
    "sex": {"type": "category"},
    "adult": {"type": "bool"},
    "observed": {"type": "date"},
}


def test_a_table_with_15_percent_unlabelled_rows_runs_the_pipeline(tmp_path):
    repo = copy_project(tmp_path / "repo", tmp_path / "remote")
    table = mixed_table(240, seed=5, unlabelled=0.15)
    rng = np.random.default_rng(0)
    table["adult"] = np.where(table["adult"] == "true", rng.choice(["YES", "y", "True"], 240), "no")
    unlabelled = int(table["species"].isna().sum())
    assert 0.1 < unlabelled / len(table) < 0.2
    data = {"label": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"], "missing": "impute"}
    params = swap_table(repo, table, "penguins.csv", "penguins", {**data, "features": FEATURES})
    params["train"].update(max_epochs=8)
    params["report"].update(resamples=200, slices=[{"column": "island"}], ig_steps=8)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    for stage in ("validate", "prepare", "train", "evaluate"):
        out = sh(["mlops", stage], repo, MLFLOW_TRACKING_URI=f"sqlite:///{repo}/mlflow.db")
        if stage == "validate":
            assert f"{unlabelled} of them without a label" in out.stdout

    report = json.loads((repo / "reports/validation.json").read_text())
    assert report["ok"] and report["label_missing"] == {"rows": unlabelled, "policy": "drop_row"}
    splits = [pd.read_parquet(repo / f"artifacts/prepared/{s}.parquet") for s in ("train", "val", "test")]
    assert sum(len(s) for s in splits) == len(table) - unlabelled
    meta = json.loads((repo / "artifacts/model/meta.json").read_text())
    assert {c["name"]: c["type"] for c in meta["schema"]}["observed"] == "date"
    metrics = json.loads((repo / "eval/metrics.json").read_text())
    assert 0 < metrics["accuracy"] <= 1
