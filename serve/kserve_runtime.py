"""The second runtime: the KServe Python model server (PyPI `kserve`) serving the same .mar as TorchServe.

Same model file, same `serve.json`, same handler code (serve/handler's TabularHandler, called with a
stand-in for TorchServe's per-batch context), so the same parsing bounds, 4xx messages, encodings,
answers and inference log records. KServe brings the server: uvicorn, the Open Inference Protocol's
health and metadata endpoints (`/v2/health/ready`, `/v2/models/<m>`, `/v2/models/<m>/ready`) and
Prometheus `/metrics`. Why KServe and not MLServer, and the measured latency: docs/serving.md.

Why the inference paths are ours and not KServe's own routes: KServe's v2 route parses the body into its
pydantic model before any model code runs (its v1 route into a dict with orjson). A duplicated key is
then already dropped without a trace, and the depth and member bounds come too late. So uvicorn runs a
thin ASGI front (`Front`) that answers the inference paths itself, handing the raw bytes to the handler
exactly as TorchServe does, and passes every other path to KServe's app.

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
import re
import secrets
import shutil
import signal
import socket
import sys
import uuid
import zipfile
from pathlib import Path

from serve import handler as serve_handler
from serve import kserve_metrics, settings


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

    metrics = None  # no TorchServe metrics API here: serve/kserve_metrics.py replaces the handler's

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


INFERENCE = re.compile(
    r"/predictions/(?P<a>[^/]+)"  # TorchServe's URL: the same client works on both runtimes
    r"|/v1/models/(?P<b>[^/]+):predict"  # KServe v1 (its body is the row format)
    r"|/v2/models/(?P<c>[^/]+)(?:/versions/[^/]+)?/infer"  # the Open Inference Protocol
)


class Front:
    """The ASGI app uvicorn runs: the token check on every path (401 without a token, 403 with a wrong
    one, before the body is read; keys in TorchServe's key_file.json format, so serve.client works), the
    inference paths answered here (raw body to the batcher, no framework in between), every other path
    passed to KServe's FastAPI app (health, metadata, metrics). A pure ASGI layer: at one request at a
    time, FastAPI's routing and KServe's timing middleware cost more than the handler."""

    def __init__(self, app, batcher: Batcher, model_name: str, max_bytes: int, key: str | None):
        self.app, self.batcher, self.model_name, self.max_bytes = app, batcher, model_name, max_bytes
        self.expected = None if key is None else f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.expected is not None:
            auth = headers.get(b"authorization")
            if auth is None or not secrets.compare_digest(auth, self.expected):
                status = 401 if auth is None else 403
                extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
                message = "missing bearer token" if auth is None else "wrong token"
                return await _send(send, status, _error(status, message), extra)
        path = scope["path"]
        if path == "/ping":
            return await _send(send, 200, b'{"status": "Healthy"}')
        match = INFERENCE.fullmatch(path)
        if match is None:
            return await self.app(scope, receive, send)
        if scope["method"] != "POST":
            return await _send(send, 405, _error(405, "use POST"), [(b"allow", b"POST")])
        name = match.group("a") or match.group("b") or match.group("c")
        if name != self.model_name:
            return await _send(send, 404, _error(404, f"model {serve_handler.echo(name)} not found"))
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _send(send, 413, _error(413, f"body over {self.max_bytes} bytes"))
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _send(send, 413, _error(413, f"body over {self.max_bytes} bytes"))
        content_type = headers.get(b"content-type")
        text = None if content_type is None else content_type.decode("latin-1")
        status, out = await self.batcher.submit(bytes(body), text)
        return await _send(send, status, out)


async def _send(send, status: int, body: bytes, extra: list | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *(extra or [])]
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
    sock: socket.socket,
    model_dir: Path,
    key: str | None,
    batch_size: int,
    metrics: bool = True,
    share_dir: Path | None = None,
) -> None:
    """One server process on an already bound socket (the parent binds it; workers share it)."""
    from kserve import ModelServer
    from kserve import model_server as kserve_app
    from kserve.protocol.rest.server import RESTServer

    spec = json.loads((model_dir / "serve.json").read_text())
    name = str(spec["model_name"])
    model, handler = build_model(model_dir, name)
    kserve_metrics.install(handler, name, share_dir)  # the handler's counters on /metrics
    features = list(spec["features"])
    max_bytes = int(
        os.environ.get("TS_MAX_REQUEST_SIZE")
        or settings.max_request_bytes(features, int(spec.get("max_batch_rows", 1024)))
    )
    front = Front(kserve_app.app, Batcher(handler, name, batch_size), name, max_bytes, key)
    if metrics:
        start_metrics()
    server = ModelServer(http_port=sock.getsockname()[1], enable_grpc=False, workers=1)
    server.register_model(model)
    for name_ in ("uvicorn.access", "kserve.trace"):  # a line per request: off, as under TorchServe
        logging.getLogger(name_).setLevel(logging.WARNING)
    rest = RESTServer(  # KServe's routes and middleware go on its app; uvicorn runs the front
        front,
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
    share = args.run_dir / "metrics"  # each process's handler counts, summed by whoever is scraped
    shutil.rmtree(share, ignore_errors=True)
    share.mkdir()
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a worker
            try:
                serve(sock, model_dir, key, args.batch_size, metrics=not children, share_dir=share)
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
