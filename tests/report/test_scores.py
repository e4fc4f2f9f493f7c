"""mlops/report/scores.py gives scikit-learn's numbers (to 1e-12) on random inputs with ties, so eval/ does
not change when evaluate stops importing scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from mlops.report import scores

TOL = 1e-12


def _cases():
    rng = np.random.default_rng(7)
    for k in range(24):
        n_classes = (2, 2, 3, 5)[k % 4]
        n = int(rng.integers(5, 300))
        y = rng.integers(0, n_classes, size=n)
        raw = rng.random((n, n_classes))
        if k % 3 == 0:  # heavy ties: probabilities on a coarse grid
            raw = np.round(raw * 4) + 0.5
        if k % 8 in (5, 6, 7):  # the last class never appears in y (binary: one class only) ...
            y = np.minimum(y, n_classes - 2)
        if k % 8 in (6, 7):  # ... nor in the predictions: macro averages skip it, weighted ones count 0
            raw[:, -1] *= 0.01
        proba = raw / raw.sum(axis=1, keepdims=True)
        yield k, y, proba


CASES = list(_cases())


@pytest.mark.parametrize(("k", "y", "proba"), CASES, ids=[str(c[0]) for c in CASES])
def test_point_metrics_match_scikit_learn(k, y, proba):
    n_classes = proba.shape[1]
    pred = proba.argmax(1)
    labels = list(range(n_classes))
    assert scores.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), abs=TOL)
    averages = ["binary"] if n_classes == 2 else ["macro", "weighted"]
    for average in averages:
        given = labels if average == "weighted" else None
        ours = scores.prf(y, pred, average, given)
        theirs = [
            getattr(skm, f"{m}_score")(y, pred, average=average, labels=given, zero_division=0)
            for m in ("precision", "recall", "f1")
        ]
        assert ours == pytest.approx(theirs, abs=TOL), average
    ours = scores.prf_support(y, pred, labels)
    theirs = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)
    clipped = np.clip(proba, 1e-15, 1)
    assert scores.log_loss(y, clipped) == pytest.approx(skm.log_loss(y, clipped, labels=labels), abs=TOL)
    with warnings.catch_warnings():  # scikit-learn warns on an absent class: its AUC is NaN, as ours
        warnings.simplefilter("ignore")
        if n_classes == 2:
            expected = skm.roc_auc_score(y, proba[:, 1]) if len(np.unique(y)) == 2 else np.nan
        else:
            expected = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels)
    assert scores.roc_auc(y, proba) == pytest.approx(expected, abs=TOL, nan_ok=True)


@pytest.mark.parametrize(("k", "y", "proba"), CASES, ids=[str(c[0]) for c in CASES])
def test_curves_match_scikit_learn(k, y, proba):
    truth = (y == 1).astype(int)
    score = proba[:, 1]
    if len(np.unique(truth)) < 2:
        return
    for ours, theirs in (
        (scores.roc_curve(truth, score), skm.roc_curve(truth, score)),
        (scores.precision_recall_curve(truth, score), skm.precision_recall_curve(truth, score)),
    ):
        for a, b in zip(ours, theirs, strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=TOL, rtol=0)


def test_a_metrics_documents_scores_are_its_top_level_numbers_only():
    """What the report compares, the release re-measures and the registry tags: not the nested intervals,
    baselines or identity, and not a flag (a bool is an int to Python)."""
    document = {
        "accuracy": 0.96,
        "n_test": 114,
        "calibrated": True,
        "intervals": {"accuracy": [0.9, 0.99]},
        "baseline": {"logreg": {"accuracy": 0.95}},
        "dataset": {"label": "diagnosis"},
        "note": "text",
    }
    assert scores.flat_scores(document) == {"accuracy": 0.96, "n_test": 114}
