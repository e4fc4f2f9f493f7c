"""Bootstrap intervals: the weighted metrics agree with scikit-learn, and the intervals cover known truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from mlops.report.uncertainty import delta_intervals, intervals, point_metrics, verdict


def binary_case(n: int, seed: int, separation: float = 1.5):
    """Scores N(separation, 1) for positives, N(0, 1) for negatives: the true ROC AUC is Phi(sep / sqrt 2)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    score = rng.normal(separation * y, 1.0)
    p1 = 1 / (1 + np.exp(-(score - separation / 2) * 1.5))
    return y, np.column_stack([1 - p1, p1])


def test_unit_weights_reproduce_scikit_learn_binary_and_multiclass():
    y, proba = binary_case(300, 0)
    ours = point_metrics(y, proba)
    pred = proba.argmax(1)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert ours["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert ours["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert ours["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert ours["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert ours["brier"] == pytest.approx(skm.brier_score_loss(y, proba[:, 1]))

    rng = np.random.default_rng(1)
    y3 = rng.integers(0, 3, 200)
    p3 = rng.dirichlet([1, 1, 1], 200) + 0.6 * np.eye(3)[y3]
    p3 = np.round(p3 / p3.sum(1, keepdims=True), 2)  # rounding makes ties: the AUC must count them half
    p3 = p3 / p3.sum(1, keepdims=True)
    ours = point_metrics(y3, p3)
    assert ours["f1"] == pytest.approx(skm.f1_score(y3, p3.argmax(1), average="macro"))
    assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y3, p3, multi_class="ovr"))


def test_ece_of_a_perfectly_calibrated_model_is_near_zero_and_of_an_overconfident_one_is_not():
    rng = np.random.default_rng(2)
    p1 = rng.random(20000)
    y = (rng.random(20000) < p1).astype(np.int64)  # outcomes drawn from the stated probabilities
    calibrated = point_metrics(y, np.column_stack([1 - p1, p1]), ("ece",))["ece"]
    sharp = np.where(p1 > 0.5, 0.99, 0.01)
    overconfident = point_metrics(y, np.column_stack([1 - sharp, sharp]), ("ece",))["ece"]
    assert calibrated < 0.02
    assert overconfident == pytest.approx(0.24, abs=0.02)  # E|p - 0.99| over p ~ U(0.5, 1): 0.24


def test_interval_contains_the_true_accuracy_of_a_known_population():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 3000)
    correct = rng.random(3000) < 0.85  # true accuracy 0.85
    p1 = np.where(correct == (y == 1), 0.8, 0.2)
    spans = intervals(y, np.column_stack([1 - p1, p1]), 500, 0.95, seed=0, names=("accuracy",))
    assert spans["accuracy"].contains(0.85)
    assert spans["accuracy"].high - spans["accuracy"].low < 0.03  # and is informative


def coverage(metric: str, truth: float, draw, trials: int) -> float:
    hits = 0
    for trial in range(trials):
        y, proba = draw(trial)
        hits += intervals(y, proba, 300, 0.95, seed=trial, names=(metric,))[metric].contains(truth)
    return hits / trials


def test_95_percent_intervals_cover_the_true_accuracy_about_95_percent_of_the_time():
    """200 independent 100-row test splits from a population whose accuracy is 0.8."""

    def draw(trial):
        rng = np.random.default_rng(1000 + trial)
        y = rng.integers(0, 2, 100)
        p1 = np.where((rng.random(100) < 0.8) == (y == 1), 0.7, 0.3)
        return y, np.column_stack([1 - p1, p1])

    assert 0.89 <= coverage("accuracy", 0.8, draw, 200) <= 0.99


def test_95_percent_intervals_cover_the_true_roc_auc_about_95_percent_of_the_time():
    """Two Gaussians one standard deviation apart: the true ROC AUC is Phi(1 / sqrt 2) = 0.760."""
    separation = 1.0
    truth = float(norm.cdf(separation / np.sqrt(2)))
    rate = coverage("roc_auc", truth, lambda trial: binary_case(150, 2000 + trial, separation), 120)
    assert 0.88 <= rate <= 1.0


def test_paired_interval_is_narrower_than_unpaired_for_two_similar_models():
    y, proba = binary_case(200, 6)
    rng = np.random.default_rng(7)
    nudged = np.clip(proba[:, 1] + rng.normal(0, 0.05, len(y)), 0, 1)
    other = np.column_stack([1 - nudged, nudged])
    paired = delta_intervals((y, other), (y, proba), True, 600, 0.95, 0, ("roc_auc",))["roc_auc"]
    unpaired = delta_intervals((y, other), (y, proba), False, 600, 0.95, 0, ("roc_auc",))["roc_auc"]
    assert (paired.high - paired.low) * 3 < unpaired.high - unpaired.low
    assert paired.contains(point_metrics(y, other)["roc_auc"] - point_metrics(y, proba)["roc_auc"])


def test_identical_predictions_are_no_change_and_seeded_intervals_repeat():
    y, proba = binary_case(150, 8)
    same = delta_intervals((y, proba), (y, proba), True, 300, 0.95, 0)
    assert all(verdict(span, m) == "no change" for m, span in same.items())
    assert intervals(y, proba, 300, 0.95, seed=1) == intervals(y, proba, 300, 0.95, seed=1)


@pytest.mark.parametrize(
    ("low", "high", "metric", "word"),
    [
        (0.01, 0.05, "accuracy", "better"),
        (-0.05, -0.01, "accuracy", "worse"),
        (-0.01, 0.02, "accuracy", "within noise"),
        (0.01, 0.05, "log_loss", "worse"),  # lower is better
        (-0.05, -0.01, "ece", "better"),
    ],
)
def test_verdict_follows_the_interval_and_the_metric_direction(low, high, metric, word):
    from mlops.report.uncertainty import Interval

    assert verdict(Interval(low, high), metric) == word
