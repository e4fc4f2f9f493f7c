"""The TorchServe handler, by concern: rows in (row format or the Open Inference Protocol), predictions
out, every served row in the inference log.

| module | concern |
| --- | --- |
| `entry` | the file TorchServe loads: `handle(data, context)` |
| `service` | TabularHandler: load the model, score a batch, answer, log |
| `protocols` | the rows and v2 request bodies to one float64 block |
| `schema` | each feature's raw values to the float the model takes |
| `jsonio` | JSON with hard bounds (duplicate keys, depth, members); the serialiser |
| `records` | the inference log's format, shared with monitoring/inference_log.py |
| `logfile` | the log's files: append, rotate, gzip, prune |
| `metrics` | TorchServe custom metrics, batched and held back where they describe rows |
| `context` | what is read from and written to TorchServe's context |
| `errors` | RequestError: a client mistake becomes that request's 4xx |

It runs in the slim serving image, so it imports torch, the standard library, mlops/config/values.py (the
value
parser training uses) and, when installed, orjson (tests/serve/test_handler_imports.py keeps it so).
mlops/release/archive.py packs this folder and mlops/config/values.py into the .mar. The names below load on
first use:
monitoring imports `records` without loading torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TabularHandler": "service",
    "Batch": "service",
    "SPEC_ENV": "service",
    "handle": "entry",
    "Protocols": "protocols",
    "JSON_TYPES": "protocols",
    "Column": "schema",
    "Schema": "schema",
    "MAX_DEPTH": "jsonio",
    "MIN_NODES": "jsonio",
    "LogRecords": "records",
    "InferenceLog": "logfile",
    "LOG_ENV": "logfile",
    "DEFAULT_LOG": "logfile",
    "Metrics": "metrics",
    "RequestError": "errors",
    "echo": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
