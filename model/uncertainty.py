"""Bootstrap intervals for the test metrics, and paired intervals for their change against a baseline.

Why: on a 114-row test split one row is 0.0088 of accuracy, so a point estimate alone cannot tell a
reviewer signal from noise. A resample is a vector of row multiplicities (weights), so every metric is
computed as a weighted metric, vectorised over resamples; a *paired* interval applies the same weights to
both models' predictions on the same rows, which cancels the "which rows happened to be in the test
split" noise that both models share.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "ece")
WEIGHTED = ("weighted_precision", "weighted_recall", "weighted_f1")  # more than two classes only
REGRESSION_METRICS = ("rmse", "mae", "r2")
KNOWN = (*METRICS, *WEIGHTED, *REGRESSION_METRICS)
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "rmse", "mae"})
ECE_BINS = 10
CHUNK = 250  # resamples per weight matrix at most ...
CHUNK_CELLS = 4_000_000  # ... and at most this many weights (32 MB): bounded memory on any test split


def metric_names(task: str, n_classes: int) -> tuple[str, ...]:
    """The metrics `evaluate` reports: binary, more classes (adds weighted averages), regression."""
    if task == "regression":
        return REGRESSION_METRICS
    return METRICS if n_classes <= 2 else (*METRICS, *WEIGHTED)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def resample_weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Row multiplicities of `resamples` bootstrap draws of n rows (each row sums to n), in chunks."""
    rng = np.random.default_rng(seed)
    done = 0
    chunk = max(1, min(CHUNK, CHUNK_CELLS // max(n, 1)))
    while done < resamples:
        b = min(chunk, resamples - done)
        picks = rng.integers(0, n, size=(b, n))
        flat = (np.arange(b)[:, None] * n + picks).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """NaN where undefined (e.g. recall of a slice without positives): shown as "—", not as a 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _prf(w: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = w @ (truth & pred)
    fp = w @ (~truth & pred)
    fn = w @ (truth & ~pred)
    return _safe_div(tp, tp + fp), _safe_div(tp, tp + fn), _safe_div(2 * tp, 2 * tp + fp + fn)


def _auc(w: np.ndarray, score: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC (ties count one half), one value per weight row; NaN without both classes."""
    order = np.argsort(score, kind="stable")
    s, pos = score[order], positive[order]
    wo = w[:, order]
    starts = np.searchsorted(s, s, side="left")  # first index of each row's tie group
    ends = np.searchsorted(s, s, side="right")  # one past its last
    cum_neg = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(wo * ~pos, axis=1)], axis=1)
    below, upto = cum_neg[:, starts], cum_neg[:, ends]
    wins = (wo * pos * (below + 0.5 * (upto - below))).sum(axis=1)
    n_pos, n_neg = (wo * pos).sum(axis=1), (wo * ~pos).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), wins / (n_pos * n_neg), np.nan)


def calibration_target(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, outcome) pairs the reliability diagram and ECE use.

    Binary: the positive-class probability against "is positive" (the classic reliability diagram);
    more classes: the top-label confidence against "was correct".
    """
    if proba.shape[1] == 2:
        return proba[:, 1], (y == 1).astype(np.float64)
    return proba.max(axis=1), (proba.argmax(axis=1) == y).astype(np.float64)


def ece_bin(confidence: np.ndarray) -> np.ndarray:
    return np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)


def weighted_metrics(
    w: np.ndarray, y: np.ndarray, proba: np.ndarray, names: tuple[str, ...] = METRICS
) -> dict[str, np.ndarray]:
    """Each metric once per row of `w` (shape resamples x rows). Binary: positive class = index 1;
    more classes: macro averages (ROC AUC one-vs-rest) and `weighted_*` (by class support), as
    `evaluate` reports them. Regression (`rmse`, `mae`, `r2`): `proba` is the prediction, shape [n, 1]."""
    total = w.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    if set(REGRESSION_METRICS) & set(names):
        out.update(_regression(w, total, np.asarray(y, dtype=np.float64), proba[:, 0]))
        return {k: out[k] for k in names}
    n_classes = proba.shape[1]
    pred = proba.argmax(axis=1)
    if "accuracy" in names:
        out["accuracy"] = (w @ (pred == y)) / total
    if {"precision", "recall", "f1"} & set(names):
        classes = [1] if n_classes == 2 else range(n_classes)
        parts = [_prf(w, y == c, pred == c) for c in classes]
        for i, name in enumerate(("precision", "recall", "f1")):
            out[name] = np.mean([p[i] for p in parts], axis=0)
    if set(WEIGHTED) & set(names):
        parts = [_prf(w, y == c, pred == c) for c in range(n_classes)]
        support = np.stack([w @ (y == c) for c in range(n_classes)])  # classes x resamples
        for i, name in enumerate(WEIGHTED):  # an undefined class score counts 0, as in scikit-learn
            scores = np.nan_to_num(np.stack([p[i] for p in parts]))
            out[name] = (scores * support).sum(axis=0) / total
    if "roc_auc" in names:
        if n_classes == 2:
            out["roc_auc"] = _auc(w, proba[:, 1], y == 1)
        else:
            out["roc_auc"] = np.mean([_auc(w, proba[:, c], y == c) for c in range(n_classes)], axis=0)
    if "log_loss" in names:
        p_true = np.clip(proba[np.arange(len(y)), y], 1e-15, 1)
        out["log_loss"] = (w @ -np.log(p_true)) / total
    if "brier" in names:
        if n_classes == 2:
            sq = (proba[:, 1] - (y == 1)) ** 2
        else:
            sq = ((proba - np.eye(n_classes)[y]) ** 2).sum(axis=1)
        out["brier"] = (w @ sq) / total
    if "ece" in names:
        confidence, outcome = calibration_target(y, proba)
        gaps = np.eye(ECE_BINS)[ece_bin(confidence)] * (outcome - confidence)[:, None]
        out["ece"] = np.abs(w @ gaps).sum(axis=1) / total
    return {k: out[k] for k in names}


def _regression(w: np.ndarray, total: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """RMSE, MAE and R² per weight row; R² is 1 - SSE/SST around the resample's weighted mean label."""
    err = pred - y
    mse = (w @ (err * err)) / total
    centred = y - y.mean()  # numerically safer sums of squares; R² does not depend on the shift
    mean = (w @ centred) / total
    sst = (w @ (centred * centred)) / total - mean * mean
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1 - mse / np.where(sst > 0, sst, 1), np.nan)
    return {"rmse": np.sqrt(mse), "mae": (w @ np.abs(err)) / total, "r2": r2}


def point_metrics(y: np.ndarray, proba: np.ndarray, names: tuple[str, ...] = METRICS) -> dict[str, float]:
    values = weighted_metrics(np.ones((1, len(y))), y, proba, names)
    return {k: float(v[0]) for k, v in values.items()}


def _percentiles(samples: np.ndarray, confidence: float) -> Interval | None:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(low), float(high))


def intervals(
    y: np.ndarray,
    proba: np.ndarray,
    resamples: int,
    confidence: float,
    seed: int,
    names: tuple[str, ...] = METRICS,
) -> dict[str, Interval | None]:
    """Percentile bootstrap interval of each metric over the rows (seeded: same input, same interval)."""
    chunks = [weighted_metrics(w, y, proba, names) for w in resample_weights(len(y), resamples, seed)]
    return {k: _percentiles(np.concatenate([c[k] for c in chunks]), confidence) for k in names}


def delta_intervals(
    pr: tuple[np.ndarray, np.ndarray],
    base: tuple[np.ndarray, np.ndarray],
    paired: bool,
    resamples: int,
    confidence: float,
    seed: int,
    names: tuple[str, ...] = METRICS,
) -> dict[str, Interval | None]:
    """Interval of (PR metric - base metric). `paired`: both are (y, proba) on the same rows in the same
    order, and each resample weighs both alike. Otherwise (different test rows, e.g. another split seed)
    the two sides are resampled independently: a wider but still honest interval."""
    (y_pr, p_pr), (y_base, p_base) = pr, base
    pr_weights = resample_weights(len(y_pr), resamples, seed)
    base_weights = pr_weights if paired else resample_weights(len(y_base), resamples, seed + 1)
    deltas: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for w_pr in pr_weights:
        w_base = w_pr if paired else next(base_weights)
        m_pr = weighted_metrics(w_pr, y_pr, p_pr, names)
        m_base = weighted_metrics(w_base, y_base, p_base, names)
        for k in names:
            deltas[k].append(m_pr[k] - m_base[k])
    return {k: _percentiles(np.concatenate(v), confidence) for k, v in deltas.items()}


def recentre(
    spans: dict[str, Interval | None], full: dict[str, float], drawn: dict[str, float]
) -> dict[str, Interval | None]:
    """Intervals drawn from a sample of the rows, moved to sit around the value on all rows (`full`)
    instead of the sample's own (`drawn`): same width (conservative: wider than all the rows would
    give), and the number shown is always inside its interval."""
    out: dict[str, Interval | None] = {}
    for k, span in spans.items():
        shift = full.get(k, np.nan) - drawn.get(k, np.nan)
        out[k] = (
            span if span is None or not np.isfinite(shift) else Interval(span.low + shift, span.high + shift)
        )
    return out


def verdict(delta: Interval | None, metric: str) -> str:
    """ "better" / "worse" when the interval of the change excludes zero, else "within noise"."""
    if delta is None:
        return "no interval"
    if delta.low == delta.high == 0:
        return "no change"
    lower_better = metric in LOWER_IS_BETTER
    if delta.low > 0:
        return "worse" if lower_better else "better"
    if delta.high < 0:
        return "better" if lower_better else "worse"
    return "within noise"
