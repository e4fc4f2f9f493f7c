"""TabularHandler: loaded once per worker, it scores each batch TorchServe assembles.

The model is the TorchScript file the pipeline exported: raw float32 features in, logits out, scaling
baked in, so serving applies exactly training's preprocessing. Classification answers class
probabilities; regression answers the prediction.

The invariant (docs/serving.md): whatever the bytes, a request gets a 2xx or a 4xx with a JSON body,
never a 5xx, and the other requests of the same batch are answered as if each came alone.

Every accepted row is appended to the inference log with one write(2) BEFORE the batch's responses are
returned, so a worker killed at any moment has lost no row it acknowledged (see InferenceLog).
"""

from __future__ import annotations

import gc
import json
import math
import operator
import os
import sys
import time
import traceback

import torch

from serve.handler.context import OneOf, content_type, quiet_worker_log, request_id_of
from serve.handler.errors import PHRASES, RequestError
from serve.handler.jsonio import MIN_NODES, dumps
from serve.handler.logfile import DEFAULT_LOG, LOG_ENV, InferenceLog
from serve.handler.metrics import DEFAULT_MIN_ROWS, FLUSH_ENV, MIN_ROWS_ENV, Metrics
from serve.handler.protocols import Protocols
from serve.handler.records import REFUSED_DIR, LogRecords, now_text
from serve.handler.schema import Schema

SPEC_ENV = "MLOPS_SERVE_SPEC"  # JSON merged over serve.json: `mlops serve start` passes params.yaml's values


class Batch:
    """The accepted requests of one TorchServe batch: their rows as one float64 block."""

    def __init__(self):
        self.flat = bytearray()  # float64, native order
        # (idx, protocol, n rows, v2 request id, the raw values as sent: what the log keeps)
        self.items: list[tuple[int, str, int, object, object]] = []


class TabularHandler(Protocols):
    """Loaded once per worker; `handle` is called with each batch TorchServe assembles."""

    def __init__(self):
        self.model = None
        self.model64 = None
        self.log: InferenceLog | None = None
        self.refused: InferenceLog | None = None  # refusal records, in <log dir>/refused/
        self.metrics = Metrics(None, "")

    def initialize(self, context) -> None:
        props = context.system_properties
        model_dir = props.get("model_dir")
        manifest = context.manifest["model"]
        with open(os.path.join(model_dir, "serve.json")) as f:
            spec = json.load(f)
        spec.update(json.loads(os.environ.get(SPEC_ENV) or "{}"))
        torch.set_num_threads(int(os.environ.get("MLOPS_TORCH_THREADS", "1")))  # tiny MLP: 1 is fastest
        model_file = os.path.join(model_dir, manifest["serializedFile"])
        self.model = torch.jit.load(model_file, map_location="cpu").eval()
        self.features: list[str] = list(spec["features"])
        self.n = len(self.features)
        self.index = {name: i for i, name in enumerate(self.features)}
        self.keys = set(self.features)
        getter = operator.itemgetter(*self.features)
        self.take = getter if self.n > 1 else (lambda row: (getter(row),))
        self.task = str(spec["task"])
        self.regression = self.task == "regression"
        self.classes: list[str] = [] if self.regression else [str(c) for c in spec["classes"]]
        self.schema = Schema(self.features, spec["schema"])
        self.version = str(spec["model_version"])
        self.model_name = str(getattr(context, "model_name", None) or spec.get("model_name", "model"))
        self.records = LogRecords(self.features, None if self.regression else self.classes, self.version)
        self.max_rows = int(spec.get("max_batch_rows", 1024))
        self.max_nodes = max(MIN_NODES, 4 * self.max_rows * (self.n + 1))
        ranges = spec.get("feature_ranges") or {}
        lo = [_bound(ranges.get(f, [None, None])[0], -math.inf) for f in self.features]
        hi = [_bound(ranges.get(f, [None, None])[1], math.inf) for f in self.features]
        self.lo, self.hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
        self.has_ranges = bool(torch.isfinite(self.lo).any() or torch.isfinite(self.hi).any())
        min_rows = os.environ.get(MIN_ROWS_ENV) or spec.get("metrics_min_rows") or DEFAULT_MIN_ROWS
        self.metrics = Metrics(context, self.model_name, float(os.environ.get(FLUSH_ENV, "1")), int(min_rows))
        quiet_worker_log()
        log_dir = os.environ.get(LOG_ENV) or spec.get("inference_log_dir") or "logs/inference"
        if log_dir.lower() not in ("", "off", "none"):
            opts = {**DEFAULT_LOG, **(spec.get("inference_log") or {})}
            self.log = InferenceLog(log_dir, self.model_name, **{k: opts[k] for k in DEFAULT_LOG})
            # a folder of their own: readers of served records never meet them; the drift job reads both
            refused = os.path.join(log_dir, REFUSED_DIR)
            self.refused = InferenceLog(refused, self.model_name, **{k: opts[k] for k in DEFAULT_LOG})
        # Warm-up: the first TorchScript calls profile and optimise the graph; do it before traffic.
        with torch.inference_mode():
            for n in (1, 8, 64):
                self.model(torch.zeros(n, self.n))
        try:  # scores rows whose float32 logits overflow (e.g. 3e38 everywhere); see _forward
            self.model64 = torch.jit.load(model_file, map_location="cpu").double().eval()
            with torch.inference_mode():
                self.model64(torch.zeros(1, self.n, dtype=torch.float64))
        except Exception as err:
            self.model64 = None
            print(
                f"WARNING no float64 copy of the model ({err}): overflowing rows get a 422", file=sys.stderr
            )
        # Everything loaded so far lives as long as the worker: out of the collector's generations, so a
        # request that allocates many containers does not make each collection walk the model too.
        gc.collect()
        gc.freeze()
        self.metrics.add("starts", 1)

    # -- request parsing -------------------------------------------------------------------------

    # -- inference -------------------------------------------------------------------------------
    def handle(self, data: list, context) -> list:
        """One TorchServe batch. Whatever happens, every request gets its own answer: if the batch path
        fails unexpectedly, each request is re-run alone, so only the one that causes it fails."""
        started = time.perf_counter()
        try:
            outputs = self._handle(data, context)
            self.metrics.add("seconds", time.perf_counter() - started)
            return outputs
        except Exception:
            traceback.print_exc()
            if len(data) == 1:
                outputs = [None]
                self._fail(
                    outputs, context, 0, RequestError(400, "the request could not be processed", "internal")
                )
                return outputs
        outputs = []
        for idx, request in enumerate(data):
            try:
                out = self._handle([request], OneOf(context, idx))
            except Exception:
                traceback.print_exc()
                out = [None]
                self._fail(
                    out,
                    OneOf(context, idx),
                    0,
                    RequestError(400, "the request could not be processed", "internal"),
                )
            outputs.append(out[0])
        return outputs

    def _handle(self, data: list, context) -> list:
        outputs: list = [None] * len(data)
        batch = Batch()
        for idx, request in enumerate(data):
            try:
                body = self._body(request, idx, context)
                protocol, values, v2_id, logged = self._parse_request(body)
                batch.flat += values
                batch.items.append((idx, protocol, len(values) // (8 * self.n), v2_id, logged))
            except RequestError as err:
                self._fail(outputs, context, idx, err)
            except (RecursionError, OverflowError, UnicodeError, ValueError, TypeError, MemoryError) as err:
                self._fail(
                    outputs,
                    context,
                    idx,
                    RequestError(400, f"malformed request ({type(err).__name__})", "malformed_json"),
                )
        if not batch.items:
            return outputs
        x64 = torch.frombuffer(batch.flat, dtype=torch.float64).view(-1, self.n)
        x = x64.float()
        # One reduction says "all finite" (NaN and infinities propagate into the sum); only when it
        # does not (or nulls may be NaN) are the rows checked one by one.
        if self.schema.any_nullable or not bool(torch.isfinite(x.sum())):
            finite = self._valid(x).all(dim=1)
            if not bool(finite.all()):  # NaN, Infinity or beyond float32: fail those requests only
                x64, x, batch = self._drop(x64, x, finite, batch, outputs, context, "not_finite")
                if not batch.items:
                    return outputs
        proba, scored = self._forward(x, x64)
        if scored is not None and not bool(scored.all()):
            x64, keep_proba, batch = self._drop(x64, proba, scored, batch, outputs, context, "not_scorable")
            proba = keep_proba
            if not batch.items:
                return outputs
        self._answer(batch, x64, proba, outputs, context)
        return outputs

    def _valid(self, x):
        """Finite float32 values, or NaN where the column imputes (a null the model fills)."""
        ok = torch.isfinite(x)
        if self.schema.any_nullable:
            ok |= torch.isnan(x) & self.schema.nullable
        return ok

    def _forward(self, x, x64):
        """Classification: softmax in float64 of the float32 model's logits (as model/evaluate.py does);
        regression: the [n, 1] prediction. Rows whose float32 output overflows are re-scored by a float64
        copy of the model; rows still not finite are refused."""
        with torch.inference_mode():
            logits = self.model(x).double()
            if self.regression:
                logits = logits.reshape(len(x), -1)[:, :1]
            if bool(torch.isfinite(logits.sum())):  # the common case: every row scored, one reduction
                if self.regression:
                    return logits, None
                proba = torch.softmax(logits, dim=1)
                return proba / proba.sum(dim=1, keepdim=True), None
            ok = torch.isfinite(logits).all(dim=1)
            if not bool(ok.all()) and self.model64 is not None:
                bad = (~ok).nonzero().flatten()
                logits[bad] = self.model64(x64[bad])
                ok = torch.isfinite(logits).all(dim=1)
            if self.regression:
                return logits, ok
            proba = torch.softmax(logits, dim=1)
            proba = proba / proba.sum(dim=1, keepdim=True)
        return proba, ok & torch.isfinite(proba).all(dim=1)

    def _drop(self, x64, other, good, batch: Batch, outputs, context, why: str):
        """Fail the requests that hold a row not in `good`; keep the rest, rows and order unchanged."""
        keep, kept, start = [], Batch(), 0
        for item in batch.items:
            idx, n = item[0], item[2]
            stop = start + n
            if bool(good[start:stop].all()):
                keep.append(torch.arange(start, stop))
                kept.items.append(item)
            else:
                row = int((~good[start:stop]).nonzero()[0, 0])
                if why == "not_finite":
                    j = int((~self._valid(x64[start + row].float())).nonzero()[0, 0])
                    v = float(x64[start + row, j])
                    detail = (
                        f"must be finite, got {v}"
                        if not math.isfinite(v)
                        else f"= {v!r} is outside the float32 range"
                    )
                    err = RequestError(
                        400, f"row {row}: {self.features[j]} {detail}", "not_finite", self.features[j]
                    )
                else:
                    err = RequestError(
                        422, f"row {row}: the model's output is not finite for these values", why
                    )
                self._fail(outputs, context, idx, err)
            start = stop
        index = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)
        return x64[index], other[index], kept

    def _answer(self, batch: Batch, x64, out, outputs: list, context) -> None:
        """Responses and log records of the accepted requests; the log is written before returning.
        `out`: the probabilities [n, C] (classification) or the predictions [n, 1] (regression)."""
        classes, version, c = self.classes, self.version, len(self.classes)
        if self.regression:
            predictions = out[:, 0].tolist()
            flat_out = predictions
        else:
            best = out.argmax(dim=1)
            predictions = [classes[b] for b in best.tolist()]
            flat_out = out.flatten().tolist()
        flags = self._out_of_range(x64)
        records: list[bytes] = []
        if self.log is not None:
            ts = dumps(now_text())
        start = 0
        served = {"rows": 0, "v2": 0}
        for idx, protocol, n, v2_id, logged in batch.items:
            stop = start + n
            request_id = request_id_of(context, idx)
            rows_out = predictions[start:stop]
            proba = None if self.regression else flat_out[start * c : stop * c]
            if protocol == "v2":
                outputs[idx] = self._v2_answer(n, v2_id, request_id, rows_out, proba)
            elif self.regression:
                outputs[idx] = dumps(
                    {"predictions": [{"prediction": p, "model_version": version} for p in rows_out]}
                )
            else:
                outputs[idx] = dumps(
                    {
                        "predictions": [
                            {
                                "label": label,
                                "probabilities": dict(zip(classes, proba[k * c : k * c + c], strict=True)),
                                "model_version": version,
                            }
                            for k, label in enumerate(rows_out)
                        ]
                    }
                )
            content_type(context, idx)
            served[protocol] += n
            if self.log is not None:
                mine = {i - start: f for i, f in flags.items() if start <= i < stop} if flags else None
                records.append(self.records.record(ts, request_id, logged, n, rows_out, proba, mine))
            start = stop
        rows = served["rows"] + served["v2"]
        if self.log is not None and records and not self.log.write(b"".join(records), rows):
            self.metrics.add("log_failures", rows)
        if not self.regression:  # before the rows that may release them (Metrics.HELD)
            counts = torch.bincount(best, minlength=len(classes)).tolist()
            for name, count in zip(classes, counts, strict=True):
                self.metrics.add("predicted", count, name)
        self.metrics.add("rows", served["rows"], "rows")
        self.metrics.add("rows", served["v2"], "v2")

    def _v2_answer(self, n: int, v2_id, rid: str, predictions: list, proba) -> bytes:
        if self.regression:
            outputs = [{"name": "prediction", "shape": [n, 1], "datatype": "FP32", "data": predictions}]
        else:
            outputs = [
                {"name": "label", "shape": [n], "datatype": "BYTES", "data": predictions},
                {"name": "probabilities", "shape": [n, len(self.classes)], "datatype": "FP64", "data": proba},
            ]
        return dumps(
            {
                "model_name": self.model_name,
                "model_version": self.version,
                "id": v2_id if isinstance(v2_id, str) and v2_id.isascii() and len(v2_id) <= 128 else rid,
                "outputs": outputs,
            }
        )

    def _out_of_range(self, x64) -> dict[int, list[str]]:
        """Rows with values outside params.yaml's min/max: served, but flagged (log record + metric)."""
        if not self.has_ranges:
            return {}
        outside = (x64 < self.lo) | (x64 > self.hi)
        if not bool(outside.any()):
            return {}
        for j, count in enumerate(outside.sum(dim=0).tolist()):
            self.metrics.add("out_of_range", count, self.features[j])
        rows, cols = outside.nonzero(as_tuple=True)
        flags: dict[int, list[str]] = {}
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            flags.setdefault(r, []).append(self.features[c])
        return flags

    def _fail(self, outputs: list, context, idx: int, err: RequestError) -> None:
        status = err.status if 400 <= err.status < 500 else 400
        context.set_response_status(status, PHRASES.get(status, "Client Error"), idx)
        content_type(context, idx)
        try:
            outputs[idx] = dumps({"error": err.message, "status": status})
        except Exception:  # the message is built from ascii() pieces; this is the last line of defence
            outputs[idx] = dumps({"error": "the request could not be processed", "status": status})
        self.metrics.add("rejects", 1, err.reason)
        if self.refused is not None:  # the drift job counts refusals per column (monitoring/drift.py)
            self.refused.write(self.records.refusal(request_id_of(context, idx), err, status), 0)


def _bound(value, default: float) -> float:
    return default if value is None else float(value)
