"""The image's health check: --live is /ping alone; behind the deploy gate (token off) no key is sent."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from serve import healthcheck


@pytest.fixture
def frontend(monkeypatch, tmp_path):
    """A stand-in TorchServe that answers /ping and the management API; records Authorization headers."""
    seen = []

    class Stub(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            workers = [{"workers": [{"id": "9000", "status": "READY"}]}]
            body = json.dumps({"status": "Healthy"} if self.path == "/ping" else workers).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("TS_INFERENCE_ADDRESS", url)
    monkeypatch.setenv("TS_MANAGEMENT_ADDRESS", url)
    monkeypatch.setenv("MLOPS_KEY_FILE", str(tmp_path / "key_file.json"))  # absent
    yield seen
    server.shutdown()


def test_without_a_key_file_the_check_fails_while_token_auth_is_on(frontend, monkeypatch):
    monkeypatch.delenv("TS_DISABLE_TOKEN_AUTHORIZATION", raising=False)
    assert healthcheck.main([]) == 1 and healthcheck.main(["--live"]) == 1
    assert frontend == []


def test_behind_the_gate_the_check_sends_no_key(frontend, monkeypatch):
    monkeypatch.setenv("TS_DISABLE_TOKEN_AUTHORIZATION", "true")
    assert healthcheck.main(["--live"]) == 0
    assert healthcheck.main([]) == 0
    assert frontend == [None, None, None]  # /ping; /ping and the management API
