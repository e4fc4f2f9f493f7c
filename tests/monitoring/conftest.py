"""A workspace for the drift tests (params.yaml, the project's table and its prepared split, in tmp_path), a
local webhook that receives the alerts (the GitHub API test server's fixtures are in tests/conftest.py)."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.repo import ROOT
from tests.schema import write_data

ENV = (
    "MLOPS_INFERENCE_LOG_DIR",
    "MLOPS_FEEDBACK",
    "MLOPS_ALERT_URLS",
    "GITHUB_OUTPUT",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_ACTIONS",
)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """cwd = a project copy with data/ and artifacts/prepared/ (the reference), no logs yet."""
    from model.prepare import run as prepare

    monkeypatch.chdir(tmp_path)
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    write_data(tmp_path)
    prepare()
    return tmp_path


@pytest.fixture
def no_report_charts(monkeypatch):
    """Evidently computes every statistic and test verdict as usual, but draws no charts: the Plotly
    figures are most of a check's time, and the report's HTML is then only a shell. For tests that read
    decisions many times (a loud AttributeError if Evidently renames what is patched)."""
    from evidently.metrics.column_statistics import ValueDriftCalculation
    from evidently.presets.drift import DataDriftPreset

    monkeypatch.setattr(ValueDriftCalculation, "_render", lambda self, *args, **kwargs: [])
    monkeypatch.setattr(DataDriftPreset, "render", lambda self, *args, **kwargs: [])


@pytest.fixture
def drift(capsys):
    """Run `mlops drift ARGS` in-process: (exit code, summary.json or None, stdout + stderr)."""
    from mlops.cli import main

    def run(*args: str):
        capsys.readouterr()
        code = main(["drift", *args])
        captured = capsys.readouterr()
        path = Path("reports/drift/summary.json")
        summary = json.loads(path.read_text()) if path.exists() else None
        return code, summary, captured.out + captured.err

    return run


class Webhook:
    """A JSON webhook on 127.0.0.1 that records every POST: what Apprise's json:// URL delivers to."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.httpd.server_address[1]}/alerts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webhook(monkeypatch):
    """Alerts go to a local receiver: `webhook.received` is the list of posted JSON bodies."""
    hook = Webhook()
    monkeypatch.setenv("MLOPS_ALERT_URLS", hook.url)
    yield hook
    hook.close()
