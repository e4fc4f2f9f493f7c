"""Slices are compared for real: the same rows, binned as main binned them, with family-wise error held.

The family-wise simulation is the null the report must survive: two interchangeable models (each row's
two predictions drawn alike) on the same 114 rows, five slices and three metrics; a report that flags
any slice "worse" is a false alarm, and that must happen at most `report.slice_error` (+1 point).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.report import slices
from mlops.report.compare import Predictions, compare, slice_changes

N, POSITIVES = 114, 42
METRICS = ("accuracy", "recall", "roc_auc")
SETTINGS = {
    "resamples": 1000,
    "confidence": 0.95,
    "bootstrap_seed": 0,
    "min_rows": 20,
    "min_positives": 5,
    "slice_error": 0.025,
}


def predictions(keys, y, p1, labels: pd.DataFrame) -> Predictions:
    return Predictions(np.asarray(keys), y, np.column_stack([1 - p1, p1]), labels.reset_index(drop=True))


@pytest.mark.slow  # about 45 s of CPU: 800 reports
def test_slices_flag_at_most_the_configured_share_of_reports_by_chance():
    rng = np.random.default_rng(7)
    y = (np.arange(N) < POSITIVES).astype(np.int64)
    keys = np.array([f"r{i:03d}" for i in range(N)])
    reps, alarms, compared = 800, 0, 0
    for _ in range(reps):
        labels = pd.DataFrame(
            {
                "a": rng.permutation(np.repeat(["q1", "q2", "q3"], 38)),
                "b": rng.permutation(np.repeat(["q1", "q2"], 57)),
            }
        )
        signal = 2.0 * y
        main = 1 / (1 + np.exp(-(signal - 1 + rng.normal(0, 1, N))))
        pr = 1 / (1 + np.exp(-(signal - 1 + rng.normal(0, 1, N))))  # interchangeable with main
        changes = slice_changes(
            predictions(keys, y, pr, labels), predictions(keys, y, main, labels), METRICS, SETTINGS
        )
        compared += sum(c.verdict in ("within noise", "worse") for c in changes)
        alarms += any(c.verdict == "worse" for c in changes)
    rate = alarms / reps
    print(f"slice family-wise false-flag rate {rate:.4f} ({alarms}/{reps}), level 0.025")
    assert compared == reps * 15  # every slice and metric judged: none silently skipped
    assert rate <= 0.025 + 0.01


def test_a_data_pr_that_moves_the_quantile_edges_compares_the_same_rows_or_says_why_not():
    """main: 114 test rows binned by edges of its table; the PR adds rows (new data): its edges move.
    Each PR bin is compared on the rows main also holds, under main's bin, or says "not compared"."""
    rng = np.random.default_rng(3)
    radius = rng.uniform(6, 28, N)
    y = (radius + rng.normal(0, 3, N) > 16).astype(np.int64)
    keys = np.array([f"r{i:03d}" for i in range(N)])
    main_table = pd.DataFrame({"mean_radius": rng.uniform(6, 28, 569)})
    pr_table = pd.concat([main_table, pd.DataFrame({"mean_radius": rng.uniform(20, 40, 200)})])
    extra = rng.uniform(20, 40, 30)  # the PR's test split: main's rows plus 30 new ones
    pr_radius = np.r_[radius, extra]
    pr_y = np.r_[y, np.ones(30, dtype=np.int64)]
    pr_keys = np.r_[keys, [f"new{i}" for i in range(30)]]
    spec = [{"column": "mean_radius", "bins": 3}]
    main_labels = slices.assign(pd.DataFrame({"mean_radius": radius}), main_table, spec)
    pr_labels = slices.assign(pd.DataFrame({"mean_radius": pr_radius}), pr_table, spec)
    strip = lambda frame: frame.rename(columns=lambda c: c[len(slices.PREFIX) :])  # noqa: E731
    p_main = np.clip(1 / (1 + np.exp(-(radius - 16) / 2)), 0.01, 0.99)
    p_pr = np.r_[p_main, np.full(30, 0.9)]
    pr = predictions(pr_keys, pr_y, p_pr, strip(pr_labels))
    base = predictions(keys, y, p_main, strip(main_labels))

    comparison = compare(pr, base, SETTINGS, METRICS)
    assert comparison.kind == "unpaired"  # the overall rows differ (30 new)
    by_bin: dict[str, set[str]] = {}
    for change in comparison.slices:
        by_bin.setdefault(change.bin, set()).add(change.verdict)
    assert set(by_bin) == set(pr_labels.iloc[:, 0])  # every PR bin has a status
    pr_bins = pr_labels.iloc[:, 0].to_numpy()
    main_bins = main_labels.iloc[:, 0].to_numpy()
    for label, verdicts in by_bin.items():
        shared = pr_bins[:N] == label
        same_rows = len(set(main_bins[shared])) == 1 and set(
            np.flatnonzero(main_bins == main_bins[shared][0])
        ) == set(np.flatnonzero(shared))
        if same_rows:  # same rows as one of main's bins: judged on them (no change: within noise)
            assert verdicts <= {"within noise", "too few to judge"}, (label, verdicts)
        else:
            assert verdicts == {"not compared"}, (label, verdicts)
            reasons = {c.reason for c in comparison.slices if c.bin == label}
            assert all("bin edges moved" in r or "none of its rows" in r for r in reasons), reasons
    assert any(v == {"not compared"} for v in by_bin.values())  # the edges did move
    labels = {c.bin for c in comparison.slices if c.verdict != "not compared"}
    for change in comparison.slices:
        if change.bin in labels and change.verdict != "too few to judge":
            assert change.rows == int(np.sum(pr_bins[:N] == change.bin))  # only rows main holds


def test_a_slice_where_main_had_no_positive_is_too_few_to_judge():
    y = np.r_[np.zeros(30), np.ones(2), np.ones(40), np.zeros(42)].astype(np.int64)
    keys = [f"r{i}" for i in range(len(y))]
    labels = pd.DataFrame({"g": ["a"] * 32 + ["b"] * 82})
    p = np.where(y == 1, 0.8, 0.2)
    changes = slice_changes(
        predictions(keys, y, p, labels), predictions(keys, y, p, labels), METRICS, SETTINGS
    )
    status = {(c.bin, c.metric): (c.verdict, c.reason) for c in changes}
    assert status[("a", "recall")] == ("too few to judge", "2 positives")
    assert status[("a", "roc_auc")][0] == "too few to judge"
    assert status[("a", "accuracy")][0] == "within noise"
    assert status[("b", "recall")][0] == "within noise"


def test_seed_models_widen_the_interval_of_the_change_and_survive_the_csv():
    rng = np.random.default_rng(5)
    y = (np.arange(N) < POSITIVES).astype(np.int64)
    keys = [f"r{i}" for i in range(N)]
    labels = pd.DataFrame(index=range(N))

    def model() -> np.ndarray:
        p1 = 1 / (1 + np.exp(-(3 * y - 1.5 + rng.normal(0, 1, N))))
        return np.column_stack([1 - p1, p1])

    main, pr = predictions(keys, y, model()[:, 1], labels), predictions(keys, y, model()[:, 1], labels)
    rows_only = compare(pr, main, SETTINGS, ())
    main.seeds = [model(), model()]
    frame = pd.DataFrame({"row": keys, "label": y, "proba_0": main.proba[:, 0], "proba_1": main.proba[:, 1]})
    for k, p in enumerate(main.seeds, start=1):
        frame[f"seed{k}_proba_0"], frame[f"seed{k}_proba_1"] = p[:, 0], p[:, 1]
    parsed = Predictions.parse(frame.to_csv(index=False))
    assert len(parsed.seeds) == 2 and np.allclose(parsed.seeds[1], main.seeds[1])
    with_seeds = compare(pr, parsed, SETTINGS, ())
    assert set(with_seeds.seed_noise) >= {"accuracy", "roc_auc", "log_loss"}
    for metric in ("accuracy", "roc_auc", "log_loss", "brier"):
        a, b = rows_only.deltas[metric], with_seeds.deltas[metric]
        assert b.low <= a.low and b.high >= a.high and (b.high - b.low) > (a.high - a.low), metric
