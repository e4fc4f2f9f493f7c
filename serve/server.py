"""`mlops serve start|stop|status`: run TorchServe locally from serve/config.properties, token auth on.

The server runs in logs/torchserve/: its key_file.json, pid file (TMPDIR) and logs stay there instead of
the repository root and /tmp, so two checkouts never stop each other's server. The frontend names the
worker's socket `<java.io.tmpdir>/.ts.sock.<port>` (java.io.tmpdir from TEMP, port from
`initial_worker_port`, +1 per worker started): both are set per server, so two servers on one machine
never share, or delete, each other's worker socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.config.errors import UserError
from serve import settings
from serve.client import Client, ServeError, model_workers

if TYPE_CHECKING:
    from mlops.config.params import Params

KINDS = ("inference", "management", "metrics")
MODEL_STORE = Path("model_store")
RUNTIMES = ("torchserve", "kserve")  # serve.runtime: who serves the .mar (docs/serving.md)


def serve_settings(params: Params) -> dict:
    """serve.json's basics (the handler's config format) from the typed `serve:` section."""
    cfg = params.serve
    if cfg.runtime not in RUNTIMES:
        raise UserError(
            f"params.yaml: serve.runtime must be one of {', '.join(RUNTIMES)}; got {cfg.runtime!r}"
        )
    delay = int(cfg.max_batch_delay)
    if delay < 1:  # TorchServe 0.12 (ModelManager.createModel) reads a .mar's 0 as "unset": 100 ms
        raise UserError(
            "params.yaml: serve.max_batch_delay must be >= 1 ms: TorchServe 0.12 turns 0 into its default "
            f"of 100 ms; got {delay}. For no wait at all use batch_size: 1, or serve.runtime: kserve "
            "(never waits; docs/serving.md, batching policy)"
        )
    return {
        "runtime": str(cfg.runtime),
        "model_name": str(cfg.model_name),
        "workers": int(cfg.workers),
        "kserve_workers": int(cfg.kserve_workers),
        "batch_size": int(cfg.batch_size),
        "max_batch_delay": delay,
        "response_timeout": int(cfg.response_timeout),
        "max_batch_rows": int(cfg.max_batch_rows),
        "inference_log_dir": str(cfg.inference_log_dir),
    }


def _torchserve() -> str:
    local = Path(sys.executable).with_name("torchserve")
    return str(local) if local.exists() else (shutil.which("torchserve") or "torchserve")


SOCKET_NAME_MAX = 107  # sun_path's 108 bytes, less the terminating NUL (Linux)
WORKER_PORT_BLOCK = 100  # worker ports per server: one per worker (re)start, reused modulo nothing
WORKER_PORT_FIRST = 9000  # TorchServe's default initial_worker_port; blocks are searched upwards


def socket_dir(run_dir: Path) -> Path:
    """Where the frontend puts the workers' Unix sockets (its java.io.tmpdir, from TEMP): the run dir,
    or a private directory under the system temp dir (recorded in the run dir) when the run dir's path
    is too long for a socket name."""
    run_dir = run_dir.resolve()
    if len(f"{run_dir}/.ts.sock.65535") <= SOCKET_NAME_MAX:
        return run_dir
    record = run_dir / "socket_dir"
    if record.exists() and Path(record.read_text().strip()).is_dir():
        return Path(record.read_text().strip())
    made = Path(tempfile.mkdtemp(prefix="ts-", dir="/tmp" if os.path.isdir("/tmp") else None))
    record.write_text(f"{made}\n")
    return made


def worker_ports(first: int = WORKER_PORT_FIRST, block: int = WORKER_PORT_BLOCK, tries: int = 200) -> int:
    """The first port of a block nothing listens on (127.0.0.1): the workers' TCP ports when the frontend
    has no native transport, and the number in their socket names otherwise."""
    for base in range(first, min(first + tries * block, 65536 - block), block):
        if not any(port_in_use("127.0.0.1", port, timeout=0.05) for port in range(base, base + block)):
            return base
    raise UserError(f"no free block of {block} worker ports from {first}: set TS_INITIAL_WORKER_PORT")


def _env(run_dir: Path, log_dir: str, params=None) -> dict[str, str]:
    env = dict(os.environ)
    run_dir = run_dir.resolve()
    env.update(
        {
            "TMPDIR": str(run_dir),  # TorchServe keeps its pid file in the temp dir
            "TEMP": str(socket_dir(run_dir)),  # the frontend's java.io.tmpdir: the workers' sockets
            "LOG_LOCATION": str(run_dir),
            "METRICS_LOCATION": str(run_dir),
            "MLOPS_INFERENCE_LOG_DIR": os.environ.get("MLOPS_INFERENCE_LOG_DIR")
            or str(Path(log_dir).resolve()),
            "TS_METRICS_CONFIG": os.environ.get("TS_METRICS_CONFIG")
            or str(settings.METRICS_CONFIG.resolve()),
        }
    )
    if params is not None:
        cfg = serve_settings(params)
        env.setdefault(
            "TS_MAX_REQUEST_SIZE",
            str(settings.max_request_bytes(params.data.feature_names, cfg["max_batch_rows"])),
        )
        env.setdefault("MLOPS_SERVE_SPEC", json.dumps(settings.handler_spec(params)))
    return env


def port_in_use(host: str, port: int, timeout: float = 0.5) -> bool:
    with socket.socket() as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def _client(model_name: str, run_dir: Path) -> Client:
    return Client(settings.endpoint("inference").url, model_name, settings.key_file(run_dir), timeout=5)


def _workers(model_name: str, run_dir: Path) -> list[dict]:
    return model_workers(settings.endpoint("management").url, model_name, settings.key_file(run_dir))


def _alive(run_dir: Path) -> bool:
    """Is the JVM the launcher recorded still running? (It exits at once when a port is taken.)"""
    try:
        os.kill(int((run_dir / ".model_server.pid").read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def _log_tail(run_dir: Path, lines: int = 15) -> str:
    tails = []
    for name in ("ts_log.log", "torchserve.out"):
        log = run_dir / name
        if log.exists():
            kept = [
                line for line in log.read_text(errors="replace").splitlines() if not line.startswith("\tat ")
            ]
            tails.append(f"--- {name}\n" + "\n".join(kept[-lines:]))
    return "\n".join(tails) or "(no logs)"


def _since(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _worker_error(model_log: str) -> str:
    """The worker's own words, from model_log.log lines `<time> [LEVEL] <thread> - <message>`: TorchServe's
    "Failed to load model ..." line and the traceback after it (else the first traceback): the worker's
    later "500 - Unknown exception" traceback says nothing."""
    lines = [line.split(" - ", 1)[1] if " - " in line else line for line in model_log.splitlines()]
    lines = [line for line in lines if line.strip() and not line.startswith("[METRICS]")]
    start = next((i for i, line in enumerate(lines) if line.startswith("Failed to load model")), None)
    if start is None:
        start = next(
            (i for i, line in enumerate(lines) if line.startswith("Traceback")), max(0, len(lines) - 15)
        )
    end = next((i for i in range(start + 2, len(lines)) if lines[i].startswith("Traceback")), len(lines))
    chunk = lines[start:end]
    return "\n".join(chunk if len(chunk) <= 40 else [chunk[0], "...", *chunk[-38:]])


SUPERVISE_ENV = "MLOPS_SERVE_SUPERVISE"  # 1: run under the watchdog that restarts a wedged frontend
LOAD_FAILED = ("Backend worker process died", "Load model failed", "Failed to load model")


def start(timeout: float = 120.0, run_dir: Path = settings.RUN_DIR, store: Path = MODEL_STORE) -> None:
    from mlops.config.params import load_params

    params = load_params()
    cfg = serve_settings(params)
    name = cfg["model_name"]
    mar = store / f"{name}.mar"
    if not mar.exists():
        raise UserError(f"{mar} not found: run `mlops archive` first")
    if cfg["runtime"] == "kserve":
        return start_kserve(params, cfg, mar, timeout, run_dir)
    if (run_dir / ".model_server.pid").exists() and _client(name, run_dir).ping():
        raise UserError("already running (see `mlops serve status`); stop it with `mlops serve stop`")
    for kind, port in settings.grpc_ports().items():
        if port_in_use("127.0.0.1", port):
            raise UserError(
                f"gRPC {kind} port {port} is in use: stop what listens there, or set "
                f"TS_GRPC_{kind.upper()}_PORT"
            )
    for kind in KINDS:
        ep = settings.endpoint(kind)
        if port_in_use(ep.host, ep.port):
            raise UserError(
                f"{kind} address {ep.url} is in use: stop what listens there, or set "
                f"TS_{kind.upper()}_ADDRESS"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "key_file.json").unlink(missing_ok=True)
    env = _env(run_dir, cfg["inference_log_dir"], params)
    env.setdefault("TS_INITIAL_WORKER_PORT", str(worker_ports()))
    logs = {name: _size(run_dir / name) for name in ("ts_log.log", "model_log.log")}
    cmd = [
        _torchserve(),
        "--start",
        "--ncs",
        "--ts-config",
        str(settings.CONFIG.resolve()),
        "--log-config",
        str(settings.LOG_CONFIG.resolve()),
        "--model-store",
        str(store.resolve()),
        "--models",
        f"{name}={mar.name}",
    ]
    # The JVM outlives the launcher and inherits its stdout: a file, not a pipe nobody reads.
    with open(run_dir / "torchserve.out", "ab") as out:
        if os.environ.get(SUPERVISE_ENV, "").lower() in ("1", "true", "yes"):
            # TorchServe in the foreground under the image's watchdog (serve/healthcheck.py), detached
            watchdog = [sys.executable, "-m", "serve.healthcheck", "--supervise", "--", *cmd, "--foreground"]
            env.setdefault(settings.KEY_FILE_ENV, str(settings.key_file(run_dir.resolve())))
            subprocess.Popen(
                watchdog, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (run_dir / ".model_server.pid").exists():
                time.sleep(0.2)
        else:
            proc = subprocess.run(cmd, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                raise UserError(f"torchserve did not start:\n{_log_tail(run_dir)}")
    client = _client(name, run_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(run_dir):
        workers = _workers(name, run_dir) if client.ping() else []
        if workers and all(w.get("status") == "READY" for w in workers):
            break
        news = "".join(_since(run_dir / name, offset) for name, offset in logs.items())
        if any(word in news for word in LOAD_FAILED):
            time.sleep(1)  # the worker's last stderr lines reach model_log.log just after
            error = _worker_error(_since(run_dir / "model_log.log", logs["model_log.log"]))
            stop(run_dir)
            raise UserError(f"the model failed to load in the TorchServe worker:\n{error}")
        time.sleep(0.5)
    else:
        why = "exited" if not _alive(run_dir) else f"was not healthy after {timeout:.0f} s"
        stop(run_dir)
        raise UserError(f"TorchServe {why}; last log lines:\n{_log_tail(run_dir)}")
    client.close()
    ep = settings.endpoint("inference")
    print(
        f"serve: {name} on {ep.url} ({len(workers)} worker(s) READY); key file {settings.key_file(run_dir)}"
    )
    print(
        f'serve: curl -H "Authorization: Bearer $(jq -r .inference.key {settings.key_file(run_dir)})" '
        f"-H 'Content-Type: application/json' -d @model_store/request.json {ep.url}/predictions/{name}"
    )


def stop(run_dir: Path = settings.RUN_DIR, timeout: float = 30.0) -> bool:
    """Stop the server this checkout started; returns False if none was running."""
    if (run_dir / KSERVE_PID).exists():
        return stop_kserve(run_dir, timeout)
    if not (run_dir / ".model_server.pid").exists():
        print("serve: not running")
        return False
    watchdog = run_dir / ".watchdog.pid"  # MLOPS_SERVE_SUPERVISE: stop the watchdog, which stops TorchServe
    if watchdog.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(watchdog.read_text().strip()), signal.SIGTERM)
        deadline = time.monotonic() + 15
        while watchdog.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    subprocess.run(
        [_torchserve(), "--stop", "--foreground"],
        cwd=run_dir,
        env=_env(run_dir, "logs"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    busy = KINDS
    while time.monotonic() < deadline:
        busy = [k for k in KINDS if port_in_use(settings.endpoint(k).host, settings.endpoint(k).port)]
        if not busy:
            print("serve: stopped")
            return True
        time.sleep(0.2)
    raise UserError(f"TorchServe stopped but {', '.join(busy)} port(s) still busy after {timeout:.0f} s")


def status(run_dir: Path = settings.RUN_DIR) -> int:
    from mlops.config.params import load_params

    name = serve_settings(load_params())["model_name"]
    client = _client(name, run_dir)
    healthy = client.ping()
    client.close()
    if (run_dir / KSERVE_PID).exists():
        print(
            f"serve: {'healthy' if healthy else 'not running'} at {settings.endpoint('inference').url}"
            " (KServe runtime)"
        )
        return 0 if healthy else 1
    workers = _workers(name, run_dir) if healthy else []
    state = ", ".join(f"{w.get('id')}:{w.get('status')}" for w in workers) or "none"
    print(
        f"serve: {'healthy' if healthy else 'not running'} at {settings.endpoint('inference').url}; "
        f"workers: {state}"
    )
    return 0 if healthy else 1


# -- the second runtime: KServe's Python model server (serve/kserve_runtime.py) ------------------------
KSERVE_PID = ".kserve.pid"
RUNTIME_PYTHON_ENV = "MLOPS_RUNTIME_PYTHON"  # an interpreter with kserve installed, if not this one


def runtime_python() -> str:
    return os.environ.get(RUNTIME_PYTHON_ENV) or sys.executable


def start_kserve(params, cfg: dict, mar: Path, timeout: float, run_dir: Path) -> None:
    """The same .mar under KServe's model server, on TorchServe's inference address and key file."""
    name = cfg["model_name"]
    ep = settings.endpoint("inference")
    pid_file = run_dir / KSERVE_PID
    if pid_file.exists() and _client(name, run_dir).ping():
        raise UserError("already running (see `mlops serve status`); stop it with `mlops serve stop`")
    if port_in_use(ep.host, ep.port):
        raise UserError(
            f"inference address {ep.url} is in use: stop what listens there, or set TS_INFERENCE_ADDRESS"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    settings.key_file(run_dir).unlink(missing_ok=True)
    env = _env(run_dir, cfg["inference_log_dir"], params)
    root = str(Path(__file__).resolve().parents[1])  # serve/ and mlops/config/values.py, as in the .mar
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault(settings.KEY_FILE_ENV, str(settings.key_file(run_dir).resolve()))
    cmd = [
        runtime_python(),
        "-m",
        "serve.kserve_runtime",
        "--mar",
        str(mar.resolve()),
        "--host",
        ep.host,
        "--port",
        str(ep.port),
        "--run-dir",
        str(run_dir.resolve()),
        "--workers",
        str(cfg["kserve_workers"]),
        "--batch-size",
        str(cfg["batch_size"]),
    ]
    out_path = run_dir / "kserve.out"
    offset = _size(out_path)
    with open(out_path, "ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    pid_file.write_text(f"{proc.pid}\n")
    client = _client(name, run_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if client.ping():
            break
        time.sleep(0.3)
    else:
        why = (
            f"exited with status {proc.returncode}"
            if proc.poll() is not None
            else f"was not healthy after {timeout:.0f} s"
        )
        stop_kserve(run_dir)
        tail = "\n".join(_since(out_path, offset).splitlines()[-25:])
        raise UserError(f"the KServe runtime {why}:\n{tail}")
    client.close()
    print(
        f"serve: {name} on {ep.url} (KServe model server, {cfg['kserve_workers']} process(es)); "
        f"key file {settings.key_file(run_dir)}"
    )


def stop_kserve(run_dir: Path, timeout: float = 30.0) -> bool:
    pid_file = run_dir / KSERVE_PID
    with contextlib.suppress(OSError, ValueError):
        os.killpg(int(pid_file.read_text().strip()), signal.SIGTERM)
    ep = settings.endpoint("inference")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and port_in_use(ep.host, ep.port):
        time.sleep(0.2)
    if port_in_use(ep.host, ep.port):
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print("serve: stopped")
    return True


def predict_file(request: Path) -> int:
    """Send a request body file to the local server and print one line per row."""
    body = Path(request)
    if not body.exists():
        raise UserError(f"{body} not found: `mlops archive` writes model_store/request.json")
    client = Client.local()
    try:
        predictions = client.predict(json.loads(body.read_text())["instances"])["predictions"]
    except ServeError as err:
        raise UserError(f"the server answered {err}") from None
    finally:
        client.close()
    for i, p in enumerate(predictions):
        if "label" not in p:  # regression
            print(f"row {i}: {p['prediction']:.6g} model version {p['model_version']}")
            continue
        proba = ", ".join(f"{c}={v:.4f}" for c, v in p["probabilities"].items())
        print(f"row {i}: {p['label']} ({proba}) model version {p['model_version']}")
    return 0
