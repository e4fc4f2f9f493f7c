"""Slices and baselines on constructed tables whose right answers are known by construction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.report.baselines import fit_baselines
from mlops.report.slices import assign, key, slice_table
from mlops.report.uncertainty import point_metrics
from tests.repo import sh
from tests.report.synthetic import METRICS, report, write_pr_side


def proba_for(y: np.ndarray, correct: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    """Binary probabilities that are right (with `confidence`) exactly where `correct` says."""
    p1 = np.where(correct == (y == 1), confidence, 1 - confidence)
    return np.column_stack([1 - p1, p1])


def test_categorical_and_quantile_slices_label_every_row():
    table = pd.DataFrame({"grade": [1, 2, 3] * 40, "size": np.arange(120, dtype=float)})
    test = table.iloc[::4]  # 30 rows
    labels = assign(test, table, [{"column": "grade"}, {"column": "size", "bins": 3}])
    assert list(labels.columns) == ["slice:grade", "slice:size"]
    assert labels["slice:grade"].value_counts().to_dict() == {"1": 10, "2": 10, "3": 10}
    # edges from the whole table (0, 39.67, 79.33, 119), not the test rows; the last bin is closed
    assert labels["slice:size"].value_counts().sort_index().to_dict() == {
        "q1 0–39.7": 10,
        "q2 39.7–79.3": 10,
        "q3 79.3–119": 10,
    }
    assert key("q2 39.7–79.3") == "q2" and key("a/b") == "a_b"


def test_a_slice_on_a_column_the_data_lacks_is_skipped_and_said(capsys):
    """Swapping in another table must not need a params edit outside `data:`: the slice is skipped."""
    table = pd.DataFrame({"size": [1.0, 2.0]})
    assert list(assign(table, table, [{"column": "colour"}, {"column": "size"}]).columns) == ["slice:size"]
    said = capsys.readouterr().out
    assert "report.slices[0].column 'colour' is not a feature column, slice skipped" in said
    with pytest.raises(ValueError, match=r"report.slices\[0\].bins must be an integer >= 2"):
        assign(table, table, [{"column": "size", "bins": 1}])


def test_slice_table_counts_and_metrics_match_the_construction():
    """Grade 1: 40 rows all right; grade 2: 20 rows, 15 right; grade 3: 10 rows of one class."""
    rng = np.random.default_rng(0)
    grade = np.array([1] * 40 + [2] * 20 + [3] * 10)
    y = np.concatenate([rng.integers(0, 2, 60), np.zeros(10, dtype=int)])
    correct = np.ones(70, dtype=bool)
    correct[40:45] = False
    labels = pd.DataFrame({"slice:grade": grade.astype(str)})
    table = slice_table(y, proba_for(y, correct), labels, ("accuracy", "roc_auc"), 300, 0.95, 0)
    rows = table.set_index("bin")
    assert rows["rows"].to_dict() == {"1": 40, "2": 20, "3": 10}
    assert rows.loc["1", "accuracy"] == 1.0 and rows.loc["2", "accuracy"] == 0.75
    assert rows.loc["2", "accuracy_low"] < 0.75 < rows.loc["2", "accuracy_high"]
    assert np.isnan(rows.loc["3", "roc_auc"])  # one class only: undefined, not a number made up


def test_baselines_majority_share_and_a_separable_table():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0.8).astype(int)  # linearly separable, about 30 % positive
    fitted = fit_baselines(x[:300], y[:300], x[300:], 2, seed=0)
    majority = point_metrics(y[300:], fitted["majority_class"])
    assert majority["accuracy"] == pytest.approx((y[300:] == 0).mean())  # always the majority class
    assert majority["roc_auc"] == 0.5
    assert np.allclose(fitted["majority_class"][:, 1], y[:300].mean())  # the train prior
    assert point_metrics(y[300:], fitted["logistic_regression"])["accuracy"] >= 0.97


def predictions_csv(y: np.ndarray, proba: np.ndarray, groups: np.ndarray) -> str:
    frame = pd.DataFrame({"row": [f"{i:016x}" for i in range(len(y))], "label": y})
    frame["proba_0"], frame["proba_1"] = proba[:, 0], proba[:, 1]
    frame["slice:grade"] = groups
    return frame.to_csv(index=False)


def test_report_rows_for_baselines_and_a_slice_that_regressed(repo):
    """main is right on every row; the PR is wrong on 12 of the 20 rows of grade 2 only."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    groups = np.array(["1"] * 80 + ["2"] * 20)
    main_proba = proba_for(y, np.ones(100, dtype=bool))
    wrong = np.zeros(100, dtype=bool)
    wrong[80:92] = True
    pr_proba = proba_for(y, ~wrong)
    baseline = {
        "logistic_regression": {
            **METRICS,
            "accuracy": 0.95,
            "interval": {"accuracy": {"low": 0.9, "high": 0.99}},
        },
        "majority_class": {**METRICS, "accuracy": 0.62, "f1": 0.0, "roc_auc": 0.5},
    }
    main_metrics = {**METRICS, "accuracy": 1.0, "baseline": baseline}
    write_pr_side(repo, main_metrics, predictions=predictions_csv(y, main_proba, groups))
    (repo / "eval/plots/slices.csv").write_text("slice,bin,rows,accuracy\ngrade,1,80,1.0\ngrade,2,20,1.0\n")
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "main with predictions"], repo)
    sh(["git", "branch", "-f", "main"], repo)

    pr_metrics = {**METRICS, "accuracy": 0.88, "baseline": baseline}
    write_pr_side(repo, pr_metrics, predictions=predictions_csv(y, pr_proba, groups))
    (repo / "eval/plots/slices.csv").write_text(
        "slice,bin,rows,accuracy,accuracy_low,accuracy_high\ngrade,1,80,1.0,1.0,1.0\ngrade,2,20,0.4,0.2,0.6\n"
    )
    from mlops.report.render import run

    assert run() == 1  # accuracy 1.0 -> 0.88 on the same rows: beyond noise and over the 0.02 allowed
    text = report(repo)
    assert "| **this PR** | 0.8800 |" in text
    assert "| logistic regression | 0.9500<br><sub>0.900–0.990</sub> |" in text
    assert "| majority class | 0.6200 | 0.0000 | 0.5000 |" in text
    assert "| `grade` 1 | within noise | 80 | 1.0000<br><sub>1.000–1.000</sub> |" in text
    assert "| `grade` 2 | ⚠️ accuracy **worse** (Δ -0.600, p 0.0002); ⚠️ roc_auc **worse** (Δ -0.604" in text
    regressed = "*   ⚠️ **Slice regressed beyond noise**: `grade` 2: accuracy Δ -0.600 (p 0.0002), roc_auc Δ"
    assert regressed in text
    assert text.splitlines()[2].startswith("**Worse beyond noise:** accuracy -0.1200")
    assert text.count("Slice regressed beyond noise") == 1  # one line per slice, its metrics together
    assert "Slices: 2, 1 regressed beyond noise vs main" in text
    assert "| ▼ **worse** | accuracy | 1.0000 | 0.8800 | -0.1200<br><sub>" in text
    assert "(paired): beyond noise" in text
    assert "Δ paired on the same rows" in text


@pytest.mark.slow
def test_metrics_json_of_evaluate_holds_intervals_baselines_and_slices(trained_repo):
    """The real `evaluate` on the project's data: every new number is in eval/ for `dvc metrics diff`."""
    metrics = json.loads((trained_repo / "eval/metrics.json").read_text())
    params = yaml.safe_load((trained_repo / "params.yaml").read_text())
    for name in ("accuracy", "roc_auc", "brier", "ece"):
        span = metrics["interval"][name]
        assert span["low"] <= metrics[name] <= span["high"]
    logistic = metrics["baseline"]["logistic_regression"]
    assert logistic["accuracy"] > 0.9 and "interval" in logistic
    majority = metrics["baseline"]["majority_class"]
    prepared = trained_repo / "artifacts/prepared"
    test = pd.read_parquet(prepared / "test.parquet")
    most = pd.read_parquet(prepared / "train.parquet")["label"].mode()[0]  # the train split's majority
    assert majority["accuracy"] == pytest.approx((test["label"] == most).mean(), abs=1e-6)
    features = params["data"]["features"]
    columns = [s if isinstance(s, str) else s["column"] for s in params["report"]["slices"] or []]
    sliced = [c for c in columns if c in features]
    assert sorted(metrics["slice"]) == sorted(sliced)  # slices on columns the table lacks are skipped
    for column in sliced:
        assert sum(s["rows"] for s in metrics["slice"][column].values()) == len(test)
    predictions = pd.read_csv(trained_repo / "eval/predictions.csv")
    assert len(predictions) == len(test) and predictions["row"].is_unique
    assert (predictions["label"].to_numpy() == test["label"].to_numpy()).all()
    attributions = pd.read_csv(trained_repo / "eval/plots/attributions.csv")
    assert attributions["share"].sum() == pytest.approx(1.0, abs=1e-4)
    calibration = pd.read_csv(trained_repo / "eval/plots/calibration.csv")
    assert calibration["rows"].sum() == len(test)
