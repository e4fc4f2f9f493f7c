"""Regression and multi-class metrics, their gates, swap detection and curve down-sampling, on cases whose
answers are known (scikit-learn, or the construction)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlops.report.gates import check_gates, swap_reason
from mlops.report.uncertainty import (
    REGRESSION_METRICS,
    WEIGHTED,
    Interval,
    intervals,
    recentre,
    weighted_metrics,
)
from model.evaluate import downsample_curve


def test_weighted_regression_metrics_match_scikit_learn_with_sample_weights():
    rng = np.random.default_rng(0)
    y = rng.normal(50, 10, 400)
    pred = y + rng.normal(0, 3, 400)
    w = rng.integers(0, 4, size=(3, 400)).astype(float)  # three bootstrap-like resamples
    ours = weighted_metrics(w, y, pred[:, None], REGRESSION_METRICS)
    for i in range(3):
        assert ours["rmse"][i] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred, sample_weight=w[i])))
        assert ours["mae"][i] == pytest.approx(skm.mean_absolute_error(y, pred, sample_weight=w[i]))
        assert ours["r2"][i] == pytest.approx(skm.r2_score(y, pred, sample_weight=w[i]))


def test_weighted_class_averages_match_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.choice(4, size=500, p=[0.55, 0.25, 0.15, 0.05])
    proba = rng.dirichlet([1, 1, 1, 1], 500) + 0.8 * np.eye(4)[y]
    proba /= proba.sum(1, keepdims=True)
    w = rng.integers(0, 3, size=(2, 500)).astype(float)
    ours = weighted_metrics(w, y, proba, WEIGHTED)
    pred = proba.argmax(1)
    for i in range(2):
        for name in WEIGHTED:
            scorer = getattr(skm, f"{name.removeprefix('weighted_')}_score")
            expected = scorer(y, pred, average="weighted", sample_weight=w[i], zero_division=0)
            assert ours[name][i] == pytest.approx(expected)


def test_rmse_intervals_cover_the_true_noise_about_95_percent_of_the_time():
    """y = prediction + N(0, 2): the population RMSE is 2; 95% intervals on 400 rows should cover it."""
    hits = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        pred = rng.normal(0, 5, 400)
        y = pred + rng.normal(0, 2, 400)
        span = intervals(y, pred[:, None], 300, 0.95, seed, ("rmse",))["rmse"]
        hits += span.contains(2.0)
    assert 34 <= hits <= 40  # binomial(40, 0.95): 34 or more with probability > 0.99


REGRESSION = {
    "min": {"accuracy": 0.9},  # a classifier's gates: not applied to a regression model
    "regression": {"min": {"r2": 0.5}, "max": {"rmse": 3.0}, "max_regression": {"rmse": 0.2, "r2": 0.05}},
}


def gate(results, name):
    return next(r for r in results if r.name == name)


def test_regression_gates_point_the_right_way():
    main = {"rmse": 2.0, "mae": 1.5, "r2": 0.8}
    worse = check_gates({"rmse": 2.5, "mae": 1.9, "r2": 0.78}, main, REGRESSION)
    assert [r.name for r in worse] == ["min r2", "max rmse", "max regression rmse", "max regression r2"]
    assert gate(worse, "max rmse").passed  # 2.5 <= 3.0
    rise = gate(worse, "max regression rmse")
    assert not rise.passed and "rise 0.5000, allowed 0.2 (over by 0.3000)" in rise.detail
    assert gate(worse, "max regression r2").passed  # a drop of 0.02, 0.05 allowed
    better = check_gates({"rmse": 1.0, "mae": 0.8, "r2": 0.9}, main, REGRESSION)
    assert all(r.passed for r in better)
    assert "fall 1.0000" in gate(better, "max regression rmse").detail  # an improvement is not a "drop"
    over = check_gates({"rmse": 3.5, "mae": 2.0, "r2": 0.4}, None, REGRESSION)
    assert "3.5000 <= 3.0 (over by 0.5000)" in gate(over, "max rmse").detail
    assert "0.4000 >= 0.5 (short by 0.1000)" in gate(over, "min r2").detail
    assert gate(over, "max regression rmse").detail == "skipped: no main baseline"


def test_regression_metrics_may_also_be_gated_at_the_top_level():
    """README's short form: a regression project names its metrics in `gates.min`/`max_regression`."""
    gates = {"min": {"r2": 0.5, "accuracy": 0.9}, "max_regression": {"rmse": 0.2}}
    results = check_gates({"rmse": 2.5, "mae": 1.9, "r2": 0.4}, {"rmse": 2.0, "r2": 0.8}, gates)
    assert [(r.name, r.passed) for r in results] == [("min r2", False), ("max regression rmse", False)]


def test_a_classifier_ignores_the_regression_gates_and_a_swap_skips_the_comparison():
    results = check_gates(
        {"accuracy": 0.5}, {"accuracy": 0.99}, {**REGRESSION, "max_regression": {"accuracy": 0.02}}
    )
    assert [r.name for r in results] == ["min accuracy", "max regression accuracy"]
    why = "the label changed (species → island)"
    skipped = check_gates(
        {"accuracy": 0.95}, {"accuracy": 0.99}, {"max_regression": {"accuracy": 0.02}}, no_baseline=why
    )
    assert skipped[0].passed and skipped[0].detail == f"skipped: no comparable main baseline: {why}"


def test_swap_reason_names_what_changed():
    penguins = {"task": "classification", "label": "species", "classes": ["adelie", "gentoo"]}
    assert swap_reason(penguins, dict(penguins)) is None
    assert swap_reason(penguins, None) is None  # a baseline from before identities: as comparable as ever
    assert swap_reason({**penguins, "label": "island"}, penguins) == "the label changed (species → island)"
    assert (
        swap_reason({**penguins, "classes": ["a", "b"]}, penguins)
        == "the classes changed (adelie, gentoo → a, b)"
    )
    regression = {"task": "regression", "label": "species"}
    assert swap_reason(regression, penguins) == "the task changed (classification → regression)"
    both = swap_reason({**penguins, "label": "island", "classes": ["a", "b"]}, penguins)
    assert both == "the label changed (species → island); the classes changed (adelie, gentoo → a, b)"
    assert swap_reason({**penguins, "test_rows": 10}, {**penguins, "test_rows": 99}) is None  # not identity


def test_an_interval_from_a_sample_is_moved_around_the_value_on_all_rows():
    spans = {"accuracy": Interval(0.80, 0.90), "roc_auc": None, "f1": Interval(0.5, 0.7)}
    moved = recentre(spans, {"accuracy": 0.88, "f1": 0.6}, {"accuracy": 0.85, "f1": np.nan})
    assert moved["accuracy"].low == pytest.approx(0.83) and moved["accuracy"].high == pytest.approx(0.93)
    assert moved["roc_auc"] is None and moved["f1"] == spans["f1"]  # nothing to move by: as it was


def test_a_curve_is_cut_to_its_points_with_its_ends_and_area():
    fpr = np.sort(np.random.default_rng(3).random(5000))
    curve = pd.DataFrame({"fpr": np.r_[0, fpr, 1], "tpr": np.r_[0, np.sqrt(fpr), 1]})
    cut = downsample_curve(curve, "fpr", "tpr", 200)
    assert len(cut) <= 202
    assert cut.iloc[0].tolist() == [0, 0] and cut.iloc[-1].tolist() == [1, 1]
    assert np.trapezoid(cut["tpr"], cut["fpr"]) == pytest.approx(
        np.trapezoid(curve["tpr"], curve["fpr"]), abs=1e-3
    )
    small = curve.head(50)
    assert downsample_curve(small, "fpr", "tpr", 200) is small  # short curves stay as they are
