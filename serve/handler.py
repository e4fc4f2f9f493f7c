"""TorchServe handler: a JSON batch of rows in, class probabilities out, every row logged for monitoring.

Packaged into the .mar and run in the slim serving image, so it imports only torch, the standard
library and TorchServe's `ts` (orjson is used when installed, for speed). The model is the TorchScript
file the pipeline exported: raw float32 features in, logits out, scaling baked in, so serving applies
exactly the preprocessing that training did.

Request:  {"instances": [{"<feature>": <number>, ...}, ...]}  (or rows as arrays in params.yaml order)
Response: {"predictions": [{"label": ..., "probabilities": {...}, "model_version": ...}, ...]}

Every bad request gets its own 4xx with a message naming the problem; requests batched with it by
TorchServe are unaffected and the worker stays READY.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import operator
import os
import signal
import socket
import sys
import threading
import uuid
from array import array
from itertools import chain

import torch

try:  # optional: several times faster than json for these payloads
    import orjson

    def _dumps(obj) -> bytes:
        return orjson.dumps(obj)

    def _loads(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            # The standard parser accepts NaN/Infinity (so validation can name the field) and
            # words other errors the same way with or without orjson.
            return json.loads(raw)
except ImportError:  # pragma: no cover - images without orjson
    orjson = None

    def _dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _loads(raw):
        return json.loads(raw)


JSON_TYPES = ("application/json", "application/x-ndjson", "text/json")
LOG_ENV = "MLOPS_INFERENCE_LOG_DIR"
FLOAT32_MAX = 3.4028234663852886e38
NUMBER_TYPES = {int, float}  # not bool: JSON true/false are not feature values


class RequestError(Exception):
    """A client mistake: becomes an HTTP 4xx for that request only."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class InferenceLog:
    """Append-only JSON-lines log, one file per worker process, written off the request path.

    Records are buffered in memory and flushed by a background thread every `flush_seconds`, when
    `flush_rows` are waiting, and when the worker stops; a full disk loses log lines, never requests.
    """

    def __init__(self, directory: str, model_name: str, flush_seconds: float = 1.0, flush_rows: int = 2048):
        os.makedirs(directory, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        name = f"{model_name}-{socket.gethostname()}-{os.getpid()}-{stamp}.jsonl"
        self.path = os.path.join(directory, name)
        self.flush_rows = flush_rows
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._seconds = flush_seconds
        threading.Thread(target=self._loop, name="inference-log", daemon=True).start()

    def append(self, lines: list[bytes]) -> None:
        with self._lock:
            self._lines.extend(lines)
            full = len(self._lines) >= self.flush_rows
        if full:
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            with open(self.path, "ab") as out:
                out.write(b"".join(lines))
        except OSError as err:
            print(
                f"inference log: could not write {len(lines)} records to {self.path}: {err}", file=sys.stderr
            )

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._seconds)
            self._wake.clear()
            self.flush()


class TabularHandler:
    """Loaded once per worker; `handle` is called with each batch TorchServe assembles."""

    def __init__(self):
        self.model = None
        self.log: InferenceLog | None = None

    def initialize(self, context) -> None:
        props = context.system_properties
        model_dir = props.get("model_dir")
        manifest = context.manifest["model"]
        with open(os.path.join(model_dir, "serve.json")) as f:
            spec = json.load(f)
        torch.set_num_threads(
            int(os.environ.get("MLOPS_TORCH_THREADS", "1"))
        )  # tiny MLP: 1 thread is fastest
        self.model = torch.jit.load(
            os.path.join(model_dir, manifest["serializedFile"]), map_location="cpu"
        ).eval()
        self.features: list[str] = list(spec["features"])
        self.index = {name: i for i, name in enumerate(self.features)}
        self.keys = set(self.features)
        getter = operator.itemgetter(*self.features)
        self.take = getter if len(self.features) > 1 else (lambda row: (getter(row),))
        self.classes: list[str] = [str(c) for c in spec["classes"]]
        self.version = str(spec["model_version"])
        self.max_rows = int(spec.get("max_batch_rows", 1024))
        log_dir = os.environ.get(LOG_ENV) or spec.get("inference_log_dir") or "logs/inference"
        if log_dir.lower() not in ("", "off", "none"):
            self.log = InferenceLog(log_dir, context.model_name)
            _flush_on_stop(self.log)
        # Warm-up: the first TorchScript calls profile and optimise the graph; do it before traffic.
        with torch.inference_mode():
            for n in (1, 8, 64):
                self.model(torch.zeros(n, len(self.features)))

    # -- request parsing -------------------------------------------------------------------------
    def _body(self, request: dict, idx: int, context):
        content_type = (_header(context, idx, "content-type") or "").split(";")[0].strip().lower()
        body = request.get("body")
        if body is None:
            body = request.get("data")
        if content_type and content_type not in JSON_TYPES:
            raise RequestError(415, f"unsupported Content-Type {content_type!r}: send application/json")
        if body is None or (isinstance(body, (bytes, bytearray, str)) and not body.strip()):
            raise RequestError(400, 'empty body: send {"instances": [{"<feature>": <number>, ...}]}')
        if isinstance(body, (bytes, bytearray, str)):
            try:
                body = _loads(body)
            except ValueError as err:
                raise RequestError(400, f"malformed JSON: {err}") from None
        return body

    def _rows(self, body) -> list[list[float]]:
        if isinstance(body, dict):
            if "instances" not in body:
                raise RequestError(
                    400, f'missing key "instances" (got keys: {", ".join(map(str, body)) or "none"})'
                )
            instances = body["instances"]
        else:
            raise RequestError(400, 'body must be a JSON object: {"instances": [...]}')
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, '"instances" must be a non-empty list of rows')
        if len(instances) > self.max_rows:
            raise RequestError(
                413, f"batch of {len(instances)} rows exceeds the limit of {self.max_rows} rows"
            )
        return instances

    def _values(self, instances: list) -> array:
        """The rows' values as one flat float64 array, in params.yaml feature order. The common case
        stays in C (itemgetter, map(type), array); a problem is re-checked row by row in Python only
        to name the row and the feature. Non-finite values are caught on the tensor (`handle`)."""
        keys, n, take = self.keys, len(self.features), self.take
        rows = []
        for i, row in enumerate(instances):
            if type(row) is dict and row.keys() == keys:
                rows.append(take(row))
            elif type(row) is list and len(row) == n:
                rows.append(row)
            else:
                self._row(i, row)  # raises the precise error
        if not set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES:
            for i, row in enumerate(instances):
                self._row(i, row)
        return array("d", chain.from_iterable(rows))

    def _row(self, i: int, row) -> None:
        """Raise a RequestError naming the first problem of row i (the slow path, errors only)."""
        n = len(self.features)
        if isinstance(row, dict):
            if len(row) != n or any(k not in self.index for k in row):
                unknown = sorted(k for k in row if k not in self.index)
                missing = [k for k in self.features if k not in row]
                parts = [f"expected {n} features, got {len(row)}"]
                if unknown:
                    parts.append(
                        "unknown: " + ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
                    )
                if missing:
                    parts.append("missing: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
                raise RequestError(400, f"row {i}: " + "; ".join(parts))
            values = [row[name] for name in self.features]
        elif isinstance(row, list):
            if len(row) != n:
                raise RequestError(400, f"row {i}: expected {n} feature values, got {len(row)}")
            values = row
        else:
            raise RequestError(
                400, f"row {i}: must be an object of feature values or an array, got {_kind(row)}"
            )
        for j, v in enumerate(values):
            # bool is an int in Python but never a feature value; NaN/Infinity parse as floats.
            if type(v) is float:
                if not math.isfinite(v):
                    raise RequestError(400, f"row {i}: {self.features[j]} must be finite, got {v}")
                if abs(v) > FLOAT32_MAX:
                    raise RequestError(400, f"row {i}: {self.features[j]} = {v} is outside the float32 range")
            elif type(v) is not int:
                raise RequestError(
                    400, f"row {i}: {self.features[j]} must be a number, got {_kind(v)} {v!r:.40}"
                )

    # -- inference -------------------------------------------------------------------------------
    def handle(self, data: list, context) -> list:
        """One TorchServe batch: parse each request, run all valid rows in one forward pass."""
        outputs: list = [None] * len(data)
        parsed: list[tuple[int, list]] = []
        flat = array("d")
        for idx, request in enumerate(data):
            try:
                instances = self._rows(self._body(request, idx, context))
                flat.extend(self._values(instances))
                parsed.append((idx, instances))
            except RequestError as err:
                self._fail(outputs, context, idx, err)
        if not parsed:
            return outputs
        x = torch.frombuffer(flat, dtype=torch.float64).view(-1, len(self.features)).float()
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):  # NaN, Infinity or beyond float32: fail those requests only
            x, parsed = self._drop_non_finite(x, finite, parsed, outputs, context)
            if not parsed:
                return outputs
        with torch.inference_mode():
            proba = torch.softmax(self.model(x).double(), dim=1)
            proba = proba / proba.sum(dim=1, keepdim=True)
            best = proba.argmax(dim=1).tolist()
            proba = proba.tolist()
        start = 0
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for idx, instances in parsed:
            stop = start + len(instances)
            preds = [self._prediction(p, b) for p, b in zip(proba[start:stop], best[start:stop], strict=True)]
            outputs[idx] = _dumps({"predictions": preds})
            _content_type(context, idx)
            if self.log is not None:
                self.log.append(self._records(now, _request_id(context, idx), instances, preds))
            start += len(instances)
        return outputs

    def _fail(self, outputs: list, context, idx: int, err: RequestError) -> None:
        context.set_response_status(err.status, err.message, idx)
        _content_type(context, idx)
        outputs[idx] = _dumps({"error": err.message, "status": err.status})

    def _drop_non_finite(self, x, finite, parsed, outputs, context):
        keep, kept, start = [], [], 0
        for idx, instances in parsed:
            stop = start + len(instances)
            if bool(finite[start:stop].all()):
                keep.append(torch.arange(start, stop))
                kept.append((idx, instances))
            else:
                bad = start + int((~finite[start:stop]).nonzero()[0, 0])
                try:
                    self._row(bad - start, instances[bad - start])
                    raise RequestError(400, f"row {bad - start}: a value is outside the float32 range")
                except RequestError as err:
                    self._fail(outputs, context, idx, err)
            start = stop
        return (x[torch.cat(keep)] if keep else x[:0]), kept

    def _prediction(self, p: list[float], best: int) -> dict:
        return {
            "label": self.classes[best],
            "probabilities": dict(zip(self.classes, p, strict=False)),
            "model_version": self.version,
        }

    def _records(self, ts: str, request_id: str, rows: list, preds: list[dict]) -> list[bytes]:
        return [
            _dumps(
                {
                    "ts": ts,
                    "request_id": request_id,
                    "model_version": self.version,
                    "features": row if type(row) is dict else dict(zip(self.features, row, strict=False)),
                    "prediction": pred["label"],
                    "probabilities": pred["probabilities"],
                }
            )
            + b"\n"
            for row, pred in zip(rows, preds, strict=False)
        ]


def _header(context, idx: int, name: str) -> str | None:
    """Content type of the body parameter, else the request header (TorchServe stores both)."""
    try:
        headers = context.request_processor[idx].get_request_properties()
    except (AttributeError, IndexError, TypeError):
        return None
    for key in ("body", "data"):
        value = headers.get(key)
        if isinstance(value, dict) and value.get(name):
            return value[name]
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name and isinstance(value, str):
            return value
    return None


def _content_type(context, idx: int) -> None:
    context.set_response_content_type(idx, "application/json")


def _request_id(context, idx: int) -> str:
    ids = getattr(context, "request_ids", None) or {}
    return str(ids.get(idx) or uuid.uuid4())


def _kind(value) -> str:
    return {str: "string", bool: "boolean", dict: "object", list: "array", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _flush_on_stop(log: InferenceLog) -> None:
    """Flush buffered records when the worker exits normally or is told to stop (SIGTERM)."""
    import atexit

    atexit.register(log.flush)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        log.flush()
        if callable(previous):
            previous(signum, frame)
        sys.exit(0)

    with contextlib.suppress(ValueError):  # not the main thread: atexit still covers a normal exit
        signal.signal(signal.SIGTERM, on_term)


_service = TabularHandler()


def handle(data, context):
    """TorchServe entry point (module-level function: no BaseHandler overhead per batch)."""
    if _service.model is None:
        _service.initialize(context)
    if data is None:  # TorchServe's load-time call: initialise only
        return None
    return _service.handle(data, context)
