"""The inference log's format, written by the handler and read by monitoring/inference_log.py: defined
here once, in the standard library only (it travels in the .mar, and the reader needs no torch).

A log directory holds one file per worker, `<model>-<host>-<pid>-<UTC start>-<seq>.jsonl`, gzipped to
`.jsonl.gz` once rotated (written as `.partial` first: a name without `.jsonl`, which readers skip).
Refusals go to the `refused/` folder beside them. Each line is one JSON object, one of:
- a request record (`LogRecords.record`): one answered request, columnar;
- a refusal record (`LogRecords.refusal`): `{"ts", "request_id", "model_version",
  "refused": {"status", "reason", "column"}}`, no values;
- a row record, `{"ts", "features": {name: value}, "prediction", "probabilities": {class: p}, ...}`:
  the shape of labelled feedback, which the reader takes in the same files.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from itertools import chain

from serve.handler.errors import RequestError
from serve.handler.jsonio import dumps, dumps_safe

LOG_SUFFIX = ".jsonl"
GZIP_SUFFIX = ".gz"
PARTIAL_SUFFIX = ".partial"
REFUSED_DIR = "refused"


def now_text() -> str:
    """The `ts` of a record: UTC, ISO 8601, milliseconds, with 'Z'."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=4096)  # the rows of one request share their ts
def parse_ts(value) -> dt.datetime:
    """A record's `ts`: ISO 8601 with 'Z' or an offset (Python 3.10's fromisoformat knows neither 'Z'
    nor all forms); no zone means UTC."""
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    ts = dt.datetime.fromisoformat(text)
    return ts.replace(tzinfo=dt.timezone.utc) if ts.tzinfo is None else ts.astimezone(dt.timezone.utc)


def log_kind(path: str) -> str | None:
    """'plain' (x.jsonl), 'gzipped' (x.jsonl.gz) or 'rotated' (any other x.jsonl*, as other tools rotate)
    for a log file name; None for a name without `.jsonl` (the `.partial` files)."""
    name = path.rsplit("/", 1)[-1]
    if LOG_SUFFIX not in name:
        return None
    if name.endswith(GZIP_SUFFIX):
        return "gzipped"
    return "plain" if name.endswith(LOG_SUFFIX) else "rotated"


def is_refusal(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("refused"), dict)


def is_request(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("features"), list)


def refusal_fields(obj: dict) -> tuple[str | None, str]:
    """(the refused column or None, the reason code) of a refusal record."""
    refused = obj["refused"]
    column = refused.get("column")
    return (column if isinstance(column, str) else None), str(refused.get("reason") or "invalid")


def request_values(obj: dict) -> tuple[list, int, list]:
    """(feature names, n rows, the n*F values flat and row-major) of a request record, or a ValueError
    naming what is wrong."""
    names, n, values = obj["features"], obj.get("rows"), obj.get("values")
    if not isinstance(names, list) or type(n) is not int or n < 1 or not isinstance(values, list):
        raise ValueError("a request record needs 'features' (names), 'rows' (n >= 1) and 'values'")
    width = len(names)
    flat = list(chain.from_iterable(values)) if values and type(values[0]) is list else values
    if len(flat) != n * width or (flat is not values and any(len(r) != width for r in values)):
        raise ValueError(f"'values' does not hold {n} rows of {width} features")
    return names, n, flat


def request_probabilities(obj: dict, n: int) -> tuple[list, list] | None:
    """(classes, the n*C probabilities flat and row-major) of a request record; None when it has none
    that fit (regression)."""
    classes, probs = obj.get("classes"), obj.get("probabilities")
    if not isinstance(classes, list) or not isinstance(probs, list) or len(probs) != n * len(classes):
        return None
    return classes, probs


class LogRecords:
    """The inference log's records: one JSON line per answered request, columnar.

    `{"ts", "request_id", "model_version", "features": [names], "rows": n, "values": [...],
    "prediction": [n], "classes": [C], "probabilities": [n*C], "out_of_range": {"<row>": [names]}}`.
    `values` holds the request's RAW inputs as the client sent them (category strings, nulls, booleans),
    row-major: a flat list of n*F values or n lists of F. `classes` and `probabilities` (flat, row-major)
    are absent for regression, whose `prediction` holds numbers.

    Why columnar: a JSON object per row repeated the 30 feature names and cost 1.6 ms per 64-row request,
    most of the handler's time (benchmarks/serve.py). Here the names are one constant prefix made at
    load time, and the values are the client's own parsed list serialised by orjson in C: no Python
    object per row or per value."""

    def __init__(self, features: list[str], classes: list[str] | None, version: str):
        self.prefix = b'{"model_version":' + dumps_safe(version) + b',"features":' + dumps_safe(features)
        if classes is not None:
            self.prefix += b',"classes":' + dumps_safe(classes)
        self.c = len(classes) if classes is not None else 0
        self.version = dumps_safe(version)

    def refusal(self, request_id: str, err: RequestError, status: int) -> bytes:
        """A refused request's line, for the drift job's rejection rate per column: the status, the
        reason code and the refused feature's name (the schema's, never client text); no values."""
        refused = {"status": status, "reason": err.reason, "column": err.column}
        return b"".join(
            [
                b'{"model_version":',
                self.version,
                b',"ts":',
                dumps(now_text()),
                b',"request_id":',
                dumps_safe(request_id),
                b',"refused":',
                dumps_safe(refused),
                b"}\n",
            ]
        )

    def record(self, ts: bytes, request_id: str, raw, n: int, prediction: list, proba, flags) -> bytes:
        """One request's line. `proba` is the flat list of its n*C probabilities (None for regression);
        `flags` maps row index (within the request) to its out-of-range features."""
        parts = [
            self.prefix,
            b',"ts":',
            ts,
            b',"request_id":',
            dumps_safe(request_id),
            b',"rows":%d,"values":' % n,
            dumps_safe(raw),
            b',"prediction":',
            dumps_safe(prediction),
        ]
        if proba is not None:
            parts += [b',"probabilities":', dumps_safe(proba)]
        if flags:
            parts += [b',"out_of_range":', dumps_safe({str(k): v for k, v in flags.items()})]
        parts.append(b"}\n")
        return b"".join(parts)
