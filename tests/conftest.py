"""Shared fixtures. `trained_repo` runs the real pipeline once per session in a temporary copy;
`github_server` is the GitHub REST API test server (tests/standins).

The `template` marker is set here on everything under tests/template/: the template's own machinery (the
act harness and the workflows, the podman image, the deploy manifests, the PostgreSQL and S3 servers).
A fork's PR loop deselects it; a fork that does not keep the machinery can delete that folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from tests.repo import copy_project, sh

TEMPLATE = Path(__file__).parent / "template"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.is_relative_to(TEMPLATE):
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
    from tests.model.project_data import seed_remote

    repo = copy_project(tmp_path_factory.mktemp("trained") / "repo", dvc_remote)
    seed_remote(repo)  # a forker's table cannot be recreated: `mlops data` pulls it
    sh(["mlops", "data"], repo)
    sh(["dvc", "repro"], repo)
    sh(["dvc", "push", "--run-cache"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "train"], repo)  # deterministic: may change nothing
    return repo


@pytest.fixture(scope="session")
def github_tls(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(cert, key, CA bundle) for 127.0.0.1, made once per session."""
    from tests.standins.github_api import make_certificate

    return make_certificate(tmp_path_factory.mktemp("github-tls"))


@pytest.fixture
def github_server(github_tls):
    """A fresh GitHub REST API test server (TLS, 127.0.0.1, random port) for each test."""
    from tests.standins.github_api import FakeGitHub

    with FakeGitHub(*github_tls) as server:
        yield server
