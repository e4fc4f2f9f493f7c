"""The new data snapshot: previous table + new labelled production records, validated like training data."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from mlops.config.errors import UserError
from mlops.config.params import load_params
from model.dataset import read_table
from model.validate import validate_table
from monitoring.snapshot import build
from tests.monitoring.logs import jittered, other_class, records, table, write_jsonl
from tests.schema import CLASSES, FEATURES, bounded, out_of_range

FEEDBACK = Path("feedback")


def test_appends_new_labelled_records_and_validates(workspace):
    spec = load_params().data
    before, old_rows = spec.path.read_bytes(), read_table(spec.path)
    full = table()
    fresh = records(jittered(full.iloc[:10], seed=3), label_key="label")
    known = records(full.iloc[10:12], label_key="label")  # already in the table: skipped
    write_jsonl(
        FEEDBACK / "day1.jsonl", fresh + known + fresh[:1], raw_lines=('{"ts": "2026-01-01", "label": ',)
    )
    snap = build(spec, str(FEEDBACK))
    n = len(old_rows)
    assert (snap.previous_rows, snap.new_rows, snap.duplicates, snap.feedback.malformed) == (n, 10, 3, 1)
    pd.testing.assert_frame_equal(read_table(spec.path).head(n), old_rows)  # old rows kept, new appended
    if spec.path.suffix == ".csv":
        assert spec.path.read_bytes().startswith(before)  # byte-identical: a CSV's diff is the new lines
    report = validate_table(spec.path, spec)
    assert report["ok"] and report["rows"] == n + 10
    assert sum(snap.class_balance.values()) == n + 10
    assert build(spec, str(FEEDBACK)).new_rows == 0  # a re-run adds nothing twice


def test_feedback_tables_in_the_training_schema(workspace):
    spec = load_params().data
    rows = jittered(table().iloc[:5], seed=4)
    rows[spec.label] = [str(spec.classes[i]) for i in rows.pop("label")]
    FEEDBACK.mkdir()
    rows.to_csv(FEEDBACK / "labelled.csv", index=False)
    snap = build(spec, str(FEEDBACK))
    assert (snap.new_rows, snap.tables) == (5, 1)


def test_invalid_feedback_leaves_the_data_unchanged(workspace):
    spec = load_params().data
    before = spec.path.read_bytes()
    bad = records(jittered(table().iloc[:3], seed=5), label_key="label")
    bad[1]["label"] = "unknown-class"
    (limited,) = bounded(1)
    bad[2]["features"][limited.name] = out_of_range(limited)
    write_jsonl(FEEDBACK / "bad.jsonl", bad)
    with pytest.raises(UserError) as err:
        build(spec, str(FEEDBACK))
    side = f"below min {limited.min}" if limited.min is not None else f"above max {limited.max}"
    assert "fails validation" in str(err.value) and f"'{limited.name}': {side}" in str(err.value)
    assert "unknown-class" not in str(err.value)  # that row was left out before validation
    assert spec.path.read_bytes() == before


def test_only_clean_served_consistent_rows_are_taken_and_the_rest_counted(workspace):
    """One bad label no longer refuses the snapshot; never-served records and superseded labels stay
    out; what was left out is counted."""
    from datetime import timedelta

    spec = load_params().data
    rows = jittered(table().iloc[:6], seed=6)
    good = records(rows, label_key="label")
    good[0]["label"] = "unknown-class"
    good[1]["request_id"] = "never-served"
    old = records(rows.iloc[2:3], label_key="label", age=timedelta(days=1))
    old[0]["request_id"] = good[2]["request_id"]
    old[0]["label"] = other_class(good[2]["label"])
    write_jsonl(FEEDBACK / "b.jsonl", good)
    write_jsonl(FEEDBACK / "c-older.jsonl", old)  # read last, yet older: the label of good[2] wins
    served = {r["request_id"] for r in good} - {"never-served"}
    snap = build(spec, str(FEEDBACK), served=served)
    assert snap.new_rows == 4
    assert snap.left_out == {"unknown_labels": 1, "not_served": 1, "conflicting": 1}
    assert validate_table(spec.path, spec)["ok"]
    labels = read_table(spec.path)[spec.label].astype(str).tail(4).tolist()
    assert labels == [r["label"] for r in good[2:]]  # the latest label of the relabelled row


def test_feedback_table_missing_columns_is_a_clear_error(workspace):
    FEEDBACK.mkdir()
    (FEEDBACK / "labels.csv").write_text(f"request_id,label\nr1,{CLASSES[0]}\n")
    lacking = rf"labels.csv: feedback table lacks column\(s\) {re.escape(FEATURES[0])}"
    with pytest.raises(UserError, match=lacking):
        build(load_params().data, str(FEEDBACK))
