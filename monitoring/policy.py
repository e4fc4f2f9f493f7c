"""The drift policy: the `monitoring:` section of params.yaml, checked once, with its defaults in one place.

Where the data comes from, how much of it counts, and when drift is drift are configuration, so a team
tunes its alarm rate by editing params.yaml (and sees the change reviewed in a PR), not the code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta

from mlops.errors import UserError
from mlops.params import Params

LOG_ENV = "MLOPS_INFERENCE_LOG_DIR"  # the handler writes where this points; the drift job reads there too
FEEDBACK_ENV = "MLOPS_FEEDBACK"
ALERT_ENV = (
    "MLOPS_ALERT_URLS"  # Apprise URLs (Slack, Teams, mailto, json:// webhooks), space or comma separated
)
# categories: both samples are samples (monitoring/categorical.py); Evidently's `auto` is not calibrated
DEFAULT_TESTS = {"numerical": "ks", "categorical": "two_sample_chi2"}
CHECKS = ("features", "prediction", "target", "performance")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(text: str | None) -> timedelta | None:
    """'30m', '12h', '7d', '2w' -> timedelta; None or 'all' -> no window (the whole log)."""
    if text is None or str(text).strip().lower() in ("", "all", "none"):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text).lower())
    if not match:
        raise UserError(f"monitoring.window: {text!r} is not a duration like 30m, 12h, 7d or 2w")
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


@dataclass(frozen=True)
class Performance:
    """The performance rule: labelled feedback joined to the log on request_id, against the champion."""

    min_rows: int = 50
    metrics: dict[str, float] = field(default_factory=dict)  # metric -> allowed drop (gates.max_regression)
    baseline: str = "eval/metrics.json"  # the champion's test metrics: the base branch ships what it reviewed
    confidence: float | None = 0.95  # the drop must hold at this one-sided bootstrap confidence
    bucket: str = "1d"  # metrics over time: one point per bucket of prediction time
    label_horizon: timedelta | None = None  # predictions this long before the window still get scored
    label_horizon_text: str = "0"


@dataclass(frozen=True)
class Rejections:
    """The rejection rule: requests the server refused (4xx for a bad value), per column, and logged rows
    whose value the schema refuses (a null where `missing` is not `impute`)."""

    max_rate: float = 0.05  # a column refused in more than this share of the window's requests is flagged
    min_requests: int = 20  # fewer requests (served + refused) in the window: counted, not judged


@dataclass(frozen=True)
class Policy:
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
    critical: tuple[str, ...] = ()  # any one of these drifting is feature drift on its own
    critical_p_value: float = 0.01  # ... at this family-wise p-value (split over the critical columns)
    weights: dict[str, float] = field(default_factory=dict)  # share rule weights; absent = 1
    missing_increase: float = 0.05  # a column's missing rate rising this much (and beyond noise) is drift
    staleness: timedelta | None = None  # newest record older than this = a blind monitor, an error
    probabilities: bool = True  # prediction drift also on the logged class probabilities
    performance: Performance = field(default_factory=lambda: Performance())
    rejections: Rejections = field(default_factory=lambda: Rejections())
    branch_prefix: str = "retrain/"
    base: str = "main"
    top_features: int = 10
    seed: int = 0


def _test_name(value) -> str | None:
    return None if value is None or str(value).lower() == "auto" else str(value)


def load_policy(
    params: Params, window: str | None = None, inference_log: str | None = None, feedback: str | None = None
) -> Policy:
    """Build the policy; CLI arguments and environment variables override params.yaml, in that order."""
    mon = params.section("monitoring")
    serve = params.section("serve")
    features = params.data.feature_names
    columns = list(mon.get("columns") or features)
    unknown = [c for c in columns if c not in features]
    if unknown:
        raise UserError(f"monitoring.columns: {', '.join(unknown)} not in data.features of params.yaml")
    retrain_on = tuple(mon.get("retrain_on") or ["features", "performance"])  # as params.yaml and the docs
    if bad := [c for c in retrain_on if c not in CHECKS]:
        raise UserError(
            f"monitoring.retrain_on: unknown check {', '.join(bad)}; choose from {', '.join(CHECKS)}"
        )
    share = float(mon.get("drift_share", 0.5))
    if not 0 < share <= 1:
        raise UserError(f"monitoring.drift_share must be in (0, 1], got {share}")
    weights = {str(k): float(v) for k, v in (mon.get("weights") or {}).items()}
    critical = tuple(mon.get("critical") or ())
    for key, named in (("critical", critical), ("weights", weights)):
        if bad := [c for c in named if c not in columns]:
            raise UserError(f"monitoring.{key}: {', '.join(bad)} not among the monitored columns")
    if bad := [f"{k}={v}" for k, v in weights.items() if not v >= 0]:
        raise UserError(f"monitoring.weights: weights must be >= 0, got {', '.join(bad)}")
    window_text = window if window is not None else mon.get("window")
    pr = dict(mon.get("pr") or {})
    max_rows = mon.get("max_rows")
    return Policy(
        inference_log=str(
            inference_log
            or os.environ.get(LOG_ENV)
            or mon.get("inference_log")
            or serve.get("inference_log_dir")
            or "logs/inference"
        ),
        feedback=str(feedback or os.environ.get(FEEDBACK_ENV) or mon.get("feedback") or "feedback"),
        window=parse_window(window_text),
        window_text=str(window_text or "all"),
        min_rows=int(mon.get("min_rows", 100)),
        max_rows=int(max_rows) if max_rows else None,
        columns=columns,
        drift_share=share,
        stattest={
            kind: _test_name((mon.get("stattest") or {}).get(kind, DEFAULT_TESTS[kind]))
            for kind in ("numerical", "categorical")
        },
        threshold={kind: (mon.get("threshold") or {}).get(kind) for kind in ("numerical", "categorical")},
        retrain_on=retrain_on,
        report_dir=str(mon.get("report_dir", "reports/drift")),
        branch_prefix=str(pr.get("branch_prefix", "retrain/")),
        base=str(pr.get("base", "main")),
        top_features=int(pr.get("top_features", 10)),
        seed=params.seed,
        critical=critical,
        critical_p_value=float(mon.get("critical_p_value", 0.01)),
        weights=weights,
        staleness=parse_window(mon.get("staleness")),
        missing_increase=float(mon.get("missing_increase", 0.05)),
        probabilities=bool((mon.get("prediction") or {}).get("probabilities", True)),
        performance=_performance(mon.get("performance") or {}, params.section("gates")),
        rejections=_rejections(mon.get("rejections") or {}),
    )


def _rejections(section: dict) -> Rejections:
    rate = float(section.get("max_rate", 0.05))
    if not 0 <= rate < 1:
        raise UserError(f"monitoring.rejections.max_rate must be in [0, 1), got {rate}")
    least = int(section.get("min_requests", 20))
    if least < 1:
        raise UserError(f"monitoring.rejections.min_requests must be at least 1, got {least}")
    return Rejections(max_rate=rate, min_requests=least)


# Gated metrics the production check does not compute (calibration needs more rows than a window has
# labelled); `metrics: null` leaves them out, naming one explicitly is still accepted.
NOT_IN_PRODUCTION = ("brier", "ece")


def _performance(section: dict, gates: dict) -> Performance:
    """The gated metrics and their allowed drops come from `gates.max_regression`, one place for both."""
    allowed = dict(gates.get("max_regression") or {})
    chosen = section.get("metrics") or [m for m in allowed if m not in NOT_IN_PRODUCTION]
    if bad := [m for m in chosen if m not in allowed]:
        raise UserError(
            f"monitoring.performance.metrics: {', '.join(bad)} not in gates.max_regression"
            f" ({', '.join(allowed) or 'empty'})"
        )
    confidence = section.get("confidence", 0.95)
    if confidence is not None and not 0.5 <= float(confidence) < 1:
        raise UserError(f"monitoring.performance.confidence must be in [0.5, 1) or null, got {confidence}")
    bucket = str(section.get("bucket", "1d"))
    horizon = section.get("label_horizon", "14d")
    parse_window(bucket)
    return Performance(
        min_rows=int(section.get("min_rows", 50)),
        metrics={m: float(allowed[m]) for m in chosen},
        baseline=str(section.get("baseline", "eval/metrics.json")),
        confidence=None if confidence is None else float(confidence),
        bucket=bucket,
        label_horizon=parse_window(horizon) if horizon not in (None, 0, "0") else None,
        label_horizon_text=str(horizon or 0),
    )
