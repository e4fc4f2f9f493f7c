"""The act fixture of the local GitHub harness (the API test server's fixtures are in tests/conftest.py).
API: tests/template/github/README.md."""

from __future__ import annotations

import pytest

from tests.template.github.act import Act


@pytest.fixture
def act(tmp_path, github_server) -> Act:
    """`act.run(repo, "pull_request", event, workflow="pr.yml", job=None, secrets=, variables=, env=)`.

    Runs share this test's Actions cache and artifact store (`act.state`), like runs of one repository."""
    return Act(tmp_path, github_server)
