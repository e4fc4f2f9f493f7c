"""The policy's rules beyond the share: critical columns, weights, probability drift, and performance
on labelled feedback joined to the log on request_id; and the console naming every drifted column."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.config import paths
from tests.monitoring.logs import WINDOW, edit_params, held_out, other_class, records, write_jsonl
from tests.schema import BINARY, CLASSES, FEATURES, numeric

LOG = Path("logs/inference/model-host-1.jsonl")
FEEDBACK = Path("feedback/labels.jsonl")
CHAMPION = {
    "accuracy": 0.964912,
    "precision": 0.975,
    "recall": 0.928571,
    "f1": 0.95122,
    "roc_auc": 0.992063,
    "interval": {  # as `mlops evaluate` writes them (114 test rows, 95%): the champion is a sample too
        "accuracy": {"low": 0.929825, "high": 0.991228},
        "f1": {"low": 0.9, "high": 0.989247},
        "roc_auc": {"low": 0.980157, "high": 1.0},
    },
}


SHIFTED = numeric(0)  # the one column the critical and weight rules are tried on


def one_column_shifted(column: str, sd: float) -> pd.DataFrame:
    rows = held_out()
    rows[column] += sd * pd.read_parquet(paths.TRAIN_SPLIT)[column].std()
    return rows


def test_one_critical_column_drifting_is_drift(workspace, drift, webhook, no_report_charts):
    write_jsonl(LOG, records(one_column_shifted(SHIFTED, 1.0)))
    code, summary, out = drift()
    assert (code, summary["decision"]) == (0, "no_drift")  # 1 of all columns: under the 0.5 share
    column = next(c for c in summary["features"]["columns"] if c["column"] == SHIFTED)
    assert column["drifted"] and column["score"] < 1e-6
    # the console names the drifted column even when the decision is no_drift
    assert f"drift: drifted column {SHIFTED}: K-S p_value = {column['score']:.3g}" in out

    edit_params({"monitoring.critical": [SHIFTED]})
    code, summary, out = drift()
    assert (code, summary["decision"]) == (0, "drift")
    assert summary["features"]["drifted_critical"] == [SHIFTED]
    assert f"critical: {SHIFTED}" in summary["reasons"][0] and "decision: drift" in out
    (alert,) = webhook.received
    assert alert["title"] == "mlops drift: drift" and f"{SHIFTED} (K-S p_value" in alert["message"]


def test_weights_count_in_the_share(workspace, drift, no_report_charts):
    write_jsonl(LOG, records(one_column_shifted(SHIFTED, 1.0)))
    n = len(FEATURES)
    edit_params({"monitoring.weights": {SHIFTED: n}})  # n of 2n - 1 weight units: over half alone
    _, summary, _ = drift()
    assert summary["decision"] == "drift" and summary["features"]["share"] >= n / (2 * n - 1)


def test_probability_drift_against_the_preceding_window(workspace, drift):
    rows = held_out()
    confident = rows.assign(proba=0.97)  # the logged probability of the predicted class
    unsure = rows.assign(proba=0.6)  # same classes, less sure
    write_jsonl(LOG, records(confident, age=timedelta(days=8)))  # the preceding 7 days
    write_jsonl(LOG, records(unsure, age=timedelta(hours=1)))
    _, summary, out = drift()
    prediction = summary["prediction"]
    assert not prediction["class_mix"]["drifted"]  # the predicted classes are the same
    assert prediction["probabilities"]["checked"] and prediction["drifted"]
    columns = prediction["probabilities"]["columns"]
    tested = CLASSES[-1:] if BINARY else CLASSES  # binary: one test, p(first) = 1 - p(last)
    assert [c["column"] for c in columns] == [f"proba_{c}" for c in tested]
    assert all(c["drifted"] for c in columns)
    assert summary["decision"] == "no_drift"  # params.yaml does not retrain on prediction drift
    assert f"drift: drifted column proba_{tested[-1]}: K-S p_value" in out
    assert Path("reports/drift/probabilities.html").stat().st_size > 10_000

    edit_params({"monitoring.retrain_on": lambda checks: [*checks, "prediction"]})
    _, summary, _ = drift()
    assert summary["decision"] == "drift" and summary["reasons"][0].startswith("prediction drift: proba_")


def flipped(records_: list[dict], share: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for record in records_:
        if rng.random() < share:
            record = {**record, "label": other_class(record["label"])}
        out.append(record)
    return out


def test_label_flips_with_unchanged_inputs_are_a_performance_decision(
    workspace, drift, webhook, no_report_charts
):
    Path("eval").mkdir()
    Path("eval/metrics.json").write_text(json.dumps(CHAMPION))
    rows = held_out()
    write_jsonl(LOG, records(rows))  # the model predicts the original labels
    write_jsonl(FEEDBACK, records(rows, label_key="label"))
    code, summary, _ = drift()
    assert (code, summary["decision"]) == (0, "no_drift")
    assert summary["performance"]["checked"] and summary["performance"]["metrics"]["accuracy"] == 1.0

    FEEDBACK.unlink()
    write_jsonl(FEEDBACK, flipped(records(rows, label_key="label"), 0.3, seed=0))  # the world changed
    code, summary, out = drift()
    perf = summary["performance"]
    assert (code, summary["decision"], summary["retrain"]) == (0, "performance", True)
    assert summary["features"]["drifted"] is False  # the inputs did not move
    assert perf["rows"] == WINDOW and 0.6 < perf["metrics"]["accuracy"] < 0.8
    regressed = {r["metric"] for r in perf["regressions"] if r["regressed"]}
    assert regressed == {"accuracy", "f1", "roc_auc"}
    assert summary["reasons"][0].startswith(f"performance regressed on {WINDOW} labelled rows: accuracy 0.")
    report = Path(perf["report"]).read_text()
    charts = ["confusion", "over-time", *(["roc", "pr"] if BINARY else [])]  # the curves: two classes
    assert "Model performance on labelled production rows" in report
    assert report.count("data:image/png") == len(charts)
    assert all(f'alt="performance-{c}"' in report for c in charts)
    assert (
        "decision: performance" in out and "drift: performance report reports/drift/performance.html" in out
    )
    (alert,) = [a for a in webhook.received if a["title"] == "mlops drift: performance"]
    assert "performance regressed" in alert["message"] and alert["type"] == "failure"


def test_a_small_drop_within_sampling_noise_does_not_fire(workspace, drift, no_report_charts):
    """3 wrong labels in 60 rows (accuracy 0.95 vs 0.965): within noise, so no performance decision.
    (ROC AUC is left out: these rows' logged probabilities are 0 or 1, so 3 errors made with full
    confidence move it from 0.992 to 0.95, which DeLong's interval rightly calls beyond noise.)"""
    edit_params({"monitoring.performance.metrics": ["accuracy", "f1"]})
    Path("eval").mkdir()
    Path("eval/metrics.json").write_text(json.dumps(CHAMPION))
    rows = held_out()
    write_jsonl(LOG, records(rows))
    labels = records(rows, label_key="label")[:60]  # (request ids derive from the whole frame)
    for record in labels[:3]:
        record["label"] = other_class(record["label"])
    write_jsonl(FEEDBACK, labels)
    _, summary, _ = drift()
    perf = summary["performance"]
    assert perf["checked"] and perf["rows"] == 60 and summary["decision"] == "no_drift"
    accuracy = next(r for r in perf["regressions"] if r["metric"] == "accuracy")
    assert accuracy["drop"] < 0.02 or accuracy["bound_drop"] <= accuracy["allowed"]


def test_feedback_joins_on_request_id_and_features(workspace):
    from monitoring.performance import join

    frame = held_out().iloc[:8]
    log = pd.DataFrame(records(frame))
    feedback = pd.DataFrame(records(frame, label_key="label"))
    features = list(log["features"].iloc[0])
    flat = lambda f: pd.concat([f.drop(columns="features"), pd.json_normalize(f["features"])], axis=1)  # noqa: E731
    log, feedback = flat(log), flat(feedback)
    assert log["request_id"].nunique() == 2  # 4 rows per request
    feedback.loc[0, "request_id"] = "someone-else"
    joined = join(log, feedback, features)
    assert len(joined) == 7 and (joined["label"] == joined["prediction"]).all()
