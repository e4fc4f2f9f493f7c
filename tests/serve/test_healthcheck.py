"""The image's health check: --live is /ping alone; behind the deploy gate (token off) no key is sent;
--supervise restarts a frontend that stopped answering or logged an OutOfMemoryError."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

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


STUB = """
import http.server, json, os, sys, time, threading
from pathlib import Path
run = Path(sys.argv[1]); mode = sys.argv[2]
starts = run / "starts"; starts.write_text(str(int(starts.read_text() or 0) + 1) if starts.exists() else "1")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "Healthy"}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["STUB_PORT"])), H)
server.allow_reuse_address = True
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(1.0)
if mode == "wedge":  # stops answering, like the frontend whose Netty thread is stuck
    server.shutdown(); server.server_close()
else:  # logs what the frontend logs on direct-memory exhaustion, and keeps answering
    with open(run / "ts_log.log", "a") as log:
        log.write("java.lang.OutOfMemoryError: Cannot reserve 4096 bytes of direct buffer memory\\n")
time.sleep(600)
"""


@pytest.mark.parametrize("mode", ["wedge", "oom"])
def test_the_watchdog_restarts_a_wedged_frontend_and_stops_on_sigterm(tmp_path, mode):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "stub.py").write_text(STUB)
    env = {
        **os.environ,
        "STUB_PORT": str(port),
        "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{port}",
        "TS_DISABLE_TOKEN_AUTHORIZATION": "true",
        "LOG_LOCATION": str(tmp_path),
        "MLOPS_WATCHDOG_SECONDS": "0.2",
    }
    stub = [sys.executable, "stub.py", ".", mode]
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "serve.healthcheck", "--supervise", "--", *stub],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(healthcheck.__file__).parents[1])},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        starts = tmp_path / "starts"
        while time.monotonic() < deadline and int(starts.read_text() or 0 if starts.exists() else 0) < 2:
            time.sleep(0.2)
        assert int(starts.read_text()) >= 2, "the watchdog did not restart the stub"
        assert (tmp_path / ".watchdog.pid").read_text().strip() == str(watchdog.pid)
    finally:
        watchdog.send_signal(signal.SIGTERM)
        code = watchdog.wait(20)
    why = "/ping failed" if mode == "wedge" else "ran out of memory"
    assert code == 0 and why in watchdog.stderr.read()
    assert not (tmp_path / ".watchdog.pid").exists()
