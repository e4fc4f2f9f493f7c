"""No crash is silent, and junk in production data is counted, named and survived: a column that goes all
null, feedback with no known class, a crash inside the check, late labels, repeated labels."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops.config import paths
from monitoring.drift import FAILED_EXIT
from tests.monitoring.logs import WINDOW, edit_params, held_out, other_class, records, write_jsonl
from tests.schema import CLASSES, numeric

pytestmark = pytest.mark.usefixtures("no_report_charts")  # decisions only: no chart is read here

LOG = Path("logs/inference/model-host-1.jsonl")
FEEDBACK = Path("feedback/labels.jsonl")
CHAMPION = {"accuracy": 0.964912, "precision": 0.975, "recall": 0.928571, "f1": 0.95122, "roc_auc": 0.992063}
GONE = numeric(0)  # the column upstream stops sending


def test_a_column_gone_all_null_is_named_and_alerted_not_a_crash(workspace, drift, webhook):
    edit_params({"monitoring.critical": [GONE]})
    log = records(held_out())
    for record in log:
        record["features"][GONE] = None  # the upstream service stopped sending it
    write_jsonl(LOG, log)
    code, summary, out = drift()
    assert code == 0 and summary["decision"] == "drift"
    (gone,) = [c for c in summary["features"]["columns"] if c["column"] == GONE]
    assert gone["drifted"] and gone["method"] == "all values missing in the production window"
    assert f"drifted column {GONE}: all values missing" in out
    (alert,) = webhook.received
    assert f"{GONE} (all values missing" in alert["message"]
    reference = len(pd.read_parquet(paths.TRAIN_SPLIT))
    assert "Window: last 7d" in alert["message"]
    assert f"{WINDOW} production rows against {reference}" in alert["message"]


def test_feedback_without_a_known_class_is_counted_not_a_crash(workspace, drift, webhook):
    Path("eval").mkdir()
    Path("eval/metrics.json").write_text(json.dumps(CHAMPION))
    rows = held_out()
    write_jsonl(LOG, records(rows))
    feedback = records(rows, label_key="label")
    codes = {str(c): f"code-{i}" for i, c in enumerate(CLASSES)}  # another system's codes
    for record in feedback:
        record["label"] = codes[record["label"]]
    write_jsonl(FEEDBACK, feedback)
    code, summary, out = drift()
    perf = summary["performance"]
    assert code == 0 and summary["decision"] == "no_drift" and not perf["checked"]
    sent = {r["label"] for r in feedback}
    examples = set(perf["feedback"]["unknown_examples"])
    assert perf["feedback"]["unknown_labels"] == WINDOW
    assert examples <= sent and len(examples) == min(5, len(sent))  # the 5 most frequent are named
    told = f"drift: feedback: {WINDOW} feedback record(s); {WINDOW} with a label that is no class ("
    assert told in out and all(repr(e) in out for e in examples)


def test_a_crash_leaves_a_failure_summary_a_distinct_exit_and_an_alert(
    workspace, drift, webhook, monkeypatch
):
    import monitoring.drift

    write_jsonl(LOG, records(held_out()))

    def broken(*args, **kwargs):
        raise ValueError("An empty column 'x' was provided")

    monkeypatch.setattr(monitoring.drift, "_feature_drift", broken)
    code, summary, out = drift()
    assert code == FAILED_EXIT
    assert summary["decision"] == "error" and summary["retrain"] is False
    assert summary["error"] == "ValueError: An empty column 'x' was provided"
    assert "the check failed: ValueError" in out
    (alert,) = webhook.received
    assert alert["title"] == "mlops drift: the check failed" and alert["type"] == "failure"
    assert "An empty column" in alert["message"] and "Window: last 7d" in alert["message"]


def test_late_labels_are_scored_within_the_label_horizon(workspace, drift):
    """Labels that take 9 days: their predictions are older than the 7-day window, still joined."""
    Path("eval").mkdir()
    Path("eval/metrics.json").write_text(json.dumps(CHAMPION))
    rows = held_out()
    write_jsonl(LOG, records(rows, age=timedelta(days=9)))
    write_jsonl(LOG, records(rows.iloc[:120]))  # today's traffic, not yet labelled
    write_jsonl(FEEDBACK, records(rows, label_key="label"))
    _, summary, _ = drift()
    assert summary["rows"]["current"] == 120
    assert summary["performance"]["checked"] and summary["performance"]["rows"] == WINDOW


def test_repeated_labels_keep_the_latest_by_timestamp_and_are_counted(workspace, drift):
    Path("eval").mkdir()
    Path("eval/metrics.json").write_text(json.dumps(CHAMPION))
    rows = held_out()
    write_jsonl(LOG, records(rows))
    right = records(rows, label_key="label")  # a minute ago: the correction
    guess = records(rows, label_key="label", age=timedelta(hours=3))
    wrong = [{**r, "label": other_class(r["label"])} for r in guess]
    write_jsonl(Path("feedback/a-first-guess.jsonl"), wrong)  # first by file name (what won before)
    write_jsonl(Path("feedback/b-corrections.jsonl"), right)
    _, summary, out = drift("--feedback", "feedback")
    perf = summary["performance"]
    assert perf["metrics"]["accuracy"] == 1.0 and summary["decision"] == "no_drift"
    assert (perf["feedback"]["duplicates"], perf["feedback"]["conflicting"]) == (WINDOW, WINDOW)
    told = f"{WINDOW} repeated label(s), {WINDOW} row(s) with conflicting labels (the latest by ts kept)"
    assert told in out


def test_a_critical_column_going_40_percent_null_is_drift(workspace, drift, webhook):
    """The distribution test sees only the values left; the missing rate is checked on its own."""
    edit_params({"monitoring.critical": [GONE]})
    log = records(held_out())
    for record in log[::5] + log[1::5]:
        record["features"][GONE] = None
    write_jsonl(LOG, log)
    code, summary, out = drift()
    assert code == 0 and summary["decision"] == "drift"
    (column,) = [c for c in summary["features"]["columns"] if c["column"] == GONE]
    assert column["missing"]["current"] == round(92 / WINDOW, 6) and column["missing"]["drifted"]
    assert summary["features"]["drifted_critical"] == [GONE]
    assert "missing 0.0% -> 40.4%" in out and "missing 0.0% -> 40.4%" in webhook.received[0]["message"]
