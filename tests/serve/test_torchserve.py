"""End to end with a real TorchServe: promote, archive, start, predict, reject bad requests, stop.

One server for the module (starting one takes about 10 s), on free loopback ports, in a clone of the
session's trained repository. The tests run in file order; the last one stops the server.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from serve.client import Client
from tests.repo import clone, sh

pytestmark = pytest.mark.slow
MODEL = "breast-cancer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Server:
    def __init__(self, repo: Path, env: dict[str, str], ports: dict[str, int]):
        self.repo, self.env, self.ports = repo, env, ports
        self.client = Client(
            f"http://127.0.0.1:{ports['inference']}", MODEL, repo / "logs/torchserve/key_file.json"
        )
        self.features = json.loads((repo / "artifacts/model/meta.json").read_text())["features"]

    def key(self, kind: str = "inference") -> str:
        return json.loads((self.repo / "logs/torchserve/key_file.json").read_text())[kind]["key"]

    def raw(
        self,
        body: bytes | None,
        content_type: str | None = "application/json",
        token: bool = True,
        method: str = "POST",
    ):
        """One request exactly as given: (status, parsed-or-text body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["inference"], timeout=10)
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if token:
            headers["Authorization"] = f"Bearer {self.key()}"
        conn.request(method, f"/predictions/{MODEL}", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, data.decode(errors="replace")

    def workers(self) -> list[dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["management"], timeout=10)
        conn.request("GET", f"/models/{MODEL}", headers={"Authorization": f"Bearer {self.key('management')}"})
        data = json.loads(conn.getresponse().read())
        conn.close()
        return [w for version in data for w in version["workers"]]

    def mlops(self, *args: str, check: bool = True):
        return sh(["mlops", *args], self.repo, check=check, **self.env)


@pytest.fixture(scope="module")
def server(trained_repo, dvc_remote, tmp_path_factory):
    repo = clone(trained_repo, tmp_path_factory.mktemp("serve") / "repo", dvc_remote)
    ports = {kind: free_port() for kind in ("inference", "management", "metrics")}
    env = {f"TS_{kind.upper()}_ADDRESS": f"http://127.0.0.1:{port}" for kind, port in ports.items()}
    env["TS_INITIAL_WORKER_PORT"] = str(free_port())  # the worker's socket name in /tmp
    env["TS_GRPC_INFERENCE_PORT"], env["TS_GRPC_MANAGEMENT_PORT"] = str(free_port()), str(free_port())
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{repo}/mlflow.db"
    sh(["dvc", "pull"], repo)
    srv = Server(repo, env, ports)
    srv.mlops("promote")
    srv.mlops("archive")
    srv.mlops("serve", "start")
    yield srv
    srv.mlops("serve", "stop", check=False)


def test_archive_is_stamped_with_the_promoted_version(server):
    release = json.loads((server.repo / "model_store/release.json").read_text())
    status, body = server.raw(json.dumps({"instances": [[1.0] * len(server.features)]}).encode())
    assert status == 200
    assert body["predictions"][0]["model_version"] == release["version"] == "1"


def test_predictions_on_the_test_split_equal_offline_ones(server):
    from model.evaluate import predict_proba

    test = pd.read_parquet(server.repo / "artifacts/prepared/test.parquet")
    rows = test[server.features]
    offline = predict_proba(server.repo / "artifacts/model/model.pt", rows.to_numpy())
    classes = json.loads((server.repo / "artifacts/model/meta.json").read_text())["classes"]
    served = []
    for start in range(0, len(rows), 64):  # named features, 64-row requests
        served += server.client.predict(rows.iloc[start : start + 64].to_dict(orient="records"))[
            "predictions"
        ]
    single = server.client.predict([rows.iloc[0].tolist()])["predictions"][0]  # ordered-array form
    assert len(served) == len(rows)
    proba = np.array([[p["probabilities"][c] for c in classes] for p in served])
    assert np.abs(proba - offline).max() < 1e-6
    assert [p["label"] for p in served] == [classes[i] for i in offline.argmax(1)]
    assert single["probabilities"] == pytest.approx(served[0]["probabilities"], abs=1e-6)


def _good(server) -> dict:
    return {name: 1.0 for name in server.features}


BAD_REQUESTS = {
    # name: (body, content type, send token, expected status, words the message must contain)
    "malformed JSON": (
        b'{"instances": [{"mean_radius": 1.0,',
        "application/json",
        True,
        400,
        "malformed JSON",
    ),
    "empty body": (b"", "application/json", True, 400, "empty body"),
    "no instances key": (b'{"rows": []}', "application/json", True, 400, 'missing key "instances"'),
    "wrong feature count": (
        b'{"instances": [[1.0, 2.0]]}',
        "application/json",
        True,
        400,
        "expected 30 feature values, got 2",
    ),
    "strings": (None, "application/json", True, 400, "must be a number, got string"),
    "unknown feature names": (None, "application/json", True, 400, "unknown: colour"),
    "NaN": (None, "application/json", True, 400, "must be finite, got nan"),
    "Infinity": (None, "application/json", True, 400, "must be finite, got inf"),
    "oversized batch": (None, "application/json", True, 413, "exceeds the limit of 1024 rows"),
    "wrong content type": (None, "text/plain", True, 415, "send application/json"),
    "form content type": (b"a=1", "application/x-www-form-urlencoded", True, 415, "send application/json"),
    "missing token": (None, "application/json", False, 400, "Token Authorization failed"),
}


def _body(server, case: str, given: bytes | None) -> bytes:
    if given is not None:
        return given
    row = _good(server)
    if case == "strings":
        row["mean_radius"] = "12.5"
    elif case == "unknown feature names":
        row.pop("mean_radius")
        row["colour"] = 1.0
    elif case == "NaN":
        return json.dumps({"instances": [{**row, "mean_radius": float("nan")}]}).encode()  # literal NaN
    elif case == "Infinity":
        return json.dumps({"instances": [{**row, "mean_area": float("inf")}]}).encode()  # literal Infinity
    elif case == "oversized batch":
        return json.dumps({"instances": [row] * 1025}).encode()
    return json.dumps({"instances": [row]}).encode()


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server):
    before = {(w["id"], w["pid"]) for w in server.workers()}
    good = json.dumps({"instances": [_good(server)]}).encode()
    failures = []
    for case, (given, content_type, token, status, words) in BAD_REQUESTS.items():
        got, body = server.raw(_body(server, case, given), content_type, token)
        message = body.get("error") or body.get("message") if isinstance(body, dict) else body
        if got != status or words not in str(message):
            failures.append(f"{case}: HTTP {got} {message!r}, expected {status} with {words!r}")
        ok, answer = server.raw(good)
        if ok != 200 or len(answer["predictions"]) != 1:
            failures.append(f"after {case}: good request got HTTP {ok}")
    assert not failures, "\n".join(failures)
    after = server.workers()
    assert {(w["id"], w["pid"]) for w in after} == before, "a worker restarted"
    assert all(w["status"] == "READY" for w in after)


def test_a_bad_request_batched_with_good_ones_fails_alone(server):
    """TorchServe batches concurrent requests into one handler call: errors must stay per request."""
    from concurrent.futures import ThreadPoolExecutor

    good = json.dumps({"instances": [_good(server)]}).encode()
    bad = b'{"instances": [[1.0]]}'
    bodies = [good, bad] * 16
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(server.raw, bodies))
    assert [status for status, _ in results] == [200, 400] * 16


def test_stop_flushes_the_inference_log_and_frees_the_ports(server):
    pids = [w["pid"] for w in server.workers()]
    server.mlops("serve", "stop")
    assert not any(listening(port) for port in server.ports.values())
    assert not any(psutil.pid_exists(int(pid)) for pid in pids)
    logs = list((server.repo / "logs/inference").glob("*.jsonl"))
    records = [json.loads(line) for f in logs for line in f.read_text().splitlines()]
    # 1 + the test rows + 1 ordered row + one good row per bad case + 16 batched good rows
    test_rows = len(pd.read_parquet(server.repo / "artifacts/prepared/test.parquet"))
    assert len(records) == 1 + test_rows + 1 + len(BAD_REQUESTS) + 16
    first = records[0]
    assert set(first) >= {"ts", "request_id", "model_version", "features", "prediction", "probabilities"}
    assert first["ts"].endswith("Z") and first["model_version"] == "1"
    assert list(first["features"]) == server.features
