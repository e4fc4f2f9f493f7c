"""Test-split point metrics and curves in numpy, with scikit-learn's exact definitions and arithmetic.

Why not scikit-learn itself: importing `sklearn.metrics` (and the SciPy modules it pulls in) cost
`mlops evaluate` more time than everything it computes. These functions follow scikit-learn 1.9's
definitions step by step, so eval/ keeps the same numbers (tests/report/test_scores.py checks them
against scikit-learn on random inputs with ties):

- precision, recall, F1 with `zero_division=0`; binary: the class with index 1; `macro`: the mean over the
  classes present in the labels or predictions; `weighted`: over all classes, weighted by support;
- ROC AUC: the trapezoid area under the ROC curve (binary), or the mean of the one-vs-rest areas of all
  classes (NaN when a class has no row: its area is undefined);
- log loss: the mean of -log p(true class), probabilities clipped to [eps, 1 - eps];
- the ROC curve drops collinear points (`drop_intermediate`), the precision-recall curve keeps every
  threshold and ends at (recall 0, precision 1).
"""

from __future__ import annotations

import numpy as np


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(pred)))


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (`zero_division=0`)."""
    den = np.asarray(den, dtype=np.float64).copy()
    mask = den == 0
    den[mask] = 1
    out = np.asarray(num, dtype=np.float64) / den
    out[mask] = 0.0
    return out


def prf_support(
    y: np.ndarray, pred: np.ndarray, labels
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per label: precision, recall, F1 and support (true count)."""
    y, pred = np.asarray(y), np.asarray(pred)
    labels = np.asarray(list(labels))
    truth = y[:, None] == labels[None, :]
    guess = pred[:, None] == labels[None, :]
    tp = (truth & guess).sum(axis=0)
    true_sum, pred_sum = truth.sum(axis=0), guess.sum(axis=0)
    f1 = _divide(2.0 * tp.astype(np.float64), 1.0 * true_sum.astype(np.float64) + pred_sum.astype(np.float64))
    return _divide(tp, pred_sum), _divide(tp, true_sum), f1, true_sum


def prf(y: np.ndarray, pred: np.ndarray, average: str, labels=None) -> tuple[float, float, float]:
    """Averaged precision, recall, F1: `binary` (class 1), `macro` or `weighted`."""
    if average == "binary":
        labels = [1]
    elif labels is None:
        labels = np.union1d(np.unique(y), np.unique(pred))
    precision, recall, f1, support = prf_support(y, pred, labels)
    if average == "weighted":
        if support.sum() == 0:
            return tuple(float(np.mean(v)) for v in (precision, recall, f1))
        return tuple(float(np.average(v, weights=support)) for v in (precision, recall, f1))
    return tuple(float(np.mean(v)) for v in (precision, recall, f1))


def _clf_counts(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives at each distinct score (highest first), and those scores."""
    order = np.argsort(-score, kind="stable")
    score, truth = score[order], truth[order].astype(np.float64)
    edges = np.concatenate([np.nonzero(np.diff(score))[0], [len(truth) - 1]])
    tps = np.cumsum(truth)[edges]
    fps = 1 + edges.astype(np.float64) - tps
    return fps, tps, score[edges]


def roc_curve(truth, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) of a binary problem (`truth` true or 1: positive), collinear points dropped."""
    fps, tps, thresholds = _clf_counts(np.asarray(truth) == 1, np.asarray(score, dtype=np.float64))
    if len(fps) > 2:
        keep = np.where(np.concatenate([[True], np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), [True]]))[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps, fps = np.concatenate([[0.0], tps]), np.concatenate([[0.0], fps])
    thresholds = np.concatenate([[np.inf], thresholds.astype(np.float64)])
    fpr = np.full(fps.shape, np.nan) if fps[-1] <= 0 else fps / fps[-1]
    tpr = np.full(tps.shape, np.nan) if tps[-1] <= 0 else tps / tps[-1]
    return fpr, tpr, thresholds


def precision_recall_curve(truth, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds), recall decreasing, with the closing point (precision 1, recall 0)."""
    fps, tps, thresholds = _clf_counts(np.asarray(truth) == 1, np.asarray(score, dtype=np.float64))
    total = tps + fps
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(total != 0, tps / total, 0.0)
    recall = np.full(tps.shape, 1.0) if tps[-1] == 0 else tps / tps[-1]
    return (
        np.concatenate([precision[::-1], [1.0]]),
        np.concatenate([recall[::-1], [0.0]]),
        thresholds[::-1],
    )


def _binary_auc(truth: np.ndarray, score: np.ndarray) -> float:
    if len(np.unique(truth)) != 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(truth, score)
    return float((np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0).sum())


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: the positive class's score; more classes: the one-vs-rest macro average."""
    y = np.asarray(y)
    if proba.shape[1] == 2:
        labels = np.unique(y)
        return _binary_auc((y == labels[-1]).astype(np.int64) if len(labels) == 2 else y, proba[:, 1])
    scores = np.array([_binary_auc((y == c).astype(np.int64), proba[:, c]) for c in range(proba.shape[1])])
    return float(np.mean(scores))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    eps = np.finfo(proba.dtype).eps
    clipped = np.clip(proba, eps, 1 - eps)
    return float(np.mean(-np.log(clipped[np.arange(len(y)), np.asarray(y, dtype=np.int64)])))


def flat_scores(document: dict) -> dict[str, float]:
    """A metrics.json document's own scores: its top-level numbers (it also nests intervals, baselines,
    slices and the dataset's identity). The report, the release's re-measurement check, the registry's
    tags and the demo's summary all read the same ones."""
    return {k: v for k, v in document.items() if isinstance(v, int | float) and not isinstance(v, bool)}
