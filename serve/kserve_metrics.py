"""The handler's own metrics under the KServe runtime, as Prometheus text.

Under TorchServe the handler's counters (RowsServed, RequestsRejected, PredictedClass, ...) go through
TorchServe's metrics API; the KServe runtime has no such API (and no TorchServe package). So the runtime
gives the handler this stand-in for its `metrics` attribute: the same `add(key, value, *labels)` calls,
the same names and labels as serve/metrics.yaml (monitoring/alerts.yml works for both runtimes), counts
kept in memory and added to prometheus_client's registry. They appear on KServe's `/metrics` on the
inference port (behind the runtime's token front) and on the metrics address (127.0.0.1 by default).

Aggregates only, as under TorchServe: counts by label, and the per-row ones (PredictedClass,
OutOfRangeValues) are HELD until `min_rows` rows were served since their last release, so a scrape in a
quiet period never shows one request's diagnosis. No request, row, value or id is kept.

Several processes share the listening socket (`serve.kserve_workers`): each writes its totals to
`<share_dir>/<pid>.json` at most once a second, and a scrape sums the other processes' files with its
own live counts (others lag by up to a second, as TorchServe's flush does).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import threading
import time
from pathlib import Path

# Prometheus' default buckets (TorchServe's Java client uses the same): 5 ms .. 10 s.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
COUNTERS = {  # handler key -> (metric name, label names after ModelName): serve/metrics.yaml
    "rows": ("RowsServed", ("Protocol",)),
    "rejects": ("RequestsRejected", ("Reason",)),
    "out_of_range": ("OutOfRangeValues", ("Feature",)),
    "predicted": ("PredictedClass", ("Class",)),
    "log_failures": ("InferenceLogWriteFailures", ()),
    "starts": ("WorkerStarts", ()),
}
HELD = frozenset({"predicted", "out_of_range"})  # describe rows: released per min_rows rows
HISTOGRAM = ("seconds", "HandlerSeconds")


class HandlerMetrics:
    """Counts the handler's metric updates; `collect` is a prometheus_client collector."""

    def __init__(self, model: str, min_rows: int = 100, share_dir: Path | None = None, every: float = 1.0):
        self.model = model
        self.min_rows = max(1, int(min_rows))
        self.share_dir, self.every = share_dir, every
        self.counts: dict[tuple[str, tuple[str, ...]], float] = {}
        self.held: dict[tuple[str, tuple[str, ...]], float] = {}
        self.held_rows = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.seconds_sum = 0.0
        self.lock = threading.Lock()
        self.dirty = threading.Event()
        if share_dir is not None:
            threading.Thread(target=self._sharer, name="handler-metrics", daemon=True).start()

    def add(self, key: str, value: float, *labels: str) -> None:
        """The handler's call, once per batch and label: never raises (a metric never fails a request)."""
        if not value:
            return
        with self.lock:
            if key == HISTOGRAM[0]:
                self.buckets[bisect.bisect_left(BUCKETS, value)] += 1
                self.seconds_sum += value
            elif key in HELD:
                self.held[(key, labels)] = self.held.get((key, labels), 0) + value
            elif key in COUNTERS:
                self.counts[(key, labels)] = self.counts.get((key, labels), 0) + value
                if key == "rows":
                    self._release(value)
            else:
                return
        self.dirty.set()

    def _release(self, rows: float) -> None:
        self.held_rows += rows
        if self.held_rows >= self.min_rows:
            for item, value in self.held.items():
                self.counts[item] = self.counts.get(item, 0) + value
            self.held, self.held_rows = {}, 0.0

    def snapshot(self) -> dict:
        """What this process may show: released counts and the histogram, JSON-ready."""
        with self.lock:
            return {
                "counts": [[key, list(labels), value] for (key, labels), value in self.counts.items()],
                "buckets": list(self.buckets),
                "sum": self.seconds_sum,
            }

    def totals(self) -> dict:
        """This process's live counts plus every other process's last shared file."""
        parts = [self.snapshot()]
        if self.share_dir is not None:
            for path in sorted(self.share_dir.glob("*.json")):
                if path.stem != str(os.getpid()):
                    with contextlib.suppress(OSError, ValueError):
                        parts.append(json.loads(path.read_text()))
        counts: dict[tuple[str, tuple[str, ...]], float] = {}
        buckets, total = [0] * (len(BUCKETS) + 1), 0.0
        for part in parts:
            for key, labels, value in part.get("counts", []):
                counts[(key, tuple(labels))] = counts.get((key, tuple(labels)), 0) + value
            for i, n in enumerate(part.get("buckets", [])[: len(buckets)]):
                buckets[i] += n
            total += part.get("sum", 0.0)
        return {"counts": counts, "buckets": buckets, "sum": total}

    def collect(self):
        """prometheus_client collector: TorchServe's names (counters without `_total`, so `untyped`)."""
        from prometheus_client.core import Metric

        totals = self.totals()
        for key, (name, label_names) in COUNTERS.items():
            family = Metric(name, f"handler {key} (serve/metrics.yaml)", "unknown")
            for (k, labels), value in sorted(totals["counts"].items()):
                if k == key:
                    family.add_sample(
                        name, {"ModelName": self.model, **dict(zip(label_names, labels, strict=False))}, value
                    )
            if family.samples:
                yield family
        name = HISTOGRAM[1]
        family = Metric(name, "one handler call (a batch), parse to log write", "histogram")
        model, running = {"ModelName": self.model}, 0
        for bound, n in zip((*BUCKETS, math.inf), totals["buckets"], strict=True):
            running += n
            family.add_sample(
                f"{name}_bucket", {**model, "le": "+Inf" if bound == math.inf else str(bound)}, running
            )
        family.add_sample(f"{name}_count", model, running)
        family.add_sample(f"{name}_sum", model, totals["sum"])
        yield family

    def share(self) -> None:
        """Write this process's totals for the other processes' scrapes (atomic replace)."""
        if self.share_dir is None:
            return
        path = self.share_dir / f"{os.getpid()}.json"
        tmp = path.with_suffix(".partial")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(self.snapshot()))
            os.replace(tmp, path)

    def _sharer(self) -> None:
        while True:
            self.dirty.wait()
            self.dirty.clear()
            self.share()
            time.sleep(self.every)


def install(handler, model: str, share_dir: Path | None = None, registry=None) -> HandlerMetrics:
    """Give a loaded handler these metrics (its `metrics` attribute) and register them for /metrics."""
    from prometheus_client import REGISTRY

    min_rows = getattr(getattr(handler, "metrics", None), "min_rows", 100)
    metrics = HandlerMetrics(model, min_rows, share_dir)
    handler.metrics = metrics
    metrics.add("starts", 1)  # the handler counted its load on the metrics it had then
    (registry or REGISTRY).register(metrics)
    return metrics
