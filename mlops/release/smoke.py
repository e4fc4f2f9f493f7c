"""Smoke-test a serving image: run it on loopback, wait for health, predict, stop. Standard library only.

    python -m mlops.release.smoke IMAGE --request model_store/request.json --expect-version 3 [--engine
    podman]

Used by promote.yml before pushing an image and by the container test. The container shares the host
network and binds 127.0.0.1 on free ports, so nothing is exposed beyond this machine.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from serve.client import Client, ServeError

KEY_FILE = "/home/model-server/run/key_file.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, check=check)


def smoke(
    image: str,
    request: Path,
    engine: str = "docker",
    expect_version: str | None = None,
    timeout: float = 180.0,
) -> list[str]:
    """Returns report lines; raises RuntimeError with the container's log tail on any failure."""
    ports = {kind: free_port() for kind in ("inference", "management", "metrics")}
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    env = [f"TS_{k.upper()}_ADDRESS=http://127.0.0.1:{p}" for k, p in ports.items()]
    env += [f"TS_GRPC_{k}_PORT={free_port()}" for k in ("INFERENCE", "MANAGEMENT")]  # host network
    cmd = [engine, "run", "-d", "--rm", "--network", "host", "--name", name]
    for pair in env:
        cmd += ["-e", pair]
    _run([*cmd, image])
    started = time.monotonic()
    try:
        while True:
            if (
                _run([engine, "exec", name, "python3", "-m", "serve.healthcheck"], check=False).returncode
                == 0
            ):
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"not healthy after {timeout:.0f} s")
            time.sleep(1)
        healthy_s = time.monotonic() - started
        model = _run([engine, "exec", name, "printenv", "MLOPS_MODEL_NAME"]).stdout.strip()
        body = json.loads(request.read_text())
        with tempfile.TemporaryDirectory() as tmp:
            key_file = Path(tmp) / "key_file.json"
            key_file.write_text(_run([engine, "exec", name, "cat", KEY_FILE]).stdout)
            client = Client(f"http://127.0.0.1:{ports['inference']}", model, key_file, timeout=10)
            answer = client.predict(body["instances"])
            client.close()
        preds = answer["predictions"]
        if len(preds) != len(body["instances"]):
            raise RuntimeError(f"{len(body['instances'])} rows sent, {len(preds)} predictions returned")
        versions = {p["model_version"] for p in preds}
        if expect_version is not None and versions != {str(expect_version)}:
            raise RuntimeError(f"model_version {sorted(versions)} != expected {expect_version}")
    except (RuntimeError, ServeError, OSError, ValueError, subprocess.CalledProcessError) as err:
        logs = _run([engine, "logs", "--tail", "40", name], check=False)
        _run([engine, "rm", "-f", name], check=False)
        raise RuntimeError(
            f"smoke test of {image} failed: {err}\n--- container log\n{logs.stdout}{logs.stderr}"
        ) from None
    _run([engine, "stop", "-t", "20", name], check=False)
    labels = [
        f"{p['label']} ({max(p['probabilities'].values()):.3f})" if "label" in p else f"{p['prediction']:.4g}"
        for p in preds
    ]
    return [
        f"- healthy after {healthy_s:.0f} s (`/ping` with the inference key)",
        f"- predicted {len(preds)} rows with model version {', '.join(sorted(versions))}: "
        + ", ".join(labels),
        "- stopped",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops.release.smoke", description=__doc__.split("\n")[0])
    parser.add_argument("image")
    parser.add_argument("--request", type=Path, default=Path("model_store/request.json"))
    parser.add_argument("--engine", default="docker", help="docker or podman")
    parser.add_argument("--expect-version")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    try:
        lines = smoke(args.image, args.request, args.engine, args.expect_version, args.timeout)
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
