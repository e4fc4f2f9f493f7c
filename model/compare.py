"""The numbers behind the PR report's verdicts: paired intervals of every change against the baseline.

Both sides' per-row test predictions come from eval/predictions.csv (the baseline's read from git).
When the two files hold the same rows (same data, split and seed: most PRs) the comparison is paired;
when the rows differ (another split seed, new data) both sides are resampled independently; when the
baseline has no predictions file (it predates them) there is no interval and the report says so.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from model import uncertainty
from model.slices import PREFIX
from model.uncertainty import Interval


@dataclass
class Predictions:
    keys: np.ndarray
    y: np.ndarray
    proba: np.ndarray  # class probabilities; regression: the prediction, shape [n, 1]
    slices: pd.DataFrame  # one column per slice spec (name without prefix), one label per row
    task: str = "classification"

    @classmethod
    def parse(cls, text: str | None) -> Predictions | None:
        if not text:
            return None
        frame = pd.read_csv(io.StringIO(text), dtype={"row": str})
        regression = "prediction" in frame.columns
        if regression:
            proba_cols = ["prediction"]
        else:
            proba_cols = sorted(
                (c for c in frame.columns if c.startswith("proba_")), key=lambda c: int(c[6:])
            )
        slice_cols = [c for c in frame.columns if c.startswith(PREFIX)]
        return cls(
            keys=frame["row"].to_numpy(),
            y=frame["label"].to_numpy(dtype=np.float64 if regression else np.int64),
            proba=frame[proba_cols].to_numpy(dtype=np.float64),
            slices=frame[slice_cols].rename(columns=lambda c: c[len(PREFIX) :]).astype(str),
            task="regression" if regression else "classification",
        )

    @property
    def metrics(self) -> tuple[str, ...]:
        return uncertainty.metric_names(self.task, self.proba.shape[1])

    def take(self, index: np.ndarray) -> Predictions:
        return Predictions(
            self.keys[index],
            self.y[index],
            self.proba[index],
            self.slices.iloc[index].reset_index(drop=True),
            self.task,
        )


def align(pr: Predictions, base: Predictions) -> Predictions | None:
    """The baseline's rows in the PR's row order when both hold the same rows (same labels), else None."""
    if len(pr.keys) != len(base.keys) or pr.proba.shape[1] != base.proba.shape[1]:
        return None
    pr_order, base_order = np.argsort(pr.keys, kind="stable"), np.argsort(base.keys, kind="stable")
    if not np.array_equal(pr.keys[pr_order], base.keys[base_order]):
        return None
    index = np.empty_like(base_order)
    index[pr_order] = base_order  # PR row i <- the baseline row with the same key
    aligned = base.take(index)
    return aligned if np.array_equal(aligned.y, pr.y) else None


@dataclass
class SliceChange:
    slice: str
    bin: str
    metric: str
    delta: Interval | None
    verdict: str


@dataclass
class Comparison:
    kind: str | None  # "paired", "unpaired", or None (no baseline predictions)
    deltas: dict[str, Interval | None] = field(default_factory=dict)
    slices: list[SliceChange] = field(default_factory=list)
    slice_confidence: float | None = None

    @property
    def regressed_slices(self) -> list[SliceChange]:
        return [s for s in self.slices if s.verdict == "worse"]


def compare(
    pr: Predictions | None,
    base: Predictions | None,
    settings: dict,
    slice_metrics: tuple[str, ...],
    centre: dict[str, float] | None = None,
) -> Comparison:
    """Delta intervals overall and per slice. Slice intervals use a Bonferroni-adjusted confidence (one
    test per slice and metric), so that with six slices and three metrics "a slice regressed" is not a
    coin flip between two seeds of the same model. `centre`: the changes on all test rows, when the
    predictions files hold a sample of them (`report.max_rows`): the overall intervals move there."""
    if pr is None or base is None or pr.task != base.task or pr.proba.shape[1] != base.proba.shape[1]:
        return Comparison(None)  # nothing to pair, or not the same kind of model (a swapped dataset)
    resamples, confidence = int(settings["resamples"]), float(settings["confidence"])
    seed = int(settings["bootstrap_seed"])
    aligned = align(pr, base)
    kind = "paired" if aligned is not None else "unpaired"
    other = aligned if aligned is not None else base
    deltas = uncertainty.delta_intervals(
        (pr.y, pr.proba), (other.y, other.proba), aligned is not None, resamples, confidence, seed, pr.metrics
    )
    if centre:
        mine, theirs = (uncertainty.point_metrics(p.y, p.proba, pr.metrics) for p in (pr, other))
        deltas = uncertainty.recentre(deltas, centre, {k: mine[k] - theirs[k] for k in mine})
    groups = []
    for column in pr.slices.columns:
        if column not in other.slices.columns:
            continue
        for label in sorted(pr.slices[column].unique()):
            mine = (pr.slices[column] == label).to_numpy()
            theirs = (other.slices[column] == label).to_numpy()
            if mine.sum() >= 2 and theirs.sum() >= 2:
                groups.append((column, label, mine, theirs))
    slice_metrics = tuple(m for m in slice_metrics if m in pr.metrics)
    tests = max(len(groups) * len(slice_metrics), 1)
    slice_conf = 1 - (1 - confidence) / tests
    changes = []
    for column, label, mine, theirs in groups:
        spans = uncertainty.delta_intervals(
            (pr.y[mine], pr.proba[mine]),
            (other.y[theirs], other.proba[theirs]),
            aligned is not None,
            resamples,
            slice_conf,
            seed,
            slice_metrics,
        )
        for metric, span in spans.items():
            changes.append(SliceChange(column, label, metric, span, uncertainty.verdict(span, metric)))
    return Comparison(kind, deltas, changes, slice_conf)
