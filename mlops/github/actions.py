"""GitHub Actions step outputs and job summary; both are no-ops outside Actions."""

from __future__ import annotations

import os


def set_outputs(**values: str) -> None:
    """Values for later `if:` conditions and jobs (steps.<id>.outputs.<name>)."""
    if target := os.environ.get("GITHUB_OUTPUT"):
        with open(target, "a") as fh:
            fh.writelines(f"{k}={v}\n" for k, v in values.items())


def step_summary(markdown: str) -> None:
    """Markdown on the run's summary page."""
    if target := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(target, "a") as fh:
            fh.write(markdown + "\n")
