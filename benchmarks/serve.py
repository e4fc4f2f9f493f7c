"""Serving benchmark: TorchServe (this template's handler and settings) vs FastAPI/uvicorn vs in-process.

Method (printed with the results):
- Load generator: wrk (C, `apt-get install wrk`) with benchmarks/post.lua, one fixed JSON body per run,
  keep-alive connections, on 127.0.0.1 only. Each run is bounded by --duration seconds after a
  --warmup run at the same concurrency (JIT, TorchScript profiling and connection set-up excluded).
- Matrix: concurrency 1, 8 and 32; bodies of 1 row and of 64 rows (held-out test rows, named features).
- Servers, started in this run one after the other on the same machine:
  (a) in-process: the TorchScript model's forward on the same rows (tensor already built): the limit;
  (b) TorchServe via `mlops serve` settings (serve/config.properties + params.yaml serve:), token auth on;
  (c) FastAPI/uvicorn, 2 workers, the same model and response shape, no auth and no inference log.
- Reported: requests/s, rows/s, p50/p95/p99 latency (wrk's corrected histogram), non-2xx count.

Usage: python benchmarks/serve.py [--duration 10] [--warmup 3] [--only torchserve,fastapi,inprocess]
Needs: `dvc pull` (artifacts/model, artifacts/prepared), wrk. Writes nothing outside a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LUA = ROOT / "benchmarks/post.lua"
CONCURRENCY = (1, 8, 32)
BATCHES = (1, 64)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def wrk(url: str, body: Path, connections: int, seconds: float, token: str | None = None) -> dict:
    env = {**os.environ, "BENCH_BODY_FILE": str(body), "BENCH_TOKEN": token or ""}
    threads = 1 if connections < 8 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-s",
            str(LUA),
            url,
        ],
        env=env,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    stats = json.loads(re.search(r"WRK_JSON (\{.*\})", out).group(1))
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def in_process(model_file: Path, rows: list[list[float]], seconds: float) -> dict[int, dict]:
    """Forward only, on pre-built tensors: the ceiling no server can pass."""
    import torch

    torch.set_num_threads(1)
    model = torch.jit.load(str(model_file)).eval()
    results = {}
    for batch in BATCHES:
        x = torch.tensor(rows[:batch], dtype=torch.float32)
        times: list[float] = []
        with torch.inference_mode():
            for _ in range(200):
                model(x)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                torch.softmax(model(x).double(), dim=1)
                times.append(time.perf_counter() - t0)
        q = statistics.quantiles(times, n=100)
        results[batch] = {
            "rps": len(times) / sum(times),
            "p50_us": q[49] * 1e6,
            "p95_us": q[94] * 1e6,
            "p99_us": q[98] * 1e6,
            "non2xx": 0,
        }
    return results


def start_torchserve(work: Path) -> tuple[dict[str, str], str, str]:
    """`mlops archive` + `mlops serve start` in a temp run dir on free ports; returns (env, url, token)."""
    env = {
        f"TS_{k.upper()}_ADDRESS": f"http://127.0.0.1:{free_port()}"
        for k in ("inference", "management", "metrics")
    }
    env["TS_INITIAL_WORKER_PORT"] = str(free_port())
    env["TS_GRPC_INFERENCE_PORT"], env["TS_GRPC_MANAGEMENT_PORT"] = str(free_port()), str(free_port())
    env["MLOPS_INFERENCE_LOG_DIR"] = str(work / "inference")
    os.environ.update(env)
    from serve import archive, server

    store = work / "model_store"
    archive.build(version="bench", store=store)
    server.start(run_dir=work / "run", store=store)
    token = json.loads((work / "run/key_file.json").read_text())["inference"]["key"]
    name = archive.serve_settings(archive.load_params())["model_name"]
    return env, f"{env['TS_INFERENCE_ADDRESS']}/predictions/{name}", token


def start_fastapi(work: Path, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env={**os.environ, "MODEL_DIR": str(Path("artifacts/model").resolve())},
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(up, 60, "uvicorn")
    time.sleep(2)  # both workers imported torch and loaded the model
    return proc, f"http://127.0.0.1:{port}/predictions/bench"


def line(r: dict, batch: int, unit: str) -> str:
    ms = {k: r[f"{k}_us"] / 1e3 for k in ("p50", "p95", "p99")}
    return (
        f"{r['rps']:9.0f} {unit} {r['rps'] * batch:10.0f} rows/s "
        f"p50 {ms['p50']:6.3f} ms  p95 {ms['p95']:6.3f} ms  p99 {ms['p99']:6.3f} ms"
    )


def run_matrix(name: str, url: str, bodies: dict[int, Path], args, token: str | None = None) -> dict:
    results = {}
    for batch in BATCHES:
        for c in CONCURRENCY:
            wrk(url, bodies[batch], c, args.warmup, token)
            results[(batch, c)] = wrk(url, bodies[batch], c, args.duration, token)
            r = results[(batch, c)]
            print(
                f"  {name:10s} rows/req={batch:<3d} c={c:<3d} {line(r, batch, 'req/s')}  non-2xx "
                f"{r['non2xx']}",
                flush=True,
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--only", default="inprocess,torchserve,fastapi")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("benchmarks/serve.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 1
    os.chdir(ROOT)
    import pandas as pd

    from mlops import paths

    features = json.loads(paths.MODEL_META.read_text())["features"]
    test = pd.read_parquet(paths.TEST_SPLIT)[features]
    rows = test.head(64).to_numpy().tolist()
    chosen = set(args.only.split(","))
    print(__doc__.split("Usage:")[0].strip())
    print(
        f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs; load average at start "
        f"{os.getloadavg()[0]:.2f}; wrk {args.duration:.0f} s per cell after {args.warmup:.0f} s warm-up\n"
    )
    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bodies = {}
        for batch in BATCHES:
            bodies[batch] = work / f"body-{batch}.json"
            bodies[batch].write_text(json.dumps({"instances": test.head(batch).to_dict(orient="records")}))
        if "inprocess" in chosen:
            res = in_process(paths.MODEL_FILE, rows, args.duration / 2)
            for batch, r in res.items():
                print(f"  {'in-process':10s} rows/call={batch:<3d}       {line(r, batch, 'calls/s')}")
            summary["inprocess"] = {f"{b}": r for b, r in res.items()}
        if "torchserve" in chosen:
            from serve import server

            _, url, token = start_torchserve(work)
            try:
                summary["torchserve"] = run_matrix("torchserve", url, bodies, args, token)
            finally:
                server.stop(run_dir=work / "run")
        if "fastapi" in chosen:
            with open(work / "uvicorn.log", "w") as log:
                proc, url = start_fastapi(work, log)
            try:
                summary["fastapi"] = run_matrix("fastapi", url, bodies, args)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
    if "torchserve" in summary and "fastapi" in summary:
        print("\nTorchServe / FastAPI throughput ratio:")
        for key in summary["torchserve"]:
            ts, fa = summary["torchserve"][key]["rps"], summary["fastapi"][key]["rps"]
            print(f"  rows/req={key[0]:<3d} c={key[1]:<3d} {ts / fa:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
