"""The second runtime (serve.runtime: kserve): the same .mar under KServe's model server.

The batcher in-process (no server), then one real server for the module, started by `mlops serve start`
from params.yaml in a clone of the session's trained repository: parity with the offline model, the
hostile requests of test_torchserve.py, and the inference log against the answers.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from serve import kserve_runtime
from serve import server as serve_server
from tests.conftest import missing_tool
from tests.repo import clone, sh
from tests.serve.test_handler import make_handler
from tests.serve.test_handler import model_dir as toy_model  # noqa: F401 (a fixture)
from tests.serve.test_torchserve import (
    BAD_REQUESTS,
    MODEL,
    Server,
    _body,
    _good,
    free_port,
    listening,
    v2_body,
)


def test_adaptive_batching_scores_a_lone_request_at_once_and_groups_concurrent_ones(toy_model):  # noqa: F811
    handler = make_handler(toy_model)
    batcher = kserve_runtime.Batcher(handler, "toy", max_requests=4)
    good = b'{"instances": [[1, 2, 3]]}'

    async def scenario():
        lone = await asyncio.wait_for(batcher.submit(good, "application/json"), 1)
        together = await asyncio.gather(
            *[batcher.submit(b, "application/json") for b in [good, b'{"instances": [[1]]}'] * 3]
        )
        return lone, together

    lone, together = asyncio.run(scenario())
    assert lone[0] == 200 and len(json.loads(lone[1])["predictions"]) == 1
    assert [status for status, _ in together] == [200, 400] * 3
    assert "expected 3 feature values" in json.loads(together[1][1])["error"]
    assert batcher.sizes == {1: 1, 4: 1, 2: 1}  # the lone one alone; six concurrent ones in two batches


def _runtime_python_has_kserve() -> bool:
    probe = [serve_server.runtime_python(), "-c", "import kserve"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def kserve(trained_repo, dvc_remote, tmp_path_factory):
    if not _runtime_python_has_kserve():
        missing_tool("kserve", "pip install -c constraints.txt '.[kserve]', or set MLOPS_RUNTIME_PYTHON")
    repo = clone(trained_repo, tmp_path_factory.mktemp("kserve") / "repo", dvc_remote)
    port = free_port()
    env = {
        "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{port}",
        "TS_METRICS_ADDRESS": f"http://127.0.0.1:{free_port()}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{repo}/mlflow.db",
    }
    sh(["dvc", "pull"], repo)
    srv = Server(repo, env, {"inference": port})
    srv.mlops("promote")
    srv.mlops("archive")
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("runtime: torchserve", "runtime: kserve"))
    srv.mlops("serve", "start")
    yield srv
    srv.mlops("serve", "stop", check=False)


@pytest.mark.slow
def test_kserve_predictions_equal_offline_ones_in_both_protocols(kserve):
    from model.evaluate import predict_proba

    test = pd.read_parquet(kserve.repo / "artifacts/prepared/test.parquet")[kserve.features]
    offline = predict_proba(kserve.repo / "artifacts/model/model.pt", test.to_numpy())
    classes = json.loads((kserve.repo / "artifacts/model/meta.json").read_text())["classes"]
    served = []
    for start in range(0, len(test), 64):
        served += kserve.client.predict(test.iloc[start : start + 64].to_dict(orient="records"))[
            "predictions"
        ]
    proba = np.array([[p["probabilities"][c] for c in classes] for p in served])
    assert np.abs(proba - offline).max() < 1e-6
    assert {p["model_version"] for p in served} == {"1"}
    status, answer = kserve.raw(
        v2_body(test.head(64).to_numpy(), id="req-7"), path=f"/v2/models/{MODEL}/infer"
    )
    assert status == 200 and answer["id"] == "req-7" and answer["model_version"] == "1", answer
    expected = offline[:64]  # a small table's test split has fewer rows
    proba = np.array(answer["outputs"][1]["data"]).reshape(expected.shape)  # a column per class
    assert np.abs(proba - expected).max() < 1e-6
    status, meta = kserve.raw(None, path=f"/v2/models/{MODEL}", method="GET")  # KServe's own metadata route
    assert (
        status == 200 and meta["name"] == MODEL and meta["inputs"][0]["shape"] == [-1, len(test.columns)]
    ), meta


@pytest.mark.slow
def test_kserve_answers_the_hostile_requests_like_torchserve_and_keeps_serving(kserve):
    good = json.dumps({"instances": [_good(kserve)]}).encode()
    failures = []
    for case, (given, content_type, token, status, words) in BAD_REQUESTS.items():
        if not token:  # KServe's gate says 401, as the deploy gate does (TorchServe: 400)
            status, words = 401, "missing bearer token"
        for path in (f"/predictions/{MODEL}", f"/v2/models/{MODEL}/infer"):
            got, body = kserve.raw(_body(kserve, case, given), content_type, token, path=path)
            message = body.get("error") if isinstance(body, dict) else body
            if got != status or words not in str(message):
                failures.append(f"{case} on {path}: HTTP {got} {message!r}, expected {status} with {words!r}")
        ok, answer = kserve.raw(good)
        if ok != 200 or len(answer["predictions"]) != 1:
            failures.append(f"after {case}: good request got HTTP {ok}")
    assert kserve.raw(good, token=True, path=f"/v2/models/{MODEL}/versions/1/infer")[0] == 200
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_kserve_front_refuses_before_the_handler_and_passes_the_rest_to_kserve(kserve):
    good = json.dumps({"instances": [_good(kserve)]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", kserve.ports["inference"], timeout=20)
    conn.request("POST", f"/predictions/{MODEL}", body=good, headers={"Authorization": "Bearer wrong"})
    answer = conn.getresponse()
    assert (answer.status, json.loads(answer.read())["error"]) == (403, "wrong token")
    conn.close()
    assert kserve.raw(None, path=f"/v2/models/{MODEL}/ready", method="GET", token=False)[0] == 401
    assert kserve.raw(good, method="PUT")[0] == 405
    assert kserve.raw(good, path="/predictions/other")[0] == 404
    assert kserve.raw(None, path=f"/v2/models/{MODEL}/ready", method="GET") == (
        200,
        {"name": MODEL, "ready": True},
    )


def _rows_served(kserve) -> float:
    status, text = kserve.raw(None, path="/metrics", method="GET")
    assert status == 200, text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("RowsServed{"))


def _settled_rows(kserve, timeout: float = 10.0) -> float:
    """RowsServed once two scrapes a share interval apart agree (each process shares its counts once a
    second), so a count still in flight is neither missed nor taken for this test's own."""
    last, deadline = _rows_served(kserve), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.2)
        now = _rows_served(kserve)
        if now == last:
            return now
        last = now
    return last


@pytest.mark.slow
def test_kserve_metrics_path_has_the_handlers_counts_behind_the_token(kserve):
    assert kserve.raw(None, path="/metrics", method="GET", token=False)[0] == 401
    before = _settled_rows(kserve)  # earlier tests' rows may still be on their way from the other process
    for _ in range(4):  # 2 processes: the scraped one adds the other's totals (shared once a second)
        assert kserve.raw(json.dumps({"instances": [_good(kserve)] * 3}).encode())[0] == 200
    deadline = time.monotonic() + 5
    while _rows_served(kserve) < before + 12 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _settled_rows(kserve) == before + 12
    _, text = kserve.raw(None, path="/metrics", method="GET")
    assert f'WorkerStarts{{ModelName="{MODEL}"}}' in text and "HandlerSeconds_bucket{" in text, text


@pytest.mark.slow
def test_kserve_logs_exactly_what_it_scored(kserve):
    """A decoy for the log (an escaped `d\\u0061ta` key and a `data` in parameters) and plain requests:
    each log record holds the values that were scored and the answer that was sent."""
    row = [float(i) + 0.25 for i in range(len(kserve.features))]
    zeros = [0] * len(row)
    decoy = (
        f'{{"inputs": [{{"name": "input-0", "shape": [1, {len(row)}], "datatype": "FP64", "d\\u0061ta": '
        + json.dumps(row)
        + ', "parameters": {"data": '
        + json.dumps(zeros)
        + "}}]}"
    )
    status, answer = kserve.raw(decoy.encode(), path=f"/v2/models/{MODEL}/infer")
    assert status == 200, answer
    status, rows_answer = kserve.raw(json.dumps({"instances": [row]}).encode())
    assert status == 200
    records = kserve.log_records()
    scored = [r for r in records if r["values"] in (row, [row])]
    assert len(scored) == 2, records[-3:]
    assert [r["probabilities"] for r in scored] == [
        answer["outputs"][1]["data"],
        list(rows_answer["predictions"][0]["probabilities"].values()),
    ]
    assert not any(r["values"] == zeros for r in records)


@pytest.mark.slow
def test_kserve_stop_frees_the_port(kserve):
    kserve.mlops("serve", "stop")
    assert not listening(kserve.ports["inference"])
