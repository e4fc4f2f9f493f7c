"""Requests refused at serving, and logged values the schema refuses: counted per column against the policy.

A high rate is an alert, not a retraining PR: retraining cannot fix what clients send.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from mlops.config.params import Params
from monitoring.inference_log import ReadStats
from monitoring.policy import Policy


def rejections(
    policy: Policy, params: Params, log: ReadStats, current: pd.DataFrame, since: datetime | None
) -> dict:
    """The rejection rule, per column. `refused`: requests the handler answered with a 4xx naming the
    column (its refusal records), as a share of the window's requests, served and refused. `invalid`:
    logged rows holding a null in a column whose `missing` policy is not `impute`: the schema refuses
    them, so a server with another schema or an older handler let them through; they are counted here
    rather than read as NaN without a word (they still count in the missing-rate test). A column over
    `rejections.max_rate` on either count, with at least `min_requests` requests (rows) in the window,
    is flagged; refusals naming no column (malformed JSON, a wrong body) are judged as `(request)`."""
    rule = policy.rejections
    start = since.timestamp() if since is not None else -np.inf
    events = [(column, reason) for ts, column, reason in log.refusals if ts >= start]
    ids = current["request_id"] if "request_id" in current.columns else pd.Series([None] * len(current))
    served = int(ids.dropna().nunique() + ids.isna().sum())  # a row without a request id is its own
    requests = served + len(events)
    by_column: dict = {}
    for column, reason in events:
        reasons = by_column.setdefault(column or "(request)", {})
        reasons[reason] = reasons.get(reason, 0) + 1
    nullable = {f.name for f in params.data.features if f.missing == "impute"}
    invalid = {
        c: int(current[c].isna().sum())
        for c in policy.columns
        if c not in nullable and c in current.columns and len(current)
    }
    columns = []
    for name in [*by_column, *(c for c, n in invalid.items() if n and c not in by_column)]:
        refused = sum(by_column.get(name, {}).values())
        bad = invalid.get(name, 0)
        refused_rate = refused / requests if requests else 0.0
        invalid_rate = bad / len(current) if len(current) else 0.0
        judged = (requests >= rule.min_requests and refused_rate > rule.max_rate) or (
            len(current) >= rule.min_requests and invalid_rate > rule.max_rate
        )
        columns.append(
            {
                "column": name,
                "refused": refused,
                "refused_rate": round(refused_rate, 6),
                "reasons": by_column.get(name, {}),
                "invalid_rows": bad,
                "invalid_rate": round(invalid_rate, 6),
                "exceeded": bool(judged),
            }
        )
    columns.sort(key=lambda c: (-max(c["refused_rate"], c["invalid_rate"]), c["column"]))
    return {
        "requests": requests,
        "served_requests": served,
        "refused": len(events),
        "rows": len(current),
        "max_rate": rule.max_rate,
        "min_requests": rule.min_requests,
        "judged": requests >= rule.min_requests or len(current) >= rule.min_requests,
        "exceeded": any(c["exceeded"] for c in columns),
        "columns": columns,
    }


def rejection_text(column: dict) -> str:
    """One column's refusals and schema-refused nulls, for the console, the alert and the reasons."""
    parts = []
    if column["refused"]:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(column["reasons"].items(), key=lambda x: -x[1]))
        parts.append(f"{column['refused']} request(s) refused ({column['refused_rate']:.1%}: {reasons})")
    if column["invalid_rows"]:
        parts.append(
            f"{column['invalid_rows']} logged row(s) null where the schema refuses a null"
            f" ({column['invalid_rate']:.1%})"
        )
    return f"{column['column']}: " + "; ".join(parts)


def rejection_line(summary: dict) -> str:
    """Every column with refusals or schema-refused nulls, flagged or not, or '' when there are none."""
    result = summary.get("rejections") or {}
    columns = [c for c in result.get("columns", []) if c["refused"] or c["invalid_rows"]]
    if not columns:
        return ""
    text = "; ".join(rejection_text(c) + (" (over the limit)" if c["exceeded"] else "") for c in columns)
    return f"{text} [{result['requests']} requests, {result['rows']} logged rows in the window]"


def rejection_reason(result: dict) -> str:
    flagged = [c for c in result["columns"] if c["exceeded"]]
    return (
        f"rejections over {result['max_rate']:.1%} (monitoring.rejections.max_rate) of"
        f" {result['requests']} requests ({result['refused']} refused) / {result['rows']} logged rows: "
        + "; ".join(rejection_text(c) for c in flagged)
    )
