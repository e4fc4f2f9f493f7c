"""The second runtime: the KServe Python model server (PyPI `kserve`) serving the same .mar as TorchServe.

Same model file, same `serve.json`, same handler code (serve/handler.py's TabularHandler, called with a
stand-in for TorchServe's per-batch context), so the same parsing bounds, 4xx messages, encodings,
answers and inference log records. KServe brings the server: uvicorn, the Open Inference Protocol's
health and metadata endpoints (`/v2/health/ready`, `/v2/models/<m>`, `/v2/models/<m>/ready`) and
Prometheus `/metrics`. Why KServe and not MLServer, and the measured latency: docs/serving.md.

Why the inference routes are ours and not KServe's own: KServe's v2 route parses the body into its
pydantic model before any model code runs (its v1 route into a dict with orjson). A duplicated key is
then already dropped without a trace, and the depth and member bounds come too late. So the inference
paths are registered on KServe's FastAPI app before KServe registers its own (the first match wins):
the handler gets the raw bytes, exactly as under TorchServe.

Batching is adaptive: no timer. A request that finds the model idle is scored at once (one client never
waits for a batch to fill); requests that arrive together (read in the same event-loop pass, while the
previous batch was being scored) are scored as one batch, up to `batch_size` requests.

Run: `mlops serve start` with `serve.runtime: kserve` in params.yaml, or
`python -m serve.kserve_runtime --mar model_store/<m>.mar` (address: TS_INFERENCE_ADDRESS, else
serve/config.properties; the image sets MODEL_MAR and the address).
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import uuid
import zipfile
from pathlib import Path

from serve import handler as serve_handler
from serve import settings

INFERENCE_PATHS = (
    "/predictions/{model_name}",  # TorchServe's URL: the same client works on both runtimes
    "/v1/models/{model_name}:predict",  # KServe v1 (its body is the row format)
    "/v2/models/{model_name}/infer",  # the Open Inference Protocol
    "/v2/models/{model_name}/versions/{model_version}/infer",
)
OPEN_PATHS = frozenset()  # every path needs the token when auth is on (as TorchServe's /ping does)
JSON = "application/json"


def _error(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "status": status}).encode()


class _Request:
    """TorchServe's request_processor entry: the request's headers (the handler reads content-type)."""

    __slots__ = ("headers",)

    def __init__(self, headers: dict):
        self.headers = headers

    def get_request_properties(self) -> dict:
        return self.headers


class BatchContext:
    """What TorchServe hands the handler for one batch: ids, headers, and a place for the statuses."""

    def __init__(self, model_name: str, content_types: list[str | None]):
        self.model_name = model_name
        self.request_processor = [_Request({"content-type": t} if t else {}) for t in content_types]
        self.request_ids = {i: str(uuid.uuid4()) for i in range(len(content_types))}
        self.status: dict[int, int] = {}

    def set_response_status(self, code: int, phrase: str, idx: int) -> None:
        self.status[idx] = code

    def set_response_content_type(self, idx: int, value: str) -> None:
        pass


class LoadContext:
    """What TorchServe hands the handler at load time: the unpacked .mar and its manifest."""

    metrics = None  # the handler's TorchServe metrics are off here; KServe's /metrics is the server's

    def __init__(self, model_dir: Path, model_name: str):
        manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
        self.system_properties = {"model_dir": str(model_dir)}
        self.manifest = manifest
        self.model_name = model_name


def unpack(mar: Path, into: Path) -> Path:
    """The .mar is a zip: model.pt, serve.json, the handler, MAR-INF/MANIFEST.json. Unpacked afresh."""
    shutil.rmtree(into, ignore_errors=True)
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(into)
    return into


class Batcher:
    """Adaptive batching on the event loop: the first request of an idle loop is scored in the next
    pass (no timer), with every request that was queued by then, up to `max_requests`."""

    def __init__(self, handler: serve_handler.TabularHandler, model_name: str, max_requests: int):
        self.handler, self.model_name = handler, model_name
        self.max_requests = max(1, int(max_requests))
        self.queue: list[tuple[bytes, str | None, asyncio.Future]] = []
        self.scheduled = False
        self.sizes: dict[int, int] = {}  # batch size -> count (for the benchmark's curiosity)

    def submit(self, body: bytes, content_type: str | None) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.append((body, content_type, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._drain)
        return future

    def _drain(self) -> None:
        batch, self.queue = self.queue[: self.max_requests], self.queue[self.max_requests :]
        self.scheduled = bool(self.queue)
        if self.scheduled:
            asyncio.get_running_loop().call_soon(self._drain)
        self.sizes[len(batch)] = self.sizes.get(len(batch), 0) + 1
        context = BatchContext(self.model_name, [ct for _, ct, _ in batch])
        data = [{"body": body} for body, _, _ in batch]
        try:
            outputs = self.handler.handle(data, context)
        except Exception as err:  # the handler answers per request; this is the last line of defence
            outputs = [_error(400, f"the request could not be processed ({type(err).__name__})")] * len(batch)
            context.status = dict.fromkeys(range(len(batch)), 400)
        for i, (_, _, future) in enumerate(batch):
            if not future.done():
                future.set_result((context.status.get(i, 200), outputs[i]))


def add_routes(app, batcher: Batcher, model_name: str, max_bytes: int) -> None:
    """The inference routes (raw bytes to the handler) and `/ping`, ahead of KServe's own routes.
    (No `from __future__ import annotations` in this module: FastAPI reads these annotations.)"""
    from fastapi import Request, Response

    async def infer(request: Request, model_name_in_path: str) -> Response:
        if model_name_in_path != model_name:
            return Response(_error(404, f"model {serve_handler.echo(model_name_in_path)} not found"), 404)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return Response(_error(413, f"body over {max_bytes} bytes"), 413, media_type=JSON)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                return Response(_error(413, f"body over {max_bytes} bytes"), 413, media_type=JSON)
        status, out = await batcher.submit(bytes(body), request.headers.get("content-type"))
        return Response(out, status, media_type=JSON)

    async def by_name(request: Request, model_name: str) -> Response:
        return await infer(request, model_name)

    async def by_version(request: Request, model_name: str, model_version: str) -> Response:
        return await infer(request, model_name)

    async def ping() -> Response:
        return Response(b'{"status": "Healthy"}', media_type=JSON)

    for path in INFERENCE_PATHS:
        endpoint = by_version if "{model_version}" in path else by_name
        app.add_api_route(path, endpoint, methods=["POST"], include_in_schema=False)
    app.add_api_route("/ping", ping, methods=["GET"], include_in_schema=False)


class TokenGate:
    """Bearer-token check on every path (ASGI middleware), before the body is read: 401 without a
    token, 403 with a wrong one. Keys in TorchServe's key_file.json format, so serve.client works."""

    def __init__(self, app, key: str):
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if auth is not None and secrets.compare_digest(auth, self.expected):
            return await self.app(scope, receive, send)
        status = 401 if auth is None else 403
        body = _error(status, "missing bearer token" if auth is None else "wrong token")
        headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def write_key_file(path: Path) -> str:
    key = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"inference": {"key": key}, "management": {"key": key}}, f)
    os.replace(tmp, path)
    return key


def build_model(model_dir: Path, model_name: str):
    """The handler loaded from the unpacked .mar, wrapped as a KServe model (readiness, metadata)."""
    import kserve

    handler = serve_handler.TabularHandler()
    handler.initialize(LoadContext(model_dir, model_name))

    class TabularModel(kserve.Model):
        def load(self) -> bool:
            self.ready = True
            return True

        async def get_input_types(self) -> list[dict]:
            return [{"name": "input-0", "datatype": "FP32", "shape": [-1, handler.n]}]

        async def get_output_types(self) -> list[dict]:
            if handler.regression:
                return [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}]
            return [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(handler.classes)]},
            ]

        async def predict(self, payload, headers=None, response_headers=None):  # pragma: no cover
            from kserve.errors import InvalidInput

            raise InvalidInput("send the raw JSON body to /v2/models/<name>/infer")

    model = TabularModel(model_name)
    model.load()
    return model, handler


def start_metrics() -> None:
    """KServe's Prometheus registry on TorchServe's metrics address (127.0.0.1:8082 by default), where
    the deploy gate's metrics port proxies to: the same layout for both runtimes. A busy port only warns."""
    from prometheus_client import start_http_server

    ep = settings.endpoint("metrics")
    try:
        start_http_server(ep.port, ep.host)
    except OSError as err:
        print(f"WARNING metrics: not served on {ep.url}: {err}", file=sys.stderr, flush=True)


def serve(
    sock: socket.socket, model_dir: Path, key: str | None, batch_size: int, metrics: bool = True
) -> None:
    """One server process on an already bound socket (the parent binds it; workers share it)."""
    from kserve import ModelServer
    from kserve import model_server as kserve_app
    from kserve.protocol.rest.server import RESTServer

    spec = json.loads((model_dir / "serve.json").read_text())
    name = str(spec["model_name"])
    model, handler = build_model(model_dir, name)
    features = list(spec["features"])
    max_bytes = int(
        os.environ.get("TS_MAX_REQUEST_SIZE")
        or settings.max_request_bytes(features, int(spec.get("max_batch_rows", 1024)))
    )
    batcher = Batcher(handler, name, batch_size)
    app = kserve_app.app
    add_routes(app, batcher, name, max_bytes)
    if key is not None:
        app.add_middleware(TokenGate, key=key)
    if metrics:
        start_metrics()
    server = ModelServer(http_port=sock.getsockname()[1], enable_grpc=False, workers=1)
    server.register_model(model)
    for name_ in ("uvicorn.access", "kserve.trace"):  # a line per request: off, as under TorchServe
        logging.getLogger(name_).setLevel(logging.WARNING)
    rest = RESTServer(
        "kserve.model_server:app",
        server.dataplane,
        server.model_repository_extension,
        sock.getsockname()[1],
        workers=1,
    )
    rest.run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    inference = settings.endpoint("inference")  # TS_INFERENCE_ADDRESS, else serve/config.properties
    mar = os.environ.get("MODEL_MAR")
    parser.add_argument("--mar", type=Path, default=Path(mar) if mar else None, required=not mar)
    parser.add_argument("--host", default=inference.host)
    parser.add_argument("--port", type=int, default=inference.port)
    parser.add_argument("--run-dir", type=Path, default=Path("."), help="key file, unpacked model")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the socket")
    parser.add_argument("--batch-size", type=int, default=8, help="most requests scored together")
    args = parser.parse_args(argv)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    key = write_key_file(settings.key_file(args.run_dir)) if settings.token_auth() else None
    model_dir = unpack(args.mar, args.run_dir / "model")
    sock = bind(args.host, args.port)
    sys.argv = sys.argv[:1]  # kserve parses sys.argv at import: ours are not its
    if args.workers <= 1:
        serve(sock, model_dir, key, args.batch_size)
        return 0
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a worker
            try:
                serve(sock, model_dir, key, args.batch_size, metrics=not children)
            finally:
                os._exit(0)
        children.append(pid)

    def forward(signum, _frame):
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return status


if __name__ == "__main__":
    sys.exit(main())
