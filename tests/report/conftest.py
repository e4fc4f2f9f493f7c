"""`repo`: a small git project, main committed, the PR side in the working tree (tests.report.synthetic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repo import sh
from tests.report.synthetic import write_pr_side


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """main: a trained project (metrics committed); reports and artifacts stay untracked, as with DVC."""
    path = tmp_path / "repo"
    path.mkdir()
    write_pr_side(path)
    (path / ".gitignore").write_text("reports/\nartifacts/\nreports/pr/\n")
    sh(["git", "init", "-q", "-b", "main"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "main"], path)
    sh(["git", "checkout", "-q", "-b", "pr"], path)
    monkeypatch.chdir(path)
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    return path
