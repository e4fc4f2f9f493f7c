"""Alerts to a person: Apprise, configured by URL (Slack, Teams, mailto, a JSON webhook, ...).

A PR and a job summary reach nobody at 05:23 on a Sunday, and a monitor that went blind produces no PR
at all. So monitoring's decisions (monitoring/alerting.py) and the release path's refusals are sent to
the URLs in the secret MLOPS_ALERT_URLS (space- or comma-separated Apprise URLs, e.g. `slack://T/B/C`,
`msteams://...`, `mailtos://user:pass@host?to=a@b`, `json://host/path`). Without it the job says so
once and goes on: alerts are opt-in, the decision is never hidden behind them.

A refused release or a skipped poisoned artifact means someone may be attacking the pipeline: a red job
alone waits for whoever next opens the Actions tab, so it also pages whoever watches monitoring's alerts.
"""

from __future__ import annotations

import os
import re

ALERT_ENV = "MLOPS_ALERT_URLS"


def urls() -> list[str]:
    return [u for u in re.split(r"[\s,]+", os.environ.get(ALERT_ENV, "")) if u]


def notify(title: str, body: str, level: str = "warning") -> bool:
    """Send to every configured URL; True when all deliveries succeeded, False on failure or no URL."""
    targets = urls()
    if not targets:
        print(f"alert: {ALERT_ENV} is not set, no alert sent ({title})")
        return False
    import apprise

    sender = apprise.Apprise()
    bad = [u for u in targets if not sender.add(u)]
    if bad:  # never print the URL: it carries the webhook secret
        print(f"alert: {len(bad)} of {len(targets)} URL(s) in {ALERT_ENV} are not valid Apprise URLs")
    kind = {
        "info": apprise.NotifyType.INFO,
        "warning": apprise.NotifyType.WARNING,
        "failure": apprise.NotifyType.FAILURE,
    }[level]
    sent = bool(len(sender)) and bool(sender.notify(title=title, body=body, notify_type=kind))
    print(f"alert: {'sent' if sent else 'FAILED to send'} to {len(sender)} target(s): {title}")
    return sent and not bad


def release_alert(title: str, body: str) -> bool:
    """Send `title`/`body` as a failure alert; never raises (the release's own error is what matters)."""
    print(f"::error::{title}")
    try:
        return notify(f"mlops release: {title}", body, "failure")
    except ImportError as err:  # apprise is installed with the release job's extras
        print(f"alert: not sent ({err}); install apprise in the release job")
    except Exception as err:  # a broken alert channel must not hide the release's own error
        print(f"alert: not sent ({type(err).__name__}: {err})")
    return False
