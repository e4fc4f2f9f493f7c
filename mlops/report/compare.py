"""The numbers behind the PR report's verdicts: paired intervals of every change against the baseline.

Both sides' per-row test predictions come from eval/predictions.csv (the baseline's read from git).
When the two files hold the same rows (same data, split and seed: most PRs) the comparison is paired;
when the rows differ (another split seed, new data) the overall intervals are unpaired and slices are
compared on the rows both hold, binned as the baseline binned them; when the baseline has no
predictions file (it predates them) there is no interval and the report says so.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import stdtrit

from mlops.report import uncertainty
from mlops.report.settings import DEFAULTS
from mlops.report.slices import PREFIX
from mlops.report.uncertainty import LOWER_IS_BETTER, Interval, point_metrics

CLASS_METRICS = frozenset({"precision", "recall", "f1", "roc_auc"})  # rest on the rarer class's rows


@dataclass
class Predictions:
    keys: np.ndarray
    y: np.ndarray
    proba: np.ndarray  # class probabilities; regression: the prediction, shape [n, 1]
    slices: pd.DataFrame  # one column per slice spec (name without prefix), one label per row
    task: str = "classification"
    seeds: list[np.ndarray] = field(default_factory=list)  # outputs of models trained with other seeds

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
        seeds = []
        for k in range(1, 1 + len(frame.columns)):
            columns = [f"seed{k}_{c}" for c in proba_cols]
            if not set(columns) <= set(frame.columns):
                break
            seeds.append(frame[columns].to_numpy(dtype=np.float64))
        return cls(
            keys=frame["row"].to_numpy(),
            y=frame["label"].to_numpy(dtype=np.float64 if regression else np.int64),
            proba=frame[proba_cols].to_numpy(dtype=np.float64),
            slices=frame[slice_cols].rename(columns=lambda c: c[len(PREFIX) :]).astype(str),
            task="regression" if regression else "classification",
            seeds=seeds,
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
            [s[index] for s in self.seeds],
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


def seed_noise(pr: Predictions, base: Predictions, metrics: tuple[str, ...]) -> dict[str, tuple[float, int]]:
    """Per metric, the standard deviation a retrain alone gives the change, and its degrees of freedom:
    each side's metric over its shipped model and its seed models (same rows), variances added; a side
    without seed models is taken to vary as the other does. Empty when neither side has seed models."""
    spreads = []
    for side in (pr, base):
        if side.seeds:
            values = [point_metrics(side.y, p, metrics) for p in (side.proba, *side.seeds)]
            spreads.append(
                {m: (float(np.nanvar([v[m] for v in values], ddof=1)), len(values) - 1) for m in metrics}
            )
    if not spreads:
        return {}
    both = spreads if len(spreads) == 2 else spreads * 2
    return {
        m: (float(np.sqrt(both[0][m][0] + both[1][m][0])), sum(s[m][1] for s in spreads))
        for m in metrics
        if np.isfinite(both[0][m][0]) and np.isfinite(both[1][m][0])
    }


def mine_minus_theirs(pr: Predictions, base: Predictions, metrics: tuple[str, ...]) -> dict[str, float]:
    mine, theirs = point_metrics(pr.y, pr.proba, metrics), point_metrics(base.y, base.proba, metrics)
    return {m: mine[m] - theirs[m] for m in metrics}


def widen(
    deltas: dict[str, Interval | None],
    noise: dict[str, tuple[float, int]],
    point: dict[str, float],
    confidence: float,
) -> dict[str, Interval | None]:
    """Each interval of the change widened by the seed noise (ends combined in quadrature with a Student t
    multiple of its standard deviation): it then covers the test rows AND the retrain."""
    out = dict(deltas)
    for m, span in deltas.items():
        if span is None or m not in noise or not np.isfinite(point.get(m, np.nan)):
            continue
        sd, df = noise[m]
        extra = float(stdtrit(max(df, 1), 1 - (1 - confidence) / 2)) * sd
        d = min(max(point[m], span.low), span.high)
        out[m] = Interval(d - float(np.hypot(d - span.low, extra)), d + float(np.hypot(span.high - d, extra)))
    return out


def shared_rows(pr: Predictions, base: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in the PR, in the baseline) of the rows both test splits hold: same key (a hash of the
    feature values and the label), so both models are judged on identical rows, neither trained on them."""
    _, pr_index, base_index = np.intersect1d(pr.keys, base.keys, assume_unique=False, return_indices=True)
    same = pr.y[pr_index] == base.y[base_index]
    return pr_index[same], base_index[same]


def support(metric: str, y: np.ndarray, n_classes: int) -> tuple[int, str]:
    """What a metric's verdict rests on: rows, or for class metrics the rarest class (positives)."""
    if metric in CLASS_METRICS and n_classes >= 2:
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
        if metric in ("recall", "precision", "f1") and n_classes == 2:
            return int(counts[1]), "positives"
        return int(counts.min()), "positives" if n_classes == 2 else "rows of the rarest class"
    return len(y), "rows"


def too_few(metric: str, y: np.ndarray, n_classes: int, settings: dict) -> str | None:
    """'too few to judge (3 positives)' when a metric rests on fewer than report.min_rows rows or
    report.min_positives positives, else None."""
    count, what = support(metric, y, n_classes)
    key = "min_positives" if what != "rows" else "min_rows"
    least = int(settings.get(key, DEFAULTS[key]))
    return f"{count} {what}" if count < least else None


@dataclass
class SliceChange:
    """One slice and metric against the baseline. `verdict`: worse, better, within noise, too few to
    judge, or not compared (`reason` says why)."""

    slice: str
    bin: str
    metric: str
    change: float | None
    p_worse: float | None  # one-sided p-value that the PR is worse (exact or permutation)
    verdict: str
    reason: str = ""
    rows: int = 0  # rows compared (shared with the baseline)


@dataclass
class Comparison:
    kind: str | None  # "paired", "unpaired", or None (no baseline predictions)
    deltas: dict[str, Interval | None] = field(default_factory=dict)
    slices: list[SliceChange] = field(default_factory=list)
    slice_level: float | None = None  # family-wise chance of any slice flagged worse by chance
    too_few: dict[str, str] = field(default_factory=dict)  # metric -> what it rests on, when too little
    seed_noise: dict[str, tuple[float, int]] = field(default_factory=dict)  # metric -> (sd of Δ, df)
    gate_deltas: dict[str, Interval | None] | None = None  # what the regression gates judge (see compare)
    shared: int = 0  # unpaired: test rows both sides hold

    @property
    def judged(self) -> dict[str, Interval | None]:
        return self.deltas if self.gate_deltas is None else self.gate_deltas

    @property
    def regressed_slices(self) -> list[SliceChange]:
        return [s for s in self.slices if s.verdict == "worse"]

    def slice_status(self, column: str, label: str) -> list[SliceChange]:
        return [s for s in self.slices if (s.slice, s.bin) == (column, label)]


def _swap_p_worse(
    y: np.ndarray, p_pr: np.ndarray, p_base: np.ndarray, metric: str, perms: int, seed: int
) -> tuple[float, float]:
    """(change, one-sided p-value that the PR is worse) by swapping the two models' predictions on each
    row at random: exact under "the two models are interchangeable on these rows", for any metric."""
    observed = point_metrics(y, p_pr, (metric,))[metric] - point_metrics(y, p_base, (metric,))[metric]
    if not np.isfinite(observed):
        return observed, 1.0
    rng = np.random.default_rng(seed)
    swap = rng.random((perms, len(y))) < 0.5
    if metric == "roc_auc" and p_pr.shape[1] == 2:
        a = np.where(swap, p_base[:, 1], p_pr[:, 1])
        b = np.where(swap, p_pr[:, 1], p_base[:, 1])
        null = _batch_auc(a, y == 1) - _batch_auc(b, y == 1)
    else:
        null = np.empty(perms)
        for i in range(perms):
            s = swap[i][:, None]
            a, b = np.where(s, p_base, p_pr), np.where(s, p_pr, p_base)
            null[i] = point_metrics(y, a, (metric,))[metric] - point_metrics(y, b, (metric,))[metric]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0  # "worse": a fall, or a rise of a loss
    as_bad = np.sum(sign * null <= sign * observed + 1e-12)
    return observed, float((1 + as_bad) / (perms + 1))


def _batch_auc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `scores` (ties count one half), from mid-ranks."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return (ranks[:, positive].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _exact_p_worse(y: np.ndarray, p_pr: np.ndarray, p_base: np.ndarray, metric: str) -> tuple[float, float]:
    """Accuracy, or recall over the positives: exact McNemar (one-sided) on the discordant rows."""
    rows = np.ones(len(y), dtype=bool) if metric == "accuracy" else y == 1
    right_pr = p_pr[rows].argmax(axis=1) == y[rows]
    right_base = p_base[rows].argmax(axis=1) == y[rows]
    gained, lost = int(np.sum(right_pr & ~right_base)), int(np.sum(~right_pr & right_base))
    change = (gained - lost) / max(int(rows.sum()), 1)
    return change, uncertainty.binomial_tail(gained, gained + lost)


def holm(p_values: list[float], level: float) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected with family-wise error at most `level`."""
    order = np.argsort(p_values, kind="stable")
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > level / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def slice_changes(
    pr: Predictions, base: Predictions, metrics: tuple[str, ...], settings: dict
) -> list[SliceChange]:
    """Each PR slice against the baseline on the rows both hold, binned as the baseline binned them (so a
    data PR that moves quantile edges compares the same rows, or says it cannot). Every verdict is an
    exact test (McNemar for accuracy and binary recall, a swap permutation test otherwise), and "worse"
    is decided by Holm's procedure over all slices and metrics at `report.slice_error`: the chance that
    a report flags any slice worse when nothing changed."""
    pr_at, base_at = shared_rows(pr, base)
    in_base = np.full(len(pr.keys), -1)
    in_base[pr_at] = base_at
    n_classes = pr.proba.shape[1]
    perms = max(int(settings.get("resamples", DEFAULTS["resamples"])), 1000)
    seed = int(settings.get("bootstrap_seed", DEFAULTS["bootstrap_seed"]))
    out: list[SliceChange] = []
    tests: list[tuple[int, float]] = []
    for column in pr.slices.columns:
        labels = pr.slices[column].to_numpy()
        base_labels = base.slices[column].to_numpy() if column in base.slices.columns else None
        for label in sorted(set(labels)):
            mine = labels == label
            shared = mine & (in_base >= 0)
            reason = ""
            if base_labels is None:
                reason = f"{column} is not a slice of the baseline"
            elif not shared.any():
                reason = "none of its rows are in the baseline's test split"
            else:
                theirs = set(base_labels[in_base[shared]])
                if len(theirs) > 1:
                    reason = "the bin edges moved: its rows fall in the baseline's " + ", ".join(
                        sorted(theirs)
                    )
                else:
                    (their_label,) = theirs
                    whole = (base_labels[base_at] == their_label) & ~mine[pr_at]
                    if whole.any():
                        reason = f"the bin edges moved: the baseline's {their_label} holds other rows too"
            if reason:
                out += [SliceChange(column, label, m, None, None, "not compared", reason) for m in metrics]
                continue
            rows = np.flatnonzero(shared)
            y, p_pr, p_base = pr.y[rows], pr.proba[rows], base.proba[in_base[rows]]
            for metric in metrics:
                few = too_few(metric, y, n_classes, settings)
                if few:
                    out.append(
                        SliceChange(column, label, metric, None, None, "too few to judge", few, len(rows))
                    )
                    continue
                if metric == "accuracy" or (metric == "recall" and n_classes == 2):
                    change, p = _exact_p_worse(y, p_pr, p_base, metric)
                else:
                    change, p = _swap_p_worse(y, p_pr, p_base, metric, perms, seed)
                tests.append((len(out), p))
                out.append(SliceChange(column, label, metric, change, p, "within noise", "", len(rows)))
    level = float(settings.get("slice_error", DEFAULTS["slice_error"]))
    for (index, _), worse in zip(tests, holm([p for _, p in tests], level), strict=True):
        if worse:
            out[index].verdict = "worse"
    return out


def compare(
    pr: Predictions | None,
    base: Predictions | None,
    settings: dict,
    slice_metrics: tuple[str, ...],
    centre: dict[str, float] | None = None,
) -> Comparison:
    """Delta intervals overall (mlops.report.uncertainty.delta_intervals) and per slice (slice_changes).
    `centre`: the changes on all test rows, when the predictions files hold a sample of them
    (`report.max_rows`): the overall intervals move there. A metric resting on fewer rows or positives
    than `report.min_rows` / `report.min_positives` is "too few to judge", whatever its interval."""
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
    noise = seed_noise(pr, other, pr.metrics)
    if noise:
        deltas = widen(deltas, noise, mine_minus_theirs(pr, other, pr.metrics), confidence)
    few: dict[str, str] = {}
    if pr.task != "regression":
        for metric in pr.metrics:
            why = too_few(metric, pr.y, pr.proba.shape[1], settings) or too_few(
                metric, other.y, other.proba.shape[1], settings
            )
            if why:
                few[metric] = why
    gate_deltas, shared = None, 0
    if aligned is None:
        gate_deltas, shared = on_shared_rows(pr, base, deltas, noise, settings)
    metrics = tuple(m for m in slice_metrics if m in pr.metrics)
    changes = slice_changes(pr, base, metrics, settings) if metrics else []
    level = float(settings.get("slice_error", DEFAULTS["slice_error"]))
    return Comparison(kind, deltas, changes, level, few, noise, gate_deltas, shared)


def on_shared_rows(
    pr: Predictions,
    base: Predictions,
    deltas: dict[str, Interval | None],
    noise: dict[str, tuple[float, int]],
    settings: dict,
) -> tuple[dict[str, Interval | None], int]:
    """What the regression gates judge when the test rows differ (another split or new data). The
    unpaired interval compares rows of different difficulty: a main whose split happened to be easy
    (every row right, log loss 0.01, F1 1.000, a bootstrap with no spread) makes any other split look
    worse. So a regression must also show on the rows both test splits hold, paired (neither model trained
    on them): the gate's interval is the hull of the unpaired one and the paired one on the shared rows
    (worse beyond noise only when both are), the paired one widened by the same seed noise. With fewer
    than `report.min_rows` shared rows the unpaired interval is judged alone."""
    pr_at, base_at = shared_rows(pr, base)
    n = len(pr_at)
    if n < int(settings.get("min_rows", DEFAULTS["min_rows"])):
        return dict(deltas), n
    mine, theirs = pr.take(pr_at), base.take(base_at)
    paired = uncertainty.delta_intervals(
        (mine.y, mine.proba),
        (mine.y, theirs.proba),
        True,
        int(settings["resamples"]),
        float(settings["confidence"]),
        int(settings["bootstrap_seed"]),
        pr.metrics,
    )
    if noise:
        change = mine_minus_theirs(mine, theirs, pr.metrics)
        paired = widen(paired, noise, change, float(settings["confidence"]))
    out: dict[str, Interval | None] = {}
    for m, span in deltas.items():
        other = paired.get(m)
        if span is None or other is None:
            out[m] = span
        else:
            out[m] = Interval(min(span.low, other.low), max(span.high, other.high))
    return out, n
