"""The drift policy: the `monitoring:` section of params.yaml, checked once, with its defaults in one place.

Where the data comes from, how much of it counts, and when drift is drift are configuration, so a team
tunes its alarm rate by editing params.yaml (and sees the change reviewed in a PR), not the code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

from mlops.errors import UserError
from mlops.params import Params

LOG_ENV = "MLOPS_INFERENCE_LOG_DIR"  # the handler writes where this points; the drift job reads there too
FEEDBACK_ENV = "MLOPS_FEEDBACK"
CHECKS = ("features", "prediction", "target")
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
    retrain_on = tuple(mon.get("retrain_on") or ["features"])
    if bad := [c for c in retrain_on if c not in CHECKS]:
        raise UserError(
            f"monitoring.retrain_on: unknown check {', '.join(bad)}; choose from {', '.join(CHECKS)}"
        )
    share = float(mon.get("drift_share", 0.5))
    if not 0 < share <= 1:
        raise UserError(f"monitoring.drift_share must be in (0, 1], got {share}")
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
            kind: _test_name((mon.get("stattest") or {}).get(kind)) for kind in ("numerical", "categorical")
        },
        threshold={kind: (mon.get("threshold") or {}).get(kind) for kind in ("numerical", "categorical")},
        retrain_on=retrain_on,
        report_dir=str(mon.get("report_dir", "reports/drift")),
        branch_prefix=str(pr.get("branch_prefix", "retrain/")),
        base=str(pr.get("base", "main")),
        top_features=int(pr.get("top_features", 10)),
        seed=params.seed,
    )
