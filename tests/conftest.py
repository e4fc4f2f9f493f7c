"""Shared fixtures. `trained_repo` runs the real pipeline once per session in a temporary copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repo import copy_project, sh


@pytest.fixture(scope="session")
def dvc_remote(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dvc-remote")


@pytest.fixture(scope="session")
def trained_repo(tmp_path_factory, dvc_remote) -> Path:
    """A git repo (branch main) of this working tree after `mlops data` and `dvc repro`, outputs pushed
    (with run-cache) and committed. Read-only for tests: clone it (tests.repo.clone) to change things."""
    repo = copy_project(tmp_path_factory.mktemp("trained") / "repo", dvc_remote)
    sh(["mlops", "data"], repo)
    sh(["dvc", "repro"], repo)
    sh(["dvc", "push", "--run-cache"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "train"], repo)
    return repo
