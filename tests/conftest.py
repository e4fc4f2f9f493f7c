"""Shared fixtures. `trained_repo` runs the real pipeline once per session in a temporary copy.

The `template` marker (the template's own machinery: the act harness, the podman image, the PostgreSQL
and S3 servers, the deploy manifests, promtool) is set here by folder; a fork's PR loop deselects it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from tests.repo import copy_project, sh

TEMPLATE_FOLDERS = ("github", "container", "deploy", "scale")  # under tests/


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(here).parts if item.path.is_relative_to(here) else ()
        if parts and parts[0] in TEMPLATE_FOLDERS:
            item.add_marker(pytest.mark.template)


def missing_tool(tool: str, install: str) -> NoReturn:
    """A test's external tool is absent: a failure with MLOPS_REQUIRE_TOOLS=1 (.ci/run and the template
    workflow, which install every tool), else a skip that names it. Never decided on `CI`: GitHub sets it."""
    message = f"{tool} not found ({install})"
    if os.environ.get("MLOPS_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message}, and MLOPS_REQUIRE_TOOLS=1 requires every tool")
    pytest.skip(f"{message}; MLOPS_REQUIRE_TOOLS=1 makes this a failure")


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
    sh(["git", "commit", "-q", "--allow-empty", "-m", "train"], repo)  # deterministic: may change nothing
    return repo
