"""When the test rows differ, a regression gate also asks the rows both test splits hold: a main whose
split happened to be easy (every row right) must not make every other split look worse."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops.report.compare import Predictions, compare
from mlops.report.gates import all_passed, check_gates
from mlops.report.uncertainty import point_metrics, verdict

SETTINGS = {"resamples": 400, "confidence": 0.95, "bootstrap_seed": 0, "min_rows": 20, "min_positives": 5}
GATES = {"max_regression": {"log_loss": 0.10, "f1": 0.02}, "require_significant": True}


def side(keys: list[str], y: np.ndarray, wrong: np.ndarray) -> Predictions:
    """Confident predictions, right except on the `wrong` rows."""
    p_true = np.where(wrong, 0.02, 0.99)
    p_pos = np.where(y == 1, p_true, 1 - p_true)
    proba = np.column_stack([1 - p_pos, p_pos])
    return Predictions(np.array(keys), y, proba, pd.DataFrame(index=range(len(y))))


def test_an_easy_main_split_does_not_fail_a_seed_only_pr():
    rng = np.random.default_rng(0)
    y_shared, y_base, y_pr = ((rng.random(n) < 0.4).astype(np.int64) for n in (60, 54, 54))
    shared = [f"s{i}" for i in range(60)]
    base = side(shared + [f"b{i}" for i in range(54)], np.r_[y_shared, y_base], np.zeros(114, bool))
    pr_wrong = np.zeros(114, bool)
    pr_wrong[[61, 70, 80, 90, 100, 110]] = True  # only on its own rows, which main never saw
    pr = side(shared + [f"p{i}" for i in range(54)], np.r_[y_shared, y_pr], pr_wrong)
    comparison = compare(pr, base, SETTINGS, ())
    assert comparison.kind == "unpaired" and comparison.shared == 60
    assert verdict(comparison.deltas["log_loss"], "log_loss") == "worse"  # the headline still says so
    mine = point_metrics(pr.y, pr.proba)
    theirs = point_metrics(base.y, base.proba)
    unpaired = check_gates(mine, theirs, GATES, deltas=comparison.deltas, delta_kind="unpaired")
    assert not all_passed(unpaired)  # the old rule: fails on rows of another difficulty
    judged = check_gates(mine, theirs, GATES, deltas=comparison.judged, delta_kind="unpaired")
    assert all_passed(judged), [r.line() for r in judged]


def test_too_few_shared_rows_leave_the_unpaired_interval_alone():
    rng = np.random.default_rng(1)
    y = (rng.random(114) < 0.4).astype(np.int64)
    base = side([f"b{i}" for i in range(104)] + [f"s{i}" for i in range(10)], y, np.zeros(114, bool))
    pr = side([f"p{i}" for i in range(104)] + [f"s{i}" for i in range(10)], y, np.zeros(114, bool))
    comparison = compare(pr, base, SETTINGS, ())
    assert comparison.shared == 10 and comparison.judged == comparison.deltas
