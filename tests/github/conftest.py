"""Fixtures of the local GitHub harness: the API test server and act. API: tests/github/README.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.github.act import Act
from tests.github.server import FakeGitHub, make_certificate


@pytest.fixture(scope="session")
def github_tls(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(cert, key, CA bundle) for 127.0.0.1, made once per session."""
    return make_certificate(tmp_path_factory.mktemp("github-tls"))


@pytest.fixture
def github_server(github_tls):
    """A fresh GitHub REST API test server (TLS, 127.0.0.1, random port) for each test."""
    with FakeGitHub(*github_tls) as server:
        yield server


@pytest.fixture
def act(tmp_path, github_server) -> Act:
    """`act.run(repo, "pull_request", event, workflow="pr.yml", job=None, secrets=, variables=, env=)`.

    Runs share this test's Actions cache and artifact store (`act.state`), like runs of one repository."""
    return Act(tmp_path, github_server)
