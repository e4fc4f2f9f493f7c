"""`mlops evaluate` and `mlops report` on issue-11 tables: three imbalanced classes, regression, category
codes and missing values in the model's input, a swapped dataset, and a large test split kept bounded.

The model is a fixed formula exported as TorchScript (tests/report/tables.py), so each test runs the
real stage in seconds and the right answers are known.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn import metrics as skm

from mlops.config.params import load_params
from mlops.report.compare import Predictions, compare
from mlops.report.settings import report_settings
from model.evaluate import run as evaluate
from tests.repo import sh
from tests.report.tables import COLOURS, formula_model, write_project


def metrics_of(path) -> dict:
    return json.loads((path / "eval/metrics.json").read_text())


def model_output(path, task: str) -> tuple[np.ndarray, np.ndarray]:
    test = pd.read_parquet(path / "artifacts/prepared/test.parquet")
    model = torch.jit.load(str(path / "artifacts/model/model.pt"))
    with torch.no_grad():
        out = model(torch.tensor(test[["size", "weight", "colour"]].to_numpy(), dtype=torch.float32))
    if task == "regression":
        return test["label"].to_numpy(dtype=float), out[:, 0].double().numpy()
    return test["label"].to_numpy(), torch.softmax(out.double(), 1).numpy()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_three_imbalanced_classes_with_categories_and_missing_values(project):
    write_project(project)
    evaluate()
    doc = metrics_of(project)
    y, proba = model_output(project, "classification")
    pred = proba.argmax(1)
    assert doc["dataset"] == {
        "task": "classification",
        "label": "grade",
        "classes": ["low", "mid", "high"],
        "test_rows": 300,
        "interval_rows": 300,
    }
    # per class and both averages, as scikit-learn computes them
    f1 = skm.f1_score(y, pred, average=None)
    assert [doc["per_class"][c]["f1"] for c in ("low", "mid", "high")] == pytest.approx(f1, abs=1e-6)
    assert [doc["per_class"][c]["support"] for c in ("low", "mid", "high")] == np.bincount(y).tolist()
    assert doc["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-6)
    assert doc["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted"), abs=1e-6)
    assert doc["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"), abs=1e-6)
    for name in ("f1", "weighted_f1", "weighted_precision", "roc_auc"):
        assert doc["interval"][name]["low"] <= doc[name] <= doc["interval"][name]["high"]
    confusion = pd.read_csv(project / "eval/plots/confusion.csv")
    assert len(confusion) == 9 and confusion["count"].sum() == 300
    # the logistic regression copes with NaN and codes (imputed, one-hot) and beats chance clearly
    logistic = doc["baseline"]["logistic_regression"]
    assert logistic["accuracy"] > 0.65 and logistic["roc_auc"] > 0.8
    assert doc["baseline"]["majority_class"]["accuracy"] == pytest.approx((y == 0).mean(), abs=1e-6)
    # slices by name for a category column, "unknown" for code -1, "missing" for NaN
    slices = pd.read_csv(project / "eval/plots/slices.csv")
    colour = slices[slices["slice"] == "colour"].set_index("bin")["rows"]
    test = pd.read_parquet(project / "artifacts/prepared/test.parquet")
    assert set(colour.index) == {*COLOURS, "unknown"}
    assert colour["unknown"] == (test["colour"] == -1).sum() > 0
    assert colour["green"] == (test["colour"] == 1).sum()
    size = slices[slices["slice"] == "size"].set_index("bin")["rows"]
    assert size["missing"] == test["size"].isna().sum() > 0 and size.sum() == 300
    # integrated gradients on finite inputs; the category column is left out
    attributions = pd.read_csv(project / "eval/plots/attributions.csv")
    assert set(attributions["feature"]) == {"size", "weight"}
    assert attributions["share"].sum() == pytest.approx(1.0, abs=1e-4)
    assert attributions["attribution"].notna().all()
    assert attributions.iloc[0]["feature"] == "size"  # the formula weighs size 1.5, weight 0.8


def test_regression_metrics_baselines_and_plot_data(project):
    write_project(project, task="regression", report={"plot_points": 50})
    evaluate()
    doc = metrics_of(project)
    y, pred = model_output(project, "regression")
    assert doc["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), abs=1e-6)
    assert doc["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), abs=1e-6)
    assert doc["r2"] == pytest.approx(skm.r2_score(y, pred), abs=1e-6)
    for name in ("rmse", "mae", "r2"):
        assert doc["interval"][name]["low"] <= doc[name] <= doc["interval"][name]["high"]
    assert "accuracy" not in doc and "classes" not in doc["dataset"]
    assert doc["dataset"]["task"] == "regression" and doc["dataset"]["label"] == "price"
    linear, mean = doc["baseline"]["linear_regression"], doc["baseline"]["mean_predictor"]
    assert linear["r2"] > 0.85 and -0.05 < mean["r2"] <= 0.0 + 1e-9  # the mean of train, not of test
    assert mean["rmse"] > 2 * linear["rmse"]
    residuals = pd.read_csv(project / "eval/plots/residuals.csv")
    assert len(residuals) == 50
    assert np.allclose(residuals["residual"], residuals["predicted"] - residuals["actual"], atol=1e-5)
    for empty in ("roc", "pr", "confusion", "calibration"):
        assert pd.read_csv(project / f"eval/plots/{empty}.csv").empty
    slices = pd.read_csv(project / "eval/plots/slices.csv")
    assert {"rmse", "mae"} <= set(slices.columns) and "accuracy" not in slices.columns
    predictions = pd.read_csv(project / "eval/predictions.csv")
    assert list(predictions.columns[:3]) == ["row", "label", "prediction"]
    assert np.allclose(predictions["prediction"], pred, atol=1e-5)


def test_a_large_test_split_keeps_committed_files_bounded_and_paired(project, tmp_path_factory, monkeypatch):
    """4000 test rows, max_rows 500: the intervals and predictions.csv use the 500 smallest row hashes,
    so a second model on the same split keeps the same rows and is compared paired."""
    bounds = {"max_rows": 500, "plot_points": 50, "ig_rows": 100}
    write_project(project, rows=20000, report=bounds)
    evaluate()
    doc = metrics_of(project)
    assert doc["dataset"]["test_rows"] == 4000 and doc["dataset"]["interval_rows"] == 500
    for name, span in doc["interval"].items():  # drawn from 500 rows, centred on the value of all 4000
        assert span["low"] <= doc[name] <= span["high"], name
    predictions = pd.read_csv(project / "eval/predictions.csv", dtype={"row": str})
    assert len(predictions) == 500
    roc, pr = (pd.read_csv(project / f"eval/plots/{n}.csv") for n in ("roc", "pr"))
    assert len(roc) <= 52 and len(pr) <= 52
    assert roc.iloc[0][["fpr", "tpr"]].tolist() == [0, 0] and roc.iloc[-1][["fpr", "tpr"]].tolist() == [1, 1]
    assert pr.iloc[-1]["recall"] == 0 and pr.iloc[0]["recall"] == 1
    area = float(np.trapezoid(roc["tpr"], roc["fpr"]))
    y, proba = model_output(project, "classification")
    micro = skm.roc_auc_score(np.eye(3)[y].ravel(), proba.ravel())
    assert area == pytest.approx(micro, abs=0.005)  # the cut curve keeps its shape

    other = tmp_path_factory.mktemp("other")
    write_project(other, rows=20000, report=bounds, model=formula_model("classification", strength=0.5))
    monkeypatch.chdir(other)
    evaluate()
    theirs = pd.read_csv(other / "eval/predictions.csv", dtype={"row": str})
    assert sorted(theirs["row"]) == sorted(predictions["row"])
    settings = report_settings(load_params())
    mine = Predictions.parse((project / "eval/predictions.csv").read_text())
    base = Predictions.parse((other / "eval/predictions.csv").read_text())
    assert compare(mine, base, settings, ("accuracy",)).kind == "paired"


def commit_main(path) -> None:
    """main: the evaluated project committed as the pipeline leaves it (artifacts untracked, like DVC)."""
    (path / ".gitignore").write_text("artifacts/\nreports/pr/\n")
    (path / "data.dvc").write_text("outs:\n- md5: abc123.dir\n  path: data\n")
    sh(["git", "init", "-q", "-b", "main"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "main"], path)
    sh(["git", "checkout", "-q", "-b", "pr"], path)


REGRESSION_GATES = {
    "min": {"accuracy": 0.9},  # the classification gates: not applied to a regression model
    "regression": {"min": {"r2": 0.5}, "max": {"rmse": 100.0}, "max_regression": {"rmse": 0.1, "r2": 0.5}},
}


def set_gates(path, gates: dict) -> None:
    import yaml

    params = yaml.safe_load((path / "params.yaml").read_text())
    params["gates"] = gates
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def regression_report(project) -> tuple[int, str]:
    """main: the formula; the PR: a weaker one (strength 0.8); `mlops report`'s exit status and text."""
    from mlops.report.render import run as report

    write_project(project, task="regression")
    set_gates(project, REGRESSION_GATES)
    evaluate()
    commit_main(project)
    torch.jit.script(formula_model("regression", strength=0.8).eval()).save(
        str(project / "artifacts/model/model.pt")
    )
    evaluate()
    return report(), (project / "reports/pr/report.md").read_text()


def swapped_report(project) -> tuple[int, str]:
    """main predicts 3 classes; the PR swaps in a regression table."""
    from mlops.report.render import run as report

    write_project(project)
    evaluate()
    commit_main(project)
    write_project(project, task="regression")
    set_gates(project, REGRESSION_GATES)
    evaluate()
    return report(), (project / "reports/pr/report.md").read_text()


def three_class_report(project) -> tuple[int, str]:
    """main: the formula on 3 classes; the PR: strength 0.9, gates loose enough to pass."""
    from mlops.report.render import run as report

    write_project(project)
    set_gates(project, {"min": {"f1": 0.3, "roc_auc": 0.6}, "max_regression": {"f1": 0.5, "roc_auc": 0.5}})
    evaluate()
    commit_main(project)
    torch.jit.script(formula_model("classification", strength=0.9).eval()).save(
        str(project / "artifacts/model/model.pt")
    )
    evaluate()
    return report(), (project / "reports/pr/report.md").read_text()


def test_regression_report_gates_a_worse_rmse_in_the_right_direction(project, monkeypatch):
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    status, text = regression_report(project)
    assert status == 1
    assert text.startswith("## Model report: ❌ 1 of 4 gates failed")
    assert (
        "*   ❌ **max regression rmse**: " in text and ": rise " in text and "(paired): beyond noise" in text
    )
    assert "✅ | max rmse | " in text and "✅ | min r2 | " in text and "max regression r2" in text
    assert "min accuracy" not in text
    assert "| ▲ **worse** | rmse | " in text  # higher rmse is worse
    assert "| linear regression |" in text and "| mean predictor |" in text
    assert "![predicted vs actual](predicted.png)" in text and "![residuals](residuals.png)" in text
    assert "roc.png" not in text and "class balance" not in text
    for png in ("predicted", "residuals", "attributions"):
        assert (project / f"reports/pr/{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "Not attributed: the category columns `colour`" in text


def test_a_swapped_dataset_has_no_comparable_baseline(project, monkeypatch):
    """main predicts 3 classes; the PR swaps in a regression table: nothing is gated against main."""
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    status, text = swapped_report(project)
    assert status == 0
    assert "**No comparable baseline**: the task changed (classification → regression)" in text
    assert "skipped: no comparable main baseline: the task changed" in text
    assert "| rmse | — |" in text and "| accuracy |" not in text
    assert "Δ" not in text.split("### Baselines")[0].split("| metric |")[1].split("\n")[1]


def test_three_class_report_has_a_per_class_table(project, monkeypatch):
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    status, text = three_class_report(project)
    assert status == 0
    doc = metrics_of(project)
    lowest = min(doc["per_class"].items(), key=lambda kv: kv[1]["f1"])
    assert f"<summary>Per class: 3 classes, lowest F1 {lowest[1]['f1']:.4f} ({lowest[0]})</summary>" in text
    high = doc["per_class"]["high"]
    assert (
        f"| high | {high['support']} | {high['precision']:.4f} | {high['recall']:.4f} | {high['f1']:.4f} |"
        in text
    )
    assert f"weighted precision {doc['weighted_precision']:.4f}" in text
    assert "| weighted_f1 |" in text and "Δ paired on the same rows" in text


class ManyClasses(torch.nn.Module):
    """A fixed linear map from the three features to `k` logits (NaN read as 0)."""

    def __init__(self, k: int):
        super().__init__()
        self.register_buffer("weight", torch.randn(3, k, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(x) @ self.weight


def test_many_classes_stay_bounded(project):
    """Many classes (the issue's table had 280): eval/predictions.csv keeps at most report.max_cells
    probability cells (at least 100 rows), the confusion matrix the most frequent report.max_classes
    classes plus one pooled "other", and the report's per-class table the lowest-F1 classes only."""
    from mlops.report.sections import per_class_section
    from mlops.report.side import Side

    k = 60
    write_project(
        project,
        rows=1000,
        model=ManyClasses(k),
        report={"max_cells": 3000, "max_classes": 12, "slices": [], "top_k": 0},
    )
    rng = np.random.default_rng(1)
    for part in ("train", "val", "test"):
        path = project / f"artifacts/prepared/{part}.parquet"
        frame = pd.read_parquet(path)
        frame["label"] = rng.integers(0, k, len(frame))
        frame.to_parquet(path, index=False)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["classes"] = [f"c{i}" for i in range(k)]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    evaluate()
    doc = metrics_of(project)
    assert doc["dataset"]["test_rows"] == 200
    assert doc["dataset"]["interval_rows"] == 100  # 3000 cells // 60 classes = 50 rows; at least 100
    predictions = pd.read_csv(project / "eval/predictions.csv")
    assert len(predictions) == 100 and sum(c.startswith("proba_") for c in predictions.columns) == k
    assert len(doc["per_class"]) == k  # every class's numbers stay in metrics.json
    matrix = pd.read_csv(project / "eval/plots/confusion.csv")
    assert len(matrix) == 13 * 13 and "(other classes)" in set(matrix["actual"])
    assert matrix["count"].sum() == 200
    assert pd.read_csv(project / "eval/plots/attributions.csv").empty  # top_k 0: none computed
    side = Side("this PR", None, "0" * 40, doc, {}, None, {})
    section = "\n".join(per_class_section(side, side, 12))
    assert "<summary>Per class: 60 classes" in section
    assert sum(bool(re.match(r"\| c\d+ \|", line)) for line in section.splitlines()) == 12
    assert "The 12 lowest F1 of 60 classes" in section
