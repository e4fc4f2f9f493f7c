"""Serving benchmark: TorchServe and the KServe runtime (this template's handler) vs FastAPI vs in-process.

Method (printed with the results):
- Load generator: wrk (C, `apt-get install wrk`) with benchmarks/post.lua, one fixed JSON body per run,
  keep-alive connections, on 127.0.0.1 only. Each run is bounded by --duration seconds after a
  --warmup run at the same cell (JIT, TorchScript profiling and connection set-up excluded).
- Cells: single rows in the row format ({"instances": [...]}, named features) at concurrency 1, 8, 32;
  64-row requests in the Open Inference Protocol (POST /v2/models/<name>/infer) at concurrency 8, 32;
  64-row requests in the row format at concurrency 8. Held-out test rows.
- Servers, started in this run one after the other on the same machine:
  (a) in-process: the TorchScript model's forward on the same rows (tensor already built): the limit;
  (b) TorchServe via `mlops serve` settings (serve/config.properties + params.yaml serve:), token auth
      on, the inference log written (to a temp dir) and the handler's metrics on;
  (c) the KServe runtime (serve.runtime: kserve, serve/kserve_runtime.py): the same .mar, handler,
      token auth and inference log, adaptive batching (no timer); `serve.kserve_workers` processes;
  (d) FastAPI/uvicorn, 2 workers, the same model and response shapes, no auth, no log, no metrics.
- The handler's own cost, in-process (no HTTP), per 64-row v2 request in a batch of 8 such requests:
  parsing + validation + response, the inference log (records + write), against the forward alone.
- Reported: requests/s, rows/s, p50/p95/p99 latency (wrk's corrected histogram), non-2xx count, and
  the machine's load (load average before and after; CPU used by other processes before the run).

Usage: python benchmarks/serve.py [--duration 10] [--warmup 3] [--only torchserve,kserve,fastapi,inprocess]
The KServe runtime runs under MLOPS_RUNTIME_PYTHON when set (an interpreter with kserve installed).
Needs: `dvc pull` (artifacts/model, artifacts/prepared), wrk. Writes nothing outside a temp dir.
"""

from __future__ import annotations

import argparse
import contextlib
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
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LUA = ROOT / "benchmarks/post.lua"
# (protocol, rows per request, concurrency)
CELLS = (("rows", 1, 1), ("rows", 1, 8), ("rows", 1, 32), ("v2", 64, 8), ("v2", 64, 32), ("rows", 64, 8))


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


def quantiles(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=100)
    return {
        "rps": len(times) / sum(times),
        "p50_us": q[49] * 1e6,
        "p95_us": q[94] * 1e6,
        "p99_us": q[98] * 1e6,
    }


def in_process(model_file: Path, rows: list[list[float]], seconds: float) -> dict[int, dict]:
    """Forward only, on pre-built tensors: the ceiling no server can pass."""
    import torch

    torch.set_num_threads(1)
    model = torch.jit.load(str(model_file)).eval()
    results = {}
    for batch in (1, 64):
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
        results[batch] = {**quantiles(times), "non2xx": 0}
    return results


def handler_cost(work: Path, v2_body: bytes, batch: int = 8, repeats: int = 300) -> dict[str, float]:
    """Microseconds per 64-row v2 request, the handler in-process on a batch of `batch` such requests."""
    import torch

    from mlops.config import paths
    from serve import handler as serve_handler

    model_dir = work / "handler"
    model_dir.mkdir()
    shutil.copy(paths.MODEL_FILE, model_dir / "model.pt")
    meta = json.loads(paths.MODEL_META.read_text())
    spec = {
        "features": meta["features"],
        "classes": meta.get("classes") or [],
        "model_version": "bench",
        "task": meta["task"],
        "schema": meta["schema"],
    }
    (model_dir / "serve.json").write_text(json.dumps({**spec, "max_batch_rows": 1024}))

    class Context:  # what TorchServe hands the handler, without metrics (their lines go to the frontend)
        model_name = "bench"
        request_processor = None

        def __init__(self):
            self.system_properties = {"model_dir": str(model_dir)}
            self.manifest = {"model": {"serializedFile": "model.pt"}}
            self.request_ids = {i: f"req-{i}" for i in range(batch)}

        def set_response_status(self, *args):
            raise AssertionError(args)

        def set_response_content_type(self, idx, value):
            pass

    def timed(log_dir: str) -> float:
        os.environ[serve_handler.LOG_ENV] = log_dir
        handler = serve_handler.TabularHandler()
        handler.initialize(Context())
        data = [{"body": v2_body}] * batch
        for _ in range(30):
            handler.handle(data, Context())
        t0 = time.perf_counter()
        for _ in range(repeats):
            handler.handle(data, Context())
        return (time.perf_counter() - t0) / repeats / batch * 1e6

    no_log = timed("off")
    with_log = timed(str(work / "handler-log"))
    x = torch.tensor(json.loads(v2_body)["inputs"][0]["data"], dtype=torch.float32).view(64, -1)
    model = torch.jit.load(str(paths.MODEL_FILE)).eval()
    xb = x.repeat(batch, 1)
    with torch.inference_mode():
        for _ in range(30):
            torch.softmax(model(xb).double(), dim=1)
        t0 = time.perf_counter()
        for _ in range(repeats):
            torch.softmax(model(xb).double(), dim=1)
    forward = (time.perf_counter() - t0) / repeats / batch * 1e6
    return {"forward": forward, "validation_and_response": no_log - forward, "logging": with_log - no_log}


def start_torchserve(
    work: Path, log: bool = True, overrides: dict | None = None
) -> tuple[dict[str, str], str, str, str]:
    """`mlops archive` + `mlops serve start` in a temp run dir on free ports; (env, base URL, name, token)."""
    env = {
        f"TS_{k.upper()}_ADDRESS": f"http://127.0.0.1:{free_port()}"
        for k in ("inference", "management", "metrics")
    }
    env["TS_INITIAL_WORKER_PORT"] = str(free_port())
    env["TS_GRPC_INFERENCE_PORT"], env["TS_GRPC_MANAGEMENT_PORT"] = str(free_port()), str(free_port())
    env["MLOPS_INFERENCE_LOG_DIR"] = str(work / "inference") if log else "off"
    os.environ.update(env)
    from mlops.release import archive
    from serve import server

    store = work / "model_store"
    params = archive.load_params()
    params = replace(params, serve=replace(params.serve, **(overrides or {})))  # --serve key=value
    archive.build(version="bench", store=store, params=params)
    server.start(run_dir=work / "run", store=store)
    token = json.loads((work / "run/key_file.json").read_text())["inference"]["key"]
    name = server.serve_settings(archive.load_params())["model_name"]
    return env, env["TS_INFERENCE_ADDRESS"], name, token


def start_kserve(work: Path, overrides: dict | None = None) -> tuple[str, str, str]:
    """The same .mar under the KServe runtime, on a free port; (base URL, model name, token)."""
    port = free_port()
    os.environ["TS_INFERENCE_ADDRESS"] = f"http://127.0.0.1:{port}"
    os.environ["TS_METRICS_ADDRESS"] = f"http://127.0.0.1:{free_port()}"
    os.environ["MLOPS_INFERENCE_LOG_DIR"] = str(work / "inference")
    from mlops.release import archive
    from serve import server

    params = archive.load_params()
    params = replace(params, serve=replace(params.serve, **(overrides or {}), runtime="kserve"))
    mar = archive.build(version="bench", store=work / "model_store", params=params)
    server.start_kserve(params, server.serve_settings(params), mar, 120, work / "run")
    token = json.loads((work / "run/key_file.json").read_text())["inference"]["key"]
    return os.environ["TS_INFERENCE_ADDRESS"], server.serve_settings(params)["model_name"], token


def kserve_installed() -> bool:
    from serve import server

    return (
        subprocess.run([server.runtime_python(), "-c", "import kserve"], capture_output=True).returncode == 0
    )


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
    return proc, f"http://127.0.0.1:{port}"


def line(r: dict, batch: int, unit: str) -> str:
    ms = {k: r[f"{k}_us"] / 1e3 for k in ("p50", "p95", "p99")}
    return (
        f"{r['rps']:9.0f} {unit} {r['rps'] * batch:10.0f} rows/s "
        f"p50 {ms['p50']:6.3f} ms  p95 {ms['p95']:6.3f} ms  p99 {ms['p99']:6.3f} ms"
    )


def run_cells(name: str, base: str, model: str, bodies: dict, args, token: str | None = None) -> dict:
    results = {}
    for protocol, batch, c in args.cells:
        path = f"/v2/models/{model}/infer" if protocol == "v2" else f"/predictions/{model}"
        body = bodies[(protocol, batch)]
        wrk(base + path, body, c, args.warmup, token)
        r = results[(protocol, batch, c)] = wrk(base + path, body, c, args.duration, token)
        print(
            f"  {name:10s} {protocol:4s} rows/req={batch:<3d} c={c:<3d} {line(r, batch, 'req/s')}  "
            f"non-2xx {r['non2xx']}",
            flush=True,
        )
    return results


def others_cpu(seconds: float = 2.0) -> float:
    """CPU (in cores) used by processes other than this one during `seconds`: the shared machine's load."""
    import psutil

    mine = os.getpid()
    procs = [p for p in psutil.process_iter() if p.pid != mine]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(seconds)
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.cpu_percent(None)
    return total / 100


def print_table(summary: dict) -> None:
    """One markdown table: a column per server, a line per cell (req/s, p50 and p99 in ms)."""
    if not summary:
        return
    labels = list(summary)
    print("\n| cell | " + " | ".join(labels) + " |")
    print("| --- |" + " --- |" * len(labels))
    for key in next(iter(summary.values())):
        cells = []
        for label in labels:
            r = summary[label].get(key)
            cells.append(
                "-"
                if r is None
                else f"{r['rps']:,.0f} req/s, p50 {r['p50_us'] / 1e3:.2f} / p99 {r['p99_us'] / 1e3:.2f} ms"
            )
        print(f"| {key[0]} {key[1]} row(s), c={key[2]} | " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--only", default="inprocess,handler,torchserve,kserve,fastapi")
    parser.add_argument(
        "--project",
        type=Path,
        default=ROOT,
        help="checkout whose params.yaml and artifacts/ are served (default: this one)",
    )
    parser.add_argument(
        "--cells",
        default=",".join(f"{p}:{b}:{c}" for p, b, c in CELLS),
        help="protocol:rows per request:concurrency, comma-separated (default: all six)",
    )
    parser.add_argument(
        "--serve",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params.yaml serve: setting for TorchServe (workers=2, batch_size=4, ...)",
    )
    parser.add_argument(
        "--compare",
        default="",
        metavar="K=V[,K=V];...",
        help="run TorchServe once per ';'-separated set of serve: overrides, one column each "
        "(e.g. 'max_batch_delay=2;batch_size=1')",
    )
    parser.add_argument(
        "--no-inference-log",
        action="store_true",
        help="TorchServe without its inference log: what the log costs",
    )
    args = parser.parse_args()
    args.cells = [(p, int(b), int(c)) for p, b, c in (cell.split(":") for cell in args.cells.split(","))]
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.serve)}
    if not shutil.which("wrk"):
        print("benchmarks/serve.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 1
    os.chdir(args.project)
    import pandas as pd

    from mlops.config import paths

    features = json.loads(paths.MODEL_META.read_text())["features"]
    test = pd.read_parquet(paths.TEST_SPLIT)[features]
    rows = test.head(64).to_numpy().tolist()
    chosen = set(args.only.split(","))
    print(__doc__.split("Usage:")[0].strip())
    print(
        f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs; load average at start "
        f"{os.getloadavg()[0]:.2f}; other processes used {others_cpu():.2f} cores just before; "
        f"wrk {args.duration:.0f} s per cell after {args.warmup:.0f} s warm-up\n"
    )
    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bodies = {}
        for protocol, batch, _ in args.cells:
            path = bodies[(protocol, batch)] = work / f"body-{protocol}-{batch}.json"
            if protocol == "v2":
                flat = [v for row in rows[:batch] for v in row]
                tensor = {
                    "name": "input-0",
                    "shape": [batch, len(features)],
                    "datatype": "FP32",
                    "data": flat,
                }
                path.write_text(json.dumps({"inputs": [tensor]}))
            else:
                path.write_text(json.dumps({"instances": test.head(batch).to_dict(orient="records")}))
        if "inprocess" in chosen:
            res = in_process(paths.MODEL_FILE, rows, args.duration / 2)
            for batch, r in res.items():
                print(f"  {'in-process':10s} rows/call={batch:<3d}       {line(r, batch, 'calls/s')}")
        if "handler" in chosen:
            cost = handler_cost(work, bodies[("v2", 64)].read_bytes())
            print(
                "  handler in-process, per 64-row v2 request (batch of 8): "
                f"forward {cost['forward']:.0f} us, parse+validation+response "
                f"{cost['validation_and_response']:.0f} us, inference log {cost['logging']:.0f} us"
            )
        if "torchserve" in chosen:
            from serve import server

            variants = [{}]
            if args.compare:
                variants = [
                    {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in group.split(","))}
                    for group in args.compare.split(";")
                ]
            for i, variant in enumerate(variants):
                label = "torchserve" + "".join(f"[{k}={v}]" for k, v in variant.items())
                run = work / f"ts{i}"
                run.mkdir()
                _, base, model, token = start_torchserve(
                    run, log=not args.no_inference_log, overrides={**overrides, **variant}
                )
                try:
                    summary[label] = run_cells(label, base, model, bodies, args, token)
                finally:
                    server.stop(run_dir=run / "run")
        if "kserve" in chosen and not kserve_installed():
            print("  kserve     skipped: not installed (pip install -e '.[kserve]', or MLOPS_RUNTIME_PYTHON)")
        elif "kserve" in chosen:
            from serve import server

            run = work / "kserve"
            run.mkdir()
            base, model, token = start_kserve(run, overrides)
            try:
                summary["kserve"] = run_cells("kserve", base, model, bodies, args, token)
            finally:
                server.stop_kserve(run / "run")
        if "fastapi" in chosen:
            with open(work / "uvicorn.log", "w") as log:
                proc, base = start_fastapi(work, log)
            try:
                summary["fastapi"] = run_cells("fastapi", base, "bench", bodies, args)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print_table(summary)
    for label in [k for k in summary if k != "fastapi"]:
        if "fastapi" not in summary:
            break
        print(f"{label} / FastAPI throughput ratio:")
        for key in summary[label]:
            ts, fa = summary[label][key]["rps"], summary["fastapi"][key]["rps"]
            print(f"  {key[0]:4s} rows/req={key[1]:<3d} c={key[2]:<3d} {ts / fa:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
