"""Give a project copy this checkout's data through its DVC remote, so `mlops data` there pulls it.

`mlops data` recreates only the bundled table from nothing; a forker's table must come from a remote, and
a fresh copy's remote is empty. (A candidate for tests/schema.py: conftest and test_demo use it too.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from model.dataset import BUNDLED_FILE
from tests.repo import ROOT, sh
from tests.schema import SPEC


def seed_remote(repo: Path) -> None:
    """Push this checkout's data/ to `repo`'s DVC remote (no-op for the bundled table: it is recreated)."""
    if SPEC.path == BUNDLED_FILE or not (ROOT / "data").is_dir():
        return
    shutil.copytree(ROOT / "data", repo / "data", dirs_exist_ok=True)
    sh(["dvc", "commit", "-f", "-q", "data.dvc"], repo)  # fills the copy's cache (data.dvc already names it)
    sh(["dvc", "push", "-q", "data.dvc"], repo)
    shutil.rmtree(repo / "data")  # as a fresh copy: `mlops data` brings it back
