"""`mlops drift` statistics and edge cases, through the real CLI path (policy from params.yaml)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from mlops.config import paths
from tests.monitoring.logs import (
    WINDOW,
    edit_params,
    held_out,
    jittered,
    records,
    shifted,
    table,
    write_jsonl,
)
from tests.schema import CLASSES, FEATURES, numeric

LOG = Path("logs/inference/model-host-1.jsonl")


def test_shifted_window_is_drift(workspace, drift):
    reference = pd.read_parquet(paths.TRAIN_SPLIT)
    write_jsonl(LOG, records(shifted(held_out(), 0.5, reference)))
    code, summary, out = drift()
    assert code == 0
    assert summary["decision"] == "drift"
    features = summary["features"]
    assert features["share"] >= 0.5 and features["drifted_count"] >= len(FEATURES) / 2
    reference_rows = len(pd.read_parquet(paths.TRAIN_SPLIT))
    assert summary["rows"] == {"reference": reference_rows, "current": WINDOW, "analysed": WINDOW}
    assert features["columns"][0]["drifted"] and features["columns"][0]["method"] == "K-S p_value"
    assert Path(summary["report"]).stat().st_size > 100_000  # the Evidently HTML
    assert "decision: drift" in out


def test_unshifted_held_out_rows_are_no_drift(workspace, drift, no_report_charts):
    write_jsonl(LOG, records(held_out()))
    code, summary, out = drift()
    assert (code, summary["decision"]) == (0, "no_drift")
    assert summary["features"]["share"] < 0.5
    assert summary["prediction"]["drifted"] is False  # predictions mirror the labels' class mix here
    assert "decision: no_drift" in out


@pytest.mark.slow
def test_false_positive_rate_on_fresh_samples_across_20_seeds(workspace, drift, no_report_charts):
    """Reference and window are disjoint random parts of the real table (the training split's size, and
    the rest), per seed: same distribution. A table too small for a `min_rows` window lowers min_rows to
    the window: the statistic's false alarms are the point here. The decisions only (no charts drawn):
    the statistics are Evidently's, as in production."""
    full = table()
    reference_rows = len(pd.read_parquet(paths.TRAIN_SPLIT))
    edit_params({"monitoring.min_rows": min(100, len(full) - reference_rows)})
    decisions, shares = [], []
    for seed in range(20):
        shuffled = full.sample(frac=1, random_state=seed).reset_index(drop=True)
        shuffled.iloc[:reference_rows].to_parquet(paths.TRAIN_SPLIT, index=False)
        LOG.unlink(missing_ok=True)
        write_jsonl(LOG, records(shuffled.iloc[reference_rows:]))
        _, summary, _ = drift()
        decisions.append(summary["decision"])
        shares.append(summary["features"]["share"])
    rate = decisions.count("drift") / len(decisions)
    print(f"false-positive rate {rate:.0%} over 20 seeds; drifted-column share max {max(shares):.2f}")
    assert set(decisions) <= {"drift", "no_drift"}
    assert rate <= 0.05


def test_not_enough_data(workspace, drift, capsys):
    write_jsonl(LOG, records(held_out().iloc[:99]))  # the policy needs 100
    code, summary, out = drift()
    assert (code, summary["decision"]) == (0, "not_enough_data")
    assert "not enough data: 99 rows" in summary["reasons"][0]
    assert summary["features"] is None and summary["report"] is None
    assert not Path("reports/drift/report.html").exists()
    assert "decision: not_enough_data" in out

    from mlops.cli import main

    assert main(["retrain-pr"]) == 0  # no git, no PR: it stops at the decision
    assert "decision is 'not_enough_data': no retraining PR" in capsys.readouterr().out


def test_malformed_lines_are_counted_and_skipped(workspace, drift, no_report_charts):
    good = records(held_out().iloc[:150])
    bad_feature = {**good[0], "features": {**good[0]["features"], numeric(0): "abc"}}
    missing_feature = {
        **good[0],
        "features": {k: v for k, v in good[0]["features"].items() if k != FEATURES[-1]},
    }
    malformed = (
        "{not json",
        json.dumps(good[0])[:40],  # a truncated line, as after a crash mid-write
        "[1, 2, 3]",
        json.dumps(bad_feature),
        json.dumps(missing_feature),
        json.dumps({**good[0], "ts": "yesterday"}),
        json.dumps({**good[0], "features": None}),
    )
    old = records(held_out().iloc[150:170], age=timedelta(days=30))  # valid but outside the 7d window
    write_jsonl(LOG, good[:75], raw_lines=malformed[:4])
    write_jsonl(LOG.with_name("model-host-2.jsonl"), good[75:] + old, raw_lines=("", *malformed[4:]))
    code, summary, out = drift()
    log = summary["log"]
    assert code == 0 and summary["decision"] == "no_drift"  # the job went on
    assert (log["files"], log["rows"], log["malformed"], log["outside_window"]) == (2, 150, 7, 20)
    assert log["lines"] == 150 + 20 + 7  # the blank line is no record
    assert any("model-host-1.jsonl:76" in e for e in log["examples"])  # file:line of the first bad line
    assert any(f"'{numeric(0)}': not a finite number: 'abc'" in e for e in log["examples"])
    assert "7 malformed line(s) skipped" in out


def test_window_and_now_select_records(workspace, drift, no_report_charts):
    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    rows = held_out()
    write_jsonl(LOG, records(rows.iloc[:120], now=now, age=timedelta(hours=2)))
    write_jsonl(LOG, records(rows.iloc[120:], now=now, age=timedelta(days=3)))
    _, summary, _ = drift("--now", "2026-01-10T00:00:00Z", "--window", "1d")
    assert (summary["rows"]["current"], summary["log"]["outside_window"]) == (120, 108)
    assert summary["window"]["since"].startswith("2026-01-09T00:00:00")


def test_prediction_and_target_drift(workspace, drift, no_report_charts):
    """A model predicting one class only, and labels that came back all that class."""
    rows = jittered(held_out(), seed=1)
    log = records(rows)
    for record in log:
        record["prediction"] = str(CLASSES[-1])
    write_jsonl(LOG, log)
    feedback = [{**r, "label": str(CLASSES[-1])} for r in records(rows, label_key="label")]
    write_jsonl(Path("feedback/labels.jsonl"), feedback)
    _, summary, _ = drift()
    assert summary["prediction"]["drifted"] and summary["target"]["drifted"]
    assert summary["decision"] == "no_drift"  # params.yaml retrains on feature drift only
    assert Path(summary["target"]["report"]).exists()
    edit_params({"monitoring.retrain_on": lambda checks: ["target", *checks]})
    _, summary, _ = drift()
    assert summary["decision"] == "drift" and summary["reasons"][0].startswith("prediction drift")


def test_step_outputs_under_github_actions(workspace, drift, monkeypatch, tmp_path, no_report_charts):
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    write_jsonl(LOG, records(shifted(held_out(), 1.0, pd.read_parquet(paths.TRAIN_SPLIT))))
    drift()
    assert "decision=drift\n" in (tmp_path / "out").read_text()
    page = (tmp_path / "summary.md").read_text()
    assert "### Drift check: **Drift detected**" in page and any(f"| `{f}`" in page for f in FEATURES)
