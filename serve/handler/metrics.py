"""The handler's metrics, through TorchServe's custom metrics API: summed in memory, flushed by a thread,
and the ones that describe rows held back until enough rows were served."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from typing import ClassVar

FLUSH_ENV = "MLOPS_METRICS_FLUSH_SECONDS"
MIN_ROWS_ENV = "MLOPS_METRICS_MIN_ROWS"  # per-row metrics are released once this many rows were served
DEFAULT_MIN_ROWS = 100


class Metrics:
    """The handler's metrics through TorchServe's custom metrics API (serve/metrics.yaml declares them).

    Each update is one `[METRICS]` line on the worker's stdout that the frontend parses into a Prometheus
    counter or histogram: at thousands of batches per second those lines took a fifth of the worker's
    time (py-spy, benchmarks/serve.py). So counters are summed in memory and emitted by a background
    thread every `flush_seconds` (MLOPS_METRICS_FLUSH_SECONDS, default 1 s; 0 = at once): one line per
    label set per period. The HandlerSeconds histogram cannot be summed, so it is sampled in time: at
    most one batch per `flush_seconds / 10` is observed (10 a second by default), which keeps its
    quantiles unbiased (the sampling does not depend on the latency). WorkerStarts is emitted at once.
    A worker killed between two flushes loses under a second of counts, never requests. Without a
    metrics context (tests that pass none) this does nothing; a metrics problem never fails a request.

    The metrics endpoint is not behind the model's token, so metrics that describe rows (the predicted
    class, out-of-range features) are HELD until at least `min_rows` rows were served since their last
    release, then released together: a scrape in a quiet period shows the mix of that many rows, never
    one request's diagnosis. RowsServed and rejects (counts, no content) are flushed as before."""

    NAMES: ClassVar[dict[str, tuple[str, list[str], str]]] = {
        "rows": ("RowsServed", ["ModelName", "Protocol"], "counter"),
        "rejects": ("RequestsRejected", ["ModelName", "Reason"], "counter"),
        "out_of_range": ("OutOfRangeValues", ["ModelName", "Feature"], "counter"),
        "predicted": ("PredictedClass", ["ModelName", "Class"], "counter"),
        "log_failures": ("InferenceLogWriteFailures", ["ModelName"], "counter"),
        "starts": ("WorkerStarts", ["ModelName"], "counter"),
        "seconds": ("HandlerSeconds", ["ModelName"], "histogram"),
    }

    HELD: ClassVar[frozenset[str]] = frozenset({"predicted", "out_of_range"})

    def __init__(self, context, model_name: str, flush_seconds: float = 0.0, min_rows: int = 1):
        self.model = model_name
        self.metrics = {}
        self.flush_seconds = flush_seconds
        self.min_rows = max(1, int(min_rows))
        self.pending: dict[tuple, float] = {}
        self.held: dict[tuple, float] = {}  # per-row metrics not yet covered by min_rows rows
        self.held_rows = 0
        self.lock = threading.Lock()
        self.observed_at = -math.inf  # last histogram observation (time.monotonic)
        cache = getattr(context, "metrics", None)
        if cache is None or not hasattr(cache, "add_metric_to_cache"):
            return
        try:  # TorchServe's own package: present wherever a worker runs
            from ts.metrics.metric_type_enum import MetricTypes
        except ImportError:  # pragma: no cover
            return
        for key, (name, dims, kind) in self.NAMES.items():
            metric_type = MetricTypes(kind)
            try:  # declared in serve/metrics.yaml; added here when another metrics file is in use
                try:
                    self.metrics[key] = cache.get_metric(name, metric_type)
                except Exception:
                    unit = "s" if kind == "histogram" else "count"
                    self.metrics[key] = cache.add_metric_to_cache(name, unit, dims, metric_type)
            except Exception as err:
                print(f"WARNING metrics: {name} unavailable: {err}", file=sys.stderr)
        if self.metrics and flush_seconds > 0:
            threading.Thread(target=self._flusher, name="handler-metrics", daemon=True).start()
            self._sample_prediction_time(cache)

    def _sample_prediction_time(self, cache) -> None:
        """TorchServe's worker (ts/service.py) also writes its PredictionTime gauge, one stdout line per
        batch: sampled like HandlerSeconds (a gauge keeps only its last value anyway)."""
        original = getattr(cache, "add_time", None)
        if original is None:
            return
        every, last = self.flush_seconds / 10, [-math.inf]

        def add_time(name, value, *args, **kwargs):
            if name == "PredictionTime":
                now = time.monotonic()
                if now - last[0] < every:
                    return None
                last[0] = now
            return original(name, value, *args, **kwargs)

        with contextlib.suppress(Exception):
            cache.add_time = add_time

    def add(self, key: str, value: float, *labels: str) -> None:
        metric = self.metrics.get(key)
        if metric is None or not value:
            return
        if key in self.HELD:
            with self.lock:
                self.held[(key, labels)] = self.held.get((key, labels), 0) + value
            return
        if key == "rows":
            self._release(value)
        if self.flush_seconds <= 0 or key == "starts":
            self._emit(metric, value, labels)
            return
        if self.NAMES[key][2] == "histogram":
            now = time.monotonic()
            if now - self.observed_at >= self.flush_seconds / 10:
                self.observed_at = now
                self._emit(metric, value, labels)
            return
        with self.lock:
            self.pending[(key, labels)] = self.pending.get((key, labels), 0) + value

    def _release(self, rows: float) -> None:
        """Count served rows; once `min_rows` are covered, the held metrics join the normal flush."""
        with self.lock:
            self.held_rows += rows
            if self.held_rows < self.min_rows:
                return
            released, self.held, self.held_rows = self.held, {}, 0
            if self.flush_seconds > 0:
                for item, value in released.items():
                    self.pending[item] = self.pending.get(item, 0) + value
                return
        for (key, labels), value in released.items():
            self._emit(self.metrics[key], value, labels)

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        for (key, labels), value in pending.items():
            self._emit(self.metrics[key], value, labels)

    def _emit(self, metric, value: float, labels: tuple) -> None:
        with contextlib.suppress(Exception):  # never fail a request for a metric
            metric.add_or_update(value, [self.model, *labels])

    def _flusher(self) -> None:
        while True:
            time.sleep(self.flush_seconds)
            self.flush()
