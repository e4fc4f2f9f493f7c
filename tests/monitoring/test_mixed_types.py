"""Drift and the retraining snapshot on a mixed-type table (categories, bools, missing values): the column
types come from the schema, categorical columns get a categorical test, the logged raw values are
compared with the decoded training split, and a snapshot never leaves cells empty in columns the schema
ignores."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.config.params import load_params
from model.examples import mixed_table
from monitoring.drift import check
from monitoring.policy import load_policy
from monitoring.snapshot import build

pytestmark = pytest.mark.usefixtures("no_report_charts")  # decisions only: no chart is read here

FEATURES = {
    "island": {"type": "category"},
    "bill_length_mm": {"type": "float", "min": 0},
    "flipper_length_mm": {"type": "int", "min": 0},
    "body_mass_g": {"type": "float", "min": 0},
    "sex": {"type": "category", "categories": ["female", "male"]},
    "adult": {"type": "bool"},
}


@pytest.fixture
def mixed(tmp_path, monkeypatch):
    """cwd = a project whose table is mixed-type, with an `id` column outside the schema; prepared."""
    from model.prepare import run as prepare
    from tests.repo import ROOT

    monkeypatch.chdir(tmp_path)
    for name in ("MLOPS_INFERENCE_LOG_DIR", "MLOPS_FEEDBACK", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    table = mixed_table(600, seed=1).drop(columns=["year", "observed"], errors="ignore")
    table.insert(0, "id", [f"P{i:04d}" for i in range(len(table))])
    Path("data").mkdir()
    table.to_csv("data/penguins.csv", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["name"] = "penguins"
    params["data"] = {
        "path": "data/penguins.csv",
        "label": "species",
        "classes": ["Adelie", "Chinstrap", "Gentoo"],
        "missing": "impute",
        "features": FEATURES,
    }
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    prepare()
    return table


def log(rows: pd.DataFrame, path: Path, key: str = "prediction") -> None:
    """Rows as the inference log (or feedback) holds them: raw values, null for missing."""
    ts = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for i, row in enumerate(rows.to_dict(orient="records")):
            features = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            features = {k: v for k, v in features.items() if k in FEATURES}
            features["adult"] = None if features["adult"] is None else features["adult"] == "true"
            record = {"ts": ts, "request_id": f"r{i}", "features": features, key: row["species"]}
            fh.write(json.dumps(record) + "\n")


def run_drift():
    params = load_params()
    return check(params, load_policy(params))


def test_categorical_columns_get_a_categorical_test_and_a_shift_in_them_is_found(mixed):
    fresh = mixed_table(300, seed=7).drop(columns=["year", "observed"], errors="ignore")
    log(fresh, Path("logs/inference/a.jsonl"))
    same = run_drift()
    columns = {c["column"]: c for c in same["features"]["columns"]}
    test = "two-sample chi-square p_value"  # both samples are samples, any number of levels
    assert columns["island"]["method"] == columns["sex"]["method"] == columns["adult"]["method"] == test
    assert columns["bill_length_mm"]["method"] == "K-S p_value"
    assert not columns["island"]["drifted"] and same["decision"] == "no_drift"

    moved = fresh.copy()
    moved["island"] = "Dream"  # every penguin from one island: only a categorical column moves
    Path("logs/inference/a.jsonl").unlink()
    log(moved, Path("logs/inference/a.jsonl"))
    shifted = {c["column"]: c for c in run_drift()["features"]["columns"]}
    assert shifted["island"]["drifted"] and shifted["island"]["score"] < 1e-6
    assert not shifted["bill_length_mm"]["drifted"]


def test_snapshot_appends_raw_rows_and_leaves_no_empty_cells_outside_the_schema(mixed):
    spec = load_params().data
    fresh = mixed_table(20, seed=9).drop(columns=["year", "observed"], errors="ignore")
    log(fresh, Path("feedback/day1.jsonl"), key="label")
    snap = build(spec, "feedback")
    assert (snap.previous_rows, snap.new_rows) == (600, 20)
    assert snap.dropped_columns == ["id"]  # the log cannot fill it: left out, not left empty
    after = pd.read_csv(spec.path, dtype=str, keep_default_na=False)
    assert list(after.columns) == list(mixed.columns.drop("id")) and len(after) == 620
    assert set(after["island"].iloc[600:]) <= {"Biscoe", "Dream", "Torgersen"}  # raw strings, not codes
    assert set(after["adult"].iloc[600:]) <= {"true", "false"}
    missing = fresh["bill_length_mm"].isna().to_numpy()
    assert (after["bill_length_mm"].iloc[600:].to_numpy()[missing] == "").all()  # a null stays missing
    assert build(spec, "feedback").new_rows == 0  # the same records are not appended twice


def test_snapshot_carries_columns_outside_the_schema_that_feedback_tables_have(mixed):
    spec = load_params().data
    rows = mixed_table(5, seed=11).drop(columns=["year", "observed"], errors="ignore")
    rows.insert(0, "id", ["N1", "N2", "N3", "N4", "N5"])
    Path("feedback").mkdir()
    rows.to_csv("feedback/labelled.csv", index=False)
    snap = build(spec, "feedback")
    assert snap.new_rows == 5 and snap.dropped_columns == []
    after = pd.read_csv(spec.path, dtype=str, keep_default_na=False)
    assert after["id"].tolist()[-5:] == ["N1", "N2", "N3", "N4", "N5"] and (after["id"] != "").all()


def test_one_unseen_value_in_a_critical_column_is_named_and_opens_no_pr(mixed):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["monitoring"]["critical"] = ["island"]
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    fresh = mixed_table(300, seed=7).drop(columns=["year", "observed"], errors="ignore")
    fresh.loc[0, "island"] = "Atlantis"
    log(fresh, Path("logs/inference/a.jsonl"))
    summary = run_drift()
    island = next(c for c in summary["features"]["columns"] if c["column"] == "island")
    assert island["unseen"] == {"rows": 1, "values": {"Atlantis": 1}}
    assert not island["drifted"] and summary["decision"] == "no_drift"
