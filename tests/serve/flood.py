"""A token-less flood of big bodies at a local TorchServe, bounded in connections, bytes and time.

TorchServe's frontend aggregates a request's whole body before it checks the token, so a client with
no token can make it hold (connections x max_request_size) bytes. This opens `conns` connections to
127.0.0.1, announces `size` bytes of body on each (no Authorization header) and sends all but the last
byte, holds them until `seconds` have passed, closes them, and measures: the JVM's resident memory,
whether /ping (with the key) answered during the flood, and how long after the flood the server
answers /ping and a prediction.

    python -m tests.serve.flood --run-dir logs/torchserve --conns 340 --size 2844672 --seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import psutil

from serve import settings
from serve.client import Client

CHUNK = 64 << 10


def _flooder(port: int, path: str, size: int, stop: threading.Event, out: dict, lock: threading.Lock):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    chunk = b"[" + b"0," * (CHUNK // 2 - 1) + b"0"  # JSON-looking, CHUNK bytes
    sent, status = 0, "none"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(head)
            body = size - 1  # the last byte is never sent: the frontend holds the rest until we close
            while sent < body and not stop.is_set():
                piece = chunk[: min(CHUNK, body - sent)]
                sock.sendall(piece)
                sent += len(piece)
            sock.settimeout(0.5)
            data = b""
            while not stop.is_set() and b"\r\n" not in data:
                try:
                    got = sock.recv(4096)
                except TimeoutError:
                    continue
                if not got:
                    break
                data += got
            status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "held"
    except OSError as err:
        status = type(err).__name__
    with lock:
        out["sent"] += sent
        out["status"][status] = out["status"].get(status, 0) + 1


def _jvm(run_dir: Path) -> psutil.Process | None:
    try:
        return psutil.Process(int((run_dir / ".model_server.pid").read_text().strip()))
    except (OSError, ValueError, psutil.Error):
        return None


def flood(
    url: str,
    model: str,
    run_dir: Path,
    conns: int = 340,
    size: int = 2_844_672,
    seconds: float = 20.0,
    row: list | None = None,
) -> dict:
    """Returns what the frontend held and how it fared; never runs longer than ~2 x seconds + 60 s."""
    run_dir = Path(run_dir)
    key_file = settings.key_file(run_dir)
    port = settings.Endpoint(url).port
    jvm = _jvm(run_dir)
    pid = jvm.pid if jvm else None
    rss0 = jvm.memory_info().rss if jvm else 0
    out = {"sent": 0, "status": {}}
    stop, lock = threading.Event(), threading.Lock()
    probe = {"peak_rss": rss0, "pings": 0, "ping_failures": 0}

    def monitor():
        client = Client(url, model, key_file, timeout=2)
        while not stop.is_set():
            proc = _jvm(run_dir)
            if proc is not None:
                with contextlib.suppress(psutil.Error):
                    probe["peak_rss"] = max(probe["peak_rss"], proc.memory_info().rss)
            probe["pings"] += 1
            if not client.ping():
                probe["ping_failures"] += 1
            time.sleep(0.25)
        client.close()

    started = time.monotonic()
    threads = [
        threading.Thread(
            target=_flooder, args=(port, f"/predictions/{model}", size, stop, out, lock), daemon=True
        )
        for _ in range(conns)
    ]
    watcher = threading.Thread(target=monitor, daemon=True)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, seconds - (time.monotonic() - started)))
    stop.set()
    for t in threads:
        t.join(5)
    watcher.join(5)
    ended = time.monotonic()
    recovered = None
    client = Client(url, model, key_file, timeout=2)
    while time.monotonic() - ended < 60:
        if client.ping():
            try:
                if row is None or client.predict([row]):
                    recovered = time.monotonic() - ended
                    break
            except Exception:
                pass
        time.sleep(0.2)
    client.close()
    after = _jvm(run_dir)
    log = (run_dir / "ts_log.log").read_text(errors="replace") if (run_dir / "ts_log.log").exists() else ""
    return {
        "conns": conns,
        "size": size,
        "flood_seconds": round(ended - started, 1),
        "bytes_sent_mb": round(out["sent"] / 2**20, 1),
        "answers": out["status"],
        "jvm_rss_mb_before": round(rss0 / 2**20),
        "jvm_rss_mb_peak": round(probe["peak_rss"] / 2**20),
        "pings": probe["pings"],
        "ping_failures_during": probe["ping_failures"],
        "recovered_after_s": None if recovered is None else round(recovered, 2),
        "jvm_restarted": (after.pid if after else None) != pid,
        "oom_lines": log.count("OutOfMemoryError") + log.count("OutOfDirectMemoryError"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=settings.RUN_DIR)
    parser.add_argument("--model", help="default: params.yaml serve.model_name")
    parser.add_argument("--conns", type=int, default=340)
    parser.add_argument("--size", type=int, default=2_844_672)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    from mlops.config.params import load_params

    params = load_params()
    row = [1.0] * len(params.data.feature_names)
    args.model = args.model or params.serve.model_name
    url = settings.endpoint("inference").url
    print(json.dumps(flood(url, args.model, args.run_dir, args.conns, args.size, args.seconds, row)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
