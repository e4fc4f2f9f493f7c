"""The drift policy: params.yaml's `monitoring:` section (typed, with its defaults, in
mlops/config/sections.py),
checked against the schema and the gates, with the CLI's and the environment's overrides applied.

Where the data comes from, how much of it counts, and when drift is drift are configuration, so a team
tunes its alarm rate by editing params.yaml (and sees the change reviewed in a PR), not the code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from mlops.config import sections
from mlops.config.errors import UserError
from mlops.config.params import Params

LOG_ENV = "MLOPS_INFERENCE_LOG_DIR"  # the handler writes where this points; the drift job reads there too
FEEDBACK_ENV = "MLOPS_FEEDBACK"
CHECKS = ("features", "prediction", "target", "performance")


def parse_window(text: str | None, where: str = "monitoring.window") -> timedelta | None:
    """'30m', '12h', '7d', '2w' -> timedelta; None or 'all' -> no window (the whole log)."""
    return sections.duration(text, where)


_DEFAULT = sections.Performance  # the rule's defaults are the section's


@dataclass(frozen=True)
class Performance:
    """The performance rule: labelled feedback joined to the log on request_id, against the champion."""

    min_rows: int = _DEFAULT.min_rows
    metrics: dict[str, float] = field(default_factory=dict)  # metric -> allowed drop (gates.max_regression)
    baseline: str = _DEFAULT.baseline  # the champion's test metrics: the base branch ships what it reviewed
    confidence: float | None = _DEFAULT.confidence  # the drop must hold at this one-sided confidence
    bucket: str = _DEFAULT.bucket  # metrics over time: one point per bucket of prediction time
    label_horizon: timedelta | None = None  # predictions this long before the window still get scored
    label_horizon_text: str = "0"


# The rejection rule: requests the server refused (4xx for a bad value), per column, and logged rows
# whose value the schema refuses (a null where `missing` is not `impute`).
Rejections = sections.Rejections


@dataclass(frozen=True)
class Policy:
    """The `monitoring:` section resolved: every field is set by `load_policy`."""

    inference_log: str
    feedback: str
    window: timedelta | None
    window_text: str
    min_rows: int
    max_rows: int | None
    columns: list[str]
    drift_share: float
    stattest: dict[str, str | None]  # column type -> Evidently stat test name (None = Evidently's pick)
    threshold: dict[str, float | None]
    retrain_on: tuple[str, ...]
    report_dir: str
    critical: tuple[str, ...]  # any one of these drifting is feature drift on its own
    critical_p_value: float  # ... at this family-wise p-value (split over the critical columns)
    weights: dict[str, float]  # share rule weights; absent = 1
    missing_increase: float  # a column's missing rate rising this much (and beyond noise) is drift
    staleness: timedelta | None  # newest record older than this = a blind monitor, an error
    probabilities: bool  # prediction drift also on the logged class probabilities
    performance: Performance
    rejections: Rejections
    branch_prefix: str
    base: str
    top_features: int
    seed: int


def _test_name(value) -> str | None:
    return None if value is None or str(value).lower() == "auto" else str(value)


def load_policy(
    params: Params, window: str | None = None, inference_log: str | None = None, feedback: str | None = None
) -> Policy:
    """Build the policy; CLI arguments and environment variables override params.yaml, in that order."""
    mon = params.monitoring
    features = params.data.feature_names
    columns = list(mon.columns or features)
    unknown = [c for c in columns if c not in features]
    if unknown:
        raise UserError(f"monitoring.columns: {', '.join(unknown)} not in data.features of params.yaml")
    retrain_on = tuple(mon.retrain_on)
    if bad := [c for c in retrain_on if c not in CHECKS]:
        raise UserError(
            f"monitoring.retrain_on: unknown check {', '.join(bad)}; choose from {', '.join(CHECKS)}"
        )
    share = float(mon.drift_share)
    if not 0 < share <= 1:
        raise UserError(f"monitoring.drift_share must be in (0, 1], got {share}")
    weights = {str(k): float(v) for k, v in (mon.weights or {}).items()}
    critical = tuple(mon.critical or ())
    for key, named in (("critical", critical), ("weights", weights)):
        if bad := [c for c in named if c not in columns]:
            raise UserError(f"monitoring.{key}: {', '.join(bad)} not among the monitored columns")
    if bad := [f"{k}={v}" for k, v in weights.items() if not v >= 0]:
        raise UserError(f"monitoring.weights: weights must be >= 0, got {', '.join(bad)}")
    window_text = window if window is not None else mon.window
    max_rows = mon.max_rows
    return Policy(
        inference_log=str(
            inference_log or os.environ.get(LOG_ENV) or mon.inference_log or params.serve.inference_log_dir
        ),
        feedback=str(feedback or os.environ.get(FEEDBACK_ENV) or mon.feedback),
        window=parse_window(window_text),
        window_text=str(window_text or "all"),
        min_rows=int(mon.min_rows),
        max_rows=int(max_rows) if max_rows else None,
        columns=columns,
        drift_share=share,
        stattest={kind: _test_name(getattr(mon.stattest, kind)) for kind in ("numerical", "categorical")},
        threshold={kind: getattr(mon.threshold, kind) for kind in ("numerical", "categorical")},
        retrain_on=retrain_on,
        report_dir=str(mon.report_dir),
        branch_prefix=str(mon.pr.branch_prefix),
        base=str(mon.pr.base),
        top_features=int(mon.pr.top_features),
        seed=params.seed,
        critical=critical,
        critical_p_value=float(mon.critical_p_value),
        weights=weights,
        staleness=parse_window(mon.staleness, "monitoring.staleness"),
        missing_increase=float(mon.missing_increase),
        probabilities=bool(mon.prediction.probabilities),
        performance=_performance(mon.performance, params.gates.max_regression),
        rejections=_rejections(mon.rejections),
    )


def _rejections(section: sections.Rejections) -> Rejections:
    rate = float(section.max_rate)
    if not 0 <= rate < 1:
        raise UserError(f"monitoring.rejections.max_rate must be in [0, 1), got {rate}")
    least = int(section.min_requests)
    if least < 1:
        raise UserError(f"monitoring.rejections.min_requests must be at least 1, got {least}")
    return Rejections(max_rate=rate, min_requests=least)


# Gated metrics the production check does not compute (calibration needs more rows than a window has
# labelled); `metrics: null` leaves them out, naming one explicitly is still accepted.
NOT_IN_PRODUCTION = ("brier", "ece")


def _performance(section: sections.Performance, max_regression: dict) -> Performance:
    """The gated metrics and their allowed drops come from `gates.max_regression`, one place for both."""
    allowed = dict(max_regression or {})
    chosen = section.metrics or [m for m in allowed if m not in NOT_IN_PRODUCTION]
    if bad := [m for m in chosen if m not in allowed]:
        raise UserError(
            f"monitoring.performance.metrics: {', '.join(bad)} not in gates.max_regression"
            f" ({', '.join(allowed) or 'empty'})"
        )
    confidence = section.confidence
    if confidence is not None and not 0.5 <= float(confidence) < 1:
        raise UserError(f"monitoring.performance.confidence must be in [0.5, 1) or null, got {confidence}")
    bucket = str(section.bucket)
    horizon = section.label_horizon
    parse_window(bucket, "monitoring.performance.bucket")
    return Performance(
        min_rows=int(section.min_rows),
        metrics={m: float(allowed[m]) for m in chosen},
        baseline=str(section.baseline),
        confidence=None if confidence is None else float(confidence),
        bucket=bucket,
        label_horizon=(
            parse_window(horizon, "monitoring.performance.label_horizon")
            if horizon not in (None, 0, "0")
            else None
        ),
        label_horizon_text=str(horizon or 0),
    )
