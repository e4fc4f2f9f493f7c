"""Alerts from the release path: the same Apprise channel as monitoring (secret MLOPS_ALERT_URLS).

A refused release or a skipped poisoned artifact means someone may be attacking the pipeline: a red job
alone waits for whoever next opens the Actions tab, so it also pages whoever watches monitoring's alerts.
"""

from __future__ import annotations


def release_alert(title: str, body: str) -> bool:
    """Send `title`/`body` as a failure alert; never raises (the release's own error is what matters)."""
    print(f"::error::{title}")
    try:
        from monitoring.alerting import notify

        return notify(f"mlops release: {title}", body, "failure")
    except ImportError as err:  # apprise is installed with the release job's extras
        print(f"alert: not sent ({err}); install apprise in the release job")
    except Exception as err:  # a broken alert channel must not hide the release's own error
        print(f"alert: not sent ({type(err).__name__}: {err})")
    return False
