"""Fixtures for the scale-out tests: real server processes, each stopped (ports checked free) at the end."""

from __future__ import annotations

import os

import pytest

from benchmarks import servers
from tests.conftest import missing_tool


@pytest.fixture
def launched():
    """Servers a test started; any still running when it ends (pass or fail) are stopped here."""
    started: list[servers.Server] = []
    yield started
    for server in reversed(started):
        server.stop()


@pytest.fixture
def postgres_available():
    if servers.postgres_bin() is None:
        missing_tool("PostgreSQL (initdb under /usr/lib/postgresql/*/bin)", "apt-get install postgresql")


@pytest.fixture
def no_client_credentials(monkeypatch):
    """Start from no AWS or MLflow settings at all, so each test sets exactly what a user would."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "MLFLOW_")):
            monkeypatch.delenv(name)
