"""The handler's metrics under the KServe runtime (serve/kserve_metrics.py), in-process: the handler's own
counter calls become Prometheus text with TorchServe's names, aggregates only, summed over processes."""

from __future__ import annotations

import json
import os

from prometheus_client import CollectorRegistry, generate_latest

from serve import kserve_metrics, kserve_runtime
from tests.serve.test_handler import make_handler
from tests.serve.test_handler import model_dir as toy_model  # noqa: F401 (a fixture)

GOOD = b'{"instances": [[1, 2, 3], [4, 5, 6]]}'


def _score(handler, *bodies):
    context = kserve_runtime.BatchContext("toy", ["application/json"] * len(bodies))
    return handler.handle([{"body": b} for b in bodies], context)


def _samples(registry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"
    }


def test_handler_counts_are_served_as_prometheus_text_with_torchserves_names(
    toy_model,  # noqa: F811
    monkeypatch,
    tmp_path,
):
    monkeypatch.setenv("MLOPS_METRICS_MIN_ROWS", "5")
    handler = make_handler(toy_model)
    registry = CollectorRegistry()
    metrics = kserve_metrics.install(handler, "toy", tmp_path, registry=registry)
    assert handler.metrics is metrics

    _score(handler, GOOD, b'{"instances": [[1]]}')  # 2 rows served, 1 refusal
    got = _samples(registry)
    assert got['RowsServed{ModelName="toy",Protocol="rows"}'] == 2
    assert got['RequestsRejected{ModelName="toy",Reason="features"}'] == 1
    assert got['WorkerStarts{ModelName="toy"}'] == 1
    assert got['HandlerSeconds_count{ModelName="toy"}'] == 1
    assert got['HandlerSeconds_bucket{ModelName="toy",le="+Inf"}'] == 1
    assert not any(k.startswith("PredictedClass") for k in got)  # 2 rows < min_rows: held, not shown

    _score(handler, GOOD, GOOD)  # 6 rows in all: the predicted-class mix is released, as a total
    got = _samples(registry)
    assert sum(v for k, v in got.items() if k.startswith("PredictedClass")) == 6
    assert not any("values" in k or "id" in k for k in got)  # counts by label only

    # another process sharing the socket: its last shared totals are added to this one's live counts
    metrics.share()
    other = json.loads((tmp_path / f"{os.getpid()}.json").read_text())
    (tmp_path / "1.json").write_text(json.dumps(other))
    got = _samples(registry)
    assert got['RowsServed{ModelName="toy",Protocol="rows"}'] == 12
    assert got['HandlerSeconds_count{ModelName="toy"}'] == 4
