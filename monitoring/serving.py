"""Has production ever served? It tells a new repository, with nothing to watch yet, from a monitor
that went blind.

Only durable evidence counts, never the window: the production release record the deploy flow commits
(`deploy/release/production/kustomization.yaml` names a model version above 0 or a real image digest),
or any inference log file at the log location, whatever its age. With neither, nothing has been served
and a missing or empty log is expected. With either, production serves (or did), and a missing, empty or
stale log means the monitor is blind. A repository without the release file (it deploys some other way)
has only the log evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitoring.inference_log import ReadStats

RELEASE_RECORD = Path("deploy/release/production/kustomization.yaml")


@dataclass(frozen=True)
class Evidence:
    release: str | None  # "model version N" when the release record shows a production release
    log_files: int  # inference log files at the location, readable or not, of any age
    record: Path

    @property
    def served(self) -> bool:
        return bool(self.release or self.log_files)


def released(path: Path = RELEASE_RECORD) -> str | None:
    """What the production release record says runs there, or None: no record, or the placeholder."""
    if not path.is_file():
        return None
    from mlops.release.delivery import read

    release = read(path.read_text())
    if release.image is None and release.version in ("", "0"):
        return None
    return f"model version {release.version or '?'}"


def evidence(stats: ReadStats, record: Path = RELEASE_RECORD) -> Evidence:
    return Evidence(release=released(record), log_files=stats.files + len(stats.unreadable), record=record)


def never_served_note(stats: ReadStats, ev: Evidence) -> str:
    """The notice of a repository whose first release has not served yet: expected, and what comes next."""
    where = "does not exist yet" if not stats.exists else "holds no inference log file yet"
    record = (
        f"{ev.record} records no production release (model version 0)"
        if ev.record.is_file()
        else (f"there is no release record ({ev.record})")
    )
    return (
        f"nothing to monitor yet: {record} and the inference log location {stats.location} {where}."
        " This is expected until the first release serves traffic; from then on a missing, empty or stale"
        " log fails this check (exit 3) and alerts. To pause the schedule until then: `gh workflow disable"
        " drift.yml` (or Actions > drift > Disable workflow)."
    )


def served_note(ev: Evidence) -> str:
    """Why a missing log is blindness, when only the release record says production serves."""
    if ev.release and not ev.log_files:
        return f" (yet {ev.record} says production runs {ev.release}: the server should be logging)"
    return ""
