"""Real models on the project's data: another seed is "within noise", a model trained on shuffled labels is
"worse" and fails, and `mlops report` pairs a PR with main's committed predictions end to end."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mlops.config.params import load_params
from mlops.report.compare import Predictions, compare
from mlops.report.gates import all_passed, check_gates
from mlops.report.settings import report_settings
from mlops.report.uncertainty import METRICS
from model.evaluate import compute_metrics, predict_proba
from tests.repo import clone, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundled(trained_repo):
    """main's model as the pipeline made it (committed predictions), plus the prepared split it used."""
    params = load_params(trained_repo / "params.yaml")
    main = Predictions.parse((trained_repo / "eval/predictions.csv").read_text())
    prepared = trained_repo / "artifacts/prepared"
    split = {part: pd.read_parquet(prepared / f"{part}.parquet") for part in ("train", "val", "test")}
    return params, main, split


def train_variant(params, split, tmp_path, seed: int, shuffle_labels: bool = False):
    """The pipeline's fit and export on main's split, with another seed or with shuffled train labels."""
    from model.prepare import fit_scaler
    from model.train import export, fit

    train = split["train"]
    if shuffle_labels:  # a deliberately broken model: the labels it learns from carry no signal
        train = train.assign(label=np.random.default_rng(seed).permutation(train["label"].to_numpy()))
    features = params.data.feature_names
    module, _ = fit(replace(params, seed=seed), train, split["val"], fit_scaler(train, features))
    path = tmp_path / f"model-{seed}-{shuffle_labels}.pt"
    export(module, path)
    test = split["test"]
    proba = predict_proba(path, test[features].to_numpy())
    return compute_metrics(test["label"].to_numpy(), proba, len(params.data.classes)), proba


def slice_bins(params, test: pd.DataFrame) -> int:
    """The slice rows the report should show: report.slices on columns this table has (others are skipped)."""
    count = 0
    for spec in params.raw["report"].get("slices") or []:
        spec = {"column": spec} if isinstance(spec, str) else spec
        if spec["column"] in params.data.feature_names:
            count += spec.get("bins") or test[spec["column"]].nunique()
    return count


def scores_of(repo) -> dict:
    metrics = json.loads((repo / "eval/metrics.json").read_text())
    return {k: v for k, v in metrics.items() if not isinstance(v, dict)}


def as_predictions(main: Predictions, proba: np.ndarray) -> Predictions:
    return Predictions(main.keys, main.y, proba, main.slices)


def test_two_seeds_of_the_same_model_are_within_noise_and_pass(bundled, trained_repo, tmp_path):
    params, main, split = bundled
    settings = report_settings(params)
    scores, proba = train_variant(params, split, tmp_path, seed=params.seed + 1)
    assert not np.allclose(proba, main.proba)  # really another model
    comparison = compare(as_predictions(main, proba), main, settings, tuple(settings["slice_metrics"]))
    assert comparison.kind == "paired"
    verdicts = {m: compare_verdict(comparison, m) for m in METRICS}
    assert set(verdicts.values()) <= {"within noise", "no change"}, verdicts
    assert comparison.regressed_slices == []
    main_scores = scores_of(trained_repo)
    results = check_gates(scores, main_scores, params.gates.rules(), deltas=comparison.deltas)
    assert all_passed([r for r in results if r.name.startswith("max regression")]), results


def compare_verdict(comparison, metric: str) -> str:
    from mlops.report.uncertainty import verdict

    return verdict(comparison.deltas[metric], metric)


def test_a_model_trained_on_shuffled_labels_is_worse_and_fails(bundled, trained_repo, tmp_path):
    params, main, split = bundled
    settings = report_settings(params)
    scores, proba = train_variant(params, split, tmp_path, seed=params.seed, shuffle_labels=True)
    comparison = compare(as_predictions(main, proba), main, settings, tuple(settings["slice_metrics"]))
    for metric in ("accuracy", "roc_auc", "log_loss", "brier"):
        assert compare_verdict(comparison, metric) == "worse", (metric, comparison.deltas[metric])
    main_scores = scores_of(trained_repo)
    results = check_gates(scores, main_scores, params.gates.rules(), deltas=comparison.deltas)
    failed = [r for r in results if not r.passed]
    assert any(r.name == "max regression accuracy" and "beyond noise" in r.detail for r in failed), failed


def test_report_pairs_a_pr_with_mains_committed_predictions(trained_repo, dvc_remote, tmp_path):
    repo = clone(trained_repo, tmp_path / "pr", dvc_remote)
    sh(["dvc", "pull", "-q"], repo)
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("  lr: 0.003", "  lr: 0.002", 1))
    sh(["dvc", "repro", "-q"], repo)
    proc = sh(["mlops", "report", "--base", "main"], repo, check=False)
    text = (repo / "reports/pr/report.md").read_text()
    assert proc.returncode == 0, text
    assert "Δ paired on the same rows" in text and "within noise" in text
    assert "| logistic regression |" in text and "| majority class |" in text
    bins = slice_bins(
        load_params(repo / "params.yaml"), pd.read_parquet(repo / "artifacts/prepared/test.parquet")
    )
    if bins:  # report.slices names columns of this table
        assert f"Slices: {bins}, 0 regressed beyond noise vs main" in text
    else:
        assert "Slices:" not in text
    for png in ("roc", "pr", "calibration", "attributions", "confusion", "training"):
        assert (repo / f"reports/pr/{png}.png").read_bytes()[:4] == b"\x89PNG"
