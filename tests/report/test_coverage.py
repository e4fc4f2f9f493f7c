"""Do the intervals keep their stated coverage on the small counts of the bundled data (114 test rows)?

Seeded simulations that call the project's own interval code: a true value is fixed, test splits are
drawn from it, and the share of 95% intervals that contain the truth must lie in [93%, 97%].
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, norm

from mlops.report.uncertainty import delta_intervals, intervals, verdict

N, POSITIVES = 114, 42  # the bundled data's test split: 114 rows, 42 malignant


def proba_for(y: np.ndarray, correct: np.ndarray) -> np.ndarray:
    p1 = np.where(correct == (y == 1), 0.9, 0.1)
    return np.column_stack([1 - p1, p1])


def test_accuracy_interval_covers_a_true_0965_at_114_rows():
    """Exact coverage (every possible count weighed by its binomial probability) and a seeded simulation."""
    y = (np.arange(N) < POSITIVES).astype(np.int64)
    covered = np.zeros(N + 1, dtype=bool)
    for k in range(N + 1):
        span = intervals(y, proba_for(y, np.arange(N) < k), 100, 0.95, 0, ("accuracy",))["accuracy"]
        covered[k] = span.contains(0.965)
    exact = float(binom.pmf(np.arange(N + 1), N, 0.965)[covered].sum())
    print(f"accuracy coverage: exact {exact:.4f}")
    assert 0.93 <= exact <= 0.97, exact

    rng = np.random.default_rng(20)
    counts = rng.binomial(N, 0.965, size=4000)
    simulated = covered[counts].mean()
    print(f"accuracy coverage: simulated {simulated:.4f}")
    assert 0.93 <= simulated <= 0.97, simulated


def test_roc_auc_interval_covers_a_true_099_at_114_rows():
    """Binormal scores, positives N(d, 1) and negatives N(0, 1): the true AUC is Phi(d / sqrt 2) = 0.99."""
    rng = np.random.default_rng(21)
    d = np.sqrt(2) * norm.ppf(0.99)
    y = (np.arange(N) < POSITIVES).astype(np.int64)
    reps, hits, above = 2000, 0, 0
    for _ in range(reps):
        score = rng.normal(d * y, 1.0)
        p1 = 1 / (1 + np.exp(-score))
        span = intervals(y, np.column_stack([1 - p1, p1]), 100, 0.95, 0, ("roc_auc",))["roc_auc"]
        hits += span.contains(0.99)
        above += span.low > 0.99
    print(f"roc_auc coverage {hits / reps:.4f}, above {above / reps:.4f}")
    assert 0.93 <= hits / reps <= 0.97, hits / reps
    assert above / reps < 0.04  # the misses are not all on one side (the percentile bootstrap: 17%)


def test_four_rows_lost_and_none_gained_is_within_noise():
    """Exact McNemar: 4 discordant rows all one way has p = 0.125, so no verdict."""
    y = (np.arange(N) < POSITIVES).astype(np.int64)
    base = proba_for(y, np.ones(N, dtype=bool))
    pr = proba_for(y, np.arange(N) >= 4)
    span = delta_intervals((y, pr), (y, base), True, 1000, 0.95, 0, ("accuracy",))["accuracy"]
    assert span.low < 0 < span.high
    assert verdict(span, "accuracy") == "within noise"
    lost = proba_for(y, np.arange(N) >= 9)  # 9 of 9 lost: p = 0.004
    span = delta_intervals((y, lost), (y, base), True, 1000, 0.95, 0, ("accuracy",))["accuracy"]
    assert verdict(span, "accuracy") == "worse"


def test_one_missed_positive_of_twelve_is_not_a_certain_drop():
    """Recall on a slice with 12 positives: resamples without a positive are kept, not dropped, and one
    missed positive is not "−1.000…−1.000, worse"."""
    y = np.r_[np.ones(12), np.zeros(20)].astype(np.int64)
    base = proba_for(y, np.ones(len(y), dtype=bool))
    pr = proba_for(y, np.arange(len(y)) != 0)
    spans = delta_intervals((y, pr), (y, base), True, 1000, 0.95, 0, ("recall", "f1"))
    assert spans["recall"].low < 0 < spans["recall"].high or spans["recall"].high == 0
    assert verdict(spans["recall"], "recall") == "within noise"
    assert spans["f1"].low < spans["f1"].high <= 0.0 + 1e-12 or spans["f1"].low < 0 < spans["f1"].high


def test_a_perfect_model_has_an_interval_of_nonzero_width():
    y = (np.arange(N) < POSITIVES).astype(np.int64)
    perfect = proba_for(y, np.ones(N, dtype=bool))
    spans = intervals(y, perfect, 500, 0.95, 0, ("accuracy", "recall", "roc_auc"))
    for name, span in spans.items():
        assert span.high > 0.9999 and span.low < 0.99, (name, span)
    other = proba_for(y, np.arange(N) >= 3)  # 3 rows wrong, on other test rows: unpaired
    spans = delta_intervals((y, other), (y, perfect), False, 1000, 0.95, 0, ("accuracy",))
    assert verdict(spans["accuracy"], "accuracy") == "within noise"
