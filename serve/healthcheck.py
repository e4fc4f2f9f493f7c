"""Container HEALTHCHECK: /ping (with the inference key) answers "Healthy" and every worker is READY.

/ping alone stays "Healthy" while a worker that cannot load the model is being retried, so the
management API (on 127.0.0.1 inside the container) is asked too.

Token auth stays on inside the image, so the check reads key_file.json like any client would (the
deploy manifests turn it off behind their in-pod gate: then no key is sent).

`--live`: /ping only, the liveness probe: the frontend answers, whatever the model's state. With the
frontend on 127.0.0.1 a kubelet HTTP probe cannot reach it, so both probes run this module in the pod.

`--supervise -- <torchserve command>`: the image's watchdog (see `supervise`).

With MLOPS_RUNTIME=kserve (the KServe runtime's image) readiness is `/v2/models/<name>/ready` instead
of the management API, which that runtime does not have.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from serve import settings
from serve.client import Client, ServeError, model_workers

RUNTIME_ENV = "MLOPS_RUNTIME"  # kserve in the KServe runtime's image (Dockerfile.kserve)


def _inference_client() -> Client:
    endpoint = settings.endpoint("inference")
    host = "127.0.0.1" if endpoint.host in ("0.0.0.0", "::") else endpoint.host
    name = os.environ.get("MLOPS_MODEL_NAME", "model")
    return Client(f"http://{host}:{endpoint.port}", name, settings.key_file(), timeout=3)


def _live() -> bool:
    client = _inference_client()
    try:
        return client.ping()
    finally:
        client.close()


def _request(path: str) -> int:
    client = _inference_client()
    try:
        return client.request("GET", path)[0]
    except (OSError, ServeError):
        return 0
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--supervise"]:
        cmd = args[2:] if args[1:2] == ["--"] else args[1:]
        return supervise(cmd, interval=float(os.environ.get("MLOPS_WATCHDOG_SECONDS", "2")))
    healthy = _live()
    if "--live" in args:
        return 0 if healthy else 1
    name = os.environ.get("MLOPS_MODEL_NAME", "model")
    if os.environ.get(RUNTIME_ENV) == "kserve":  # no management API: the Open Inference Protocol's ready
        return 0 if healthy and _request(f"/v2/models/{name}/ready") == 200 else 1
    workers = model_workers(settings.endpoint("management").url, name, settings.key_file()) if healthy else []
    return 0 if workers and all(w.get("status") == "READY" for w in workers) else 1


# -- watchdog -------------------------------------------------------------------------------------------
WATCHDOG_PID = ".watchdog.pid"  # in the working directory, beside TorchServe's key file
OOM_WORDS = (b"OutOfMemoryError", b"OutOfDirectMemoryError")


def _kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to TorchServe's process group (launcher, JVM, workers), SIGKILL to what is left after
    `grace` seconds; returns when the whole group is gone (the launcher exits before the JVM does)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    killed = False
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.1)
        if not _group_alive(proc.pid):
            return
        if not killed and time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            killed = True
        if time.monotonic() > deadline + 10:
            return


def _group_alive(pgid: int) -> bool:
    """Is any process of the group still running? Zombies do not count: where PID 1 does not reap
    (a bare container), the JVM stays a zombie after its launcher exits."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            return True
    return False


def _grown(log: Path, offset: int) -> tuple[bytes, int]:
    try:
        size = log.stat().st_size
    except OSError:
        return b"", 0
    if size < offset:  # rotated
        offset = 0
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read(), size


def supervise(
    cmd: list[str],
    interval: float = 2.0,
    failures: int = 3,
    start_timeout: float = 180.0,
    max_restarts: int = 5,
) -> int:
    """Run `cmd` (TorchServe in the foreground) and restart it when its frontend is wedged: /ping failed
    `failures` times in a row, or the frontend logged an OutOfMemoryError. The JVM's
    -XX:+ExitOnOutOfMemoryError covers the heap only: "Cannot reserve ... direct buffer memory" is thrown
    by Java code, so the JVM lives on with its one Netty thread unable to read (docs/serving.md). A
    TorchServe that exits by itself is started again too; more than `max_restarts` restarts in 10
    minutes end the supervisor with status 70, so the container's restart policy takes over. SIGTERM
    (docker stop, `mlops serve stop` via the JVM) stops TorchServe and ends it with 0."""
    log = Path(os.environ.get("LOG_LOCATION") or "logs") / "ts_log.log"
    restarts: list[float] = []
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    Path(WATCHDOG_PID).write_text(f"{os.getpid()}\n")  # `mlops serve stop` signals it first
    while True:
        offset = _grown(log, 0)[1]
        proc = subprocess.Popen(cmd, start_new_session=True)
        started, healthy, missed, why = time.monotonic(), False, 0, ""
        while not stopping and proc.poll() is None:
            time.sleep(interval)
            new, offset = _grown(log, offset)
            if any(word in new for word in OOM_WORDS):
                why = "the frontend ran out of memory"
                break
            ok = _live()
            healthy = healthy or ok
            missed = 0 if ok else missed + 1
            if healthy and missed >= failures:
                why = f"/ping failed {missed} times in a row"
                break
            if not healthy and time.monotonic() - started > start_timeout:
                why = f"not healthy {start_timeout:.0f} s after start"
                break
        if stopping:
            _kill_group(proc, grace=8.0)
            Path(WATCHDOG_PID).unlink(missing_ok=True)
            return 0
        if proc.poll() is not None:  # e.g. the JVM exited on a heap OutOfMemoryError
            why = f"TorchServe exited with status {proc.returncode}"
        print(f"healthcheck: restarting TorchServe: {why}", file=sys.stderr, flush=True)
        _kill_group(proc, grace=2.0)
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 600] + [now]
        if len(restarts) > max_restarts:
            print(f"healthcheck: {len(restarts)} restarts in 10 minutes: giving up", file=sys.stderr)
            Path(WATCHDOG_PID).unlink(missing_ok=True)
            return 70


if __name__ == "__main__":
    sys.exit(main())
