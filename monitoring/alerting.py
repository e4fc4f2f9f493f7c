"""What monitoring tells a person, through the Apprise channel of mlops/release/alerts.py.

A PR and a job summary reach nobody at 05:23 on a Sunday, and a monitor that went blind produces no PR
at all. So every decision other than `no_drift` (and `never_served`, a new repository's notice), and
every blindness error, is sent to the URLs in the secret MLOPS_ALERT_URLS (space- or comma-separated
Apprise URLs, e.g. `slack://T/B/C`, `msteams://...`, `mailtos://user:pass@host?to=a@b`,
`json://host/path`). Without it the job says so once and goes on: alerts are opt-in, the decision is
never hidden behind them.
"""

from __future__ import annotations

from mlops.release.alerts import notify

TOP = 10  # drifted columns named in an alert; the rest are counted
LEVELS = {
    "drift": "warning",
    "performance": "failure",
    "rejections": "warning",
    "not_enough_data": "info",
    "error": "failure",
}


def decision_alert(summary: dict, report_hint: str = "") -> bool:
    """The alert for a drift-check decision (the caller skips no_drift). None for never_served: a new
    repository's expected state, told by a notice in the job, not by a daily page."""
    from monitoring.drift import NEVER_SERVED, drifted_columns
    from monitoring.rejections import rejection_line

    decision = summary["decision"]
    if decision == NEVER_SERVED:
        print("alert: none sent (nothing served yet: a notice, not an alert)")
        return False
    lines = [f"Decision: {decision}", *[f"- {r}" for r in summary["reasons"]]]
    window, rows = summary.get("window") or {}, summary.get("rows") or {}
    if window:
        lines.append(
            f"Window: last {window.get('length')} ({window.get('since') or 'start of the log'} to"
            f" {window.get('until')}); {rows.get('current', 0)} production rows against"
            f" {rows.get('reference', 0)} reference rows"
        )
    if line := feedback_problems(summary):
        lines.append(f"Feedback: {line}")
    if line := rejection_line(summary):
        lines.append(f"Rejections: {line}")
    for unreadable in (summary.get("log") or {}).get("unreadable", []):
        lines.append(f"Unreadable log file skipped: {unreadable}")
    drifted = drifted_columns(summary)
    if drifted:
        named = ", ".join(
            f"{c['column']} ({c['method']} {c['score']:.3g}{column_notes(c)})" for c in drifted[:TOP]
        )
        more = f", and {len(drifted) - TOP} more" if len(drifted) > TOP else ""
        lines.append(f"Drifted columns: {named}{more}")
    if report_hint:
        lines.append(report_hint)
    return notify(f"mlops drift: {decision}", "\n".join(lines), LEVELS.get(decision, "warning"))


def column_notes(column: dict) -> str:
    """What a column's test alone does not say: a rise of its missing rate, values never seen in training."""
    notes = []
    missing = column.get("missing") or {}
    if missing.get("drifted"):
        notes.append(f"missing {missing['reference']:.1%} -> {missing['current']:.1%}")
    unseen = column.get("unseen") or {}
    if unseen.get("rows"):
        named = ", ".join(f"{v!r} ({n})" for v, n in unseen["values"].items())
        notes.append(f"{unseen['rows']} row(s) with values never seen in training: {named}")
    return "".join(f"; {n}" for n in notes)


def feedback_problems(summary: dict) -> str:
    """The feedback that could not be scored (unknown labels, unserved requests, repeats), or ''."""
    from monitoring.performance import feedback_line

    counts = ((summary.get("performance") or {}).get("feedback")) or {}
    keys = ("unknown_labels", "not_served", "duplicates", "malformed")
    return feedback_line(counts) if any(counts.get(k) for k in keys) else ""


def failure_alert(error: BaseException, policy, report_hint: str = "") -> bool:
    """A crash of the check: what failed and where it was looking, so the page is actionable."""
    body = (
        f"The drift check failed: {type(error).__name__}: {error}\n"
        f"Window: last {policy.window_text}; log: {policy.inference_log}; feedback: {policy.feedback}"
        + (f"\n{report_hint}" if report_hint else "")
    )
    return notify("mlops drift: the check failed", body, "failure")


def error_alert(message: str, report_hint: str = "") -> bool:
    body = message + (f"\n{report_hint}" if report_hint else "")
    return notify("mlops drift: monitoring is blind", body, "failure")
