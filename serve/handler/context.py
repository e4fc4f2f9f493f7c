"""What the handler reads from and writes to TorchServe's context: request ids, headers, per-request
status and content type, and the worker's logging. `OneOf` stands in for the context when a request of a
batch is re-run alone."""

from __future__ import annotations

import logging
import sys
import uuid


class OneOf:
    """The context seen by a request re-run alone: index 0 maps to the request's own index."""

    def __init__(self, context, idx: int):
        self._context, self._idx = context, idx

    @property
    def request_ids(self):
        ids = getattr(self._context, "request_ids", None) or {}
        return {0: ids.get(self._idx)}

    @property
    def request_processor(self):
        procs = getattr(self._context, "request_processor", None)
        return [procs[self._idx]] if procs is not None else None

    def set_response_status(self, code, phrase, idx):
        self._context.set_response_status(code, phrase, self._idx)

    def set_response_content_type(self, idx, value):
        self._context.set_response_content_type(self._idx, value)


def quiet_worker_log() -> None:
    """TorchServe's worker logs "Backend received inference at: <time>" at INFO on stdout for every
    batch (ts/protocol/otf_message_handler.py); the frontend reads and files each line. That took about
    a tenth of the worker's time at single-row load (py-spy). The worker's root logger goes to WARNING
    once the model is loaded; the metrics logger (`ts.metrics`) stays at INFO, as metrics need it.
    Only inside a worker process: in-process callers (tests, benchmarks) keep their logging."""
    if not getattr(sys.modules.get("__main__"), "__file__", "").endswith("model_service_worker.py"):
        return
    logging.getLogger("ts.metrics").setLevel(logging.INFO)
    logging.getLogger().setLevel(logging.WARNING)


def header(context, idx: int, name: str) -> str | None:
    """Content type of the body parameter, else the request header (TorchServe stores both)."""
    try:
        headers = context.request_processor[idx].get_request_properties()
    except (AttributeError, IndexError, TypeError):
        return None
    for key in ("body", "data"):
        value = headers.get(key)
        if isinstance(value, dict) and isinstance(value.get(name), str) and value.get(name):
            return value[name]
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name and isinstance(value, str):
            return value
    return None


def content_type(context, idx: int) -> None:
    context.set_response_content_type(idx, "application/json")


def request_id_of(context, idx: int) -> str:
    ids = getattr(context, "request_ids", None) or {}
    return str(ids.get(idx) or uuid.uuid4())
