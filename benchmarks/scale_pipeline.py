"""Benchmark: the pipeline on 1M rows x 30 features, embedded defaults vs local production-style servers.

Method, all in one run on a fresh copy of this working tree (a temp dir):
1. a synthetic table (default 1,000,000 rows, the 30 features of params.yaml, two Gaussian classes,
   seeded) is written as Parquet to data/, `data.path` points at it and `dvc add data` tracks it;
2. params override (train stage only): `train.batch_size` 1024 and `train.max_epochs` 5 (flags below).
   The defaults (64 rows, 40 epochs) are tuned for the 569-row bundled table and would spend most of an
   hour on 1M rows on 2 cores. With it the whole run took about 10 min on a quiet 2-core machine
   (evaluate dominates; numbers in docs/scale-out.md). The override is printed;
3. embedded: MLflow on a sqlite file, DVC remote a local directory. Each stage runs as
   `dvc repro --force --single-item STAGE`, then `dvc push` and `mlops promote` (after a commit);
4. servers: PostgreSQL + moto_server (S3 API) + `mlflow server --artifacts-destination s3://...`
   (benchmarks/servers.py starts them, all on 127.0.0.1), client env MLFLOW_TRACKING_URI only, DVC
   remote on the same S3 endpoint; the same stages again, forced, then push and promote;
5. time: wall clock of each command. Peak memory: the highest sum of RSS over the command's process tree
   (psutil, polled every 50 ms; shared pages count once per process, so it is an upper bound). The
   servers' own peak RSS is polled the same way and printed on its own line.
The embedded phase runs first, so the server phase reads a warm page cache; stage commands are the
same in both. Usage: python benchmarks/scale_pipeline.py [--rows N] [--batch-size B] [--epochs E]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import servers
from benchmarks.workspace import copy_project, env, sh

STAGES = ["validate", "prepare", "train", "baselines", "evaluate"]
BUCKET = "mlops-bench"


def tree_rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
    return total


class PeakRSS(threading.Thread):
    """Polls the summed RSS of some process trees until stopped; keeps the peak."""

    def __init__(self, pids: list[int], every: float = 0.05):
        super().__init__(daemon=True)
        self.pids, self.every, self.peak = pids, every, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, tree_rss(self.pids))
            time.sleep(self.every)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def measured(cmd: list[str], cwd: Path, extra: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS bytes of the process tree, '' or the error) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(**extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    poller = PeakRSS([proc.pid])
    poller.start()
    output = proc.communicate()[0].decode(errors="replace")
    seconds = time.perf_counter() - start
    peak = poller.stop()
    error = "" if proc.returncode == 0 else (output.strip().splitlines() or ["?"])[-1][:100]
    return seconds, peak, error


def synthetic_table(path: Path, features: list[str], label: str, classes: list, rows: int, seed: int) -> None:
    """Two overlapping Gaussian classes, every feature positive (the schema's min 0), written as Parquet."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    shift = rng.normal(0.0, 0.6, len(features))
    x = rng.normal(0.0, 1.0, (rows, len(features))).astype("float32") + np.outer(y, shift).astype("float32")
    frame = pd.DataFrame(np.abs(x * 3 + 10), columns=features)
    frame[label] = np.asarray(classes, dtype=object)[y]
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def configure(repo: Path, rows: int, batch_size: int, epochs: int) -> None:
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    data = params["data"]
    table = repo / "data" / "synthetic.parquet"
    synthetic_table(table, list(data["features"]), data["label"], data["classes"], rows, params["seed"])
    text = params_path.read_text()
    text = re.sub(r"(?m)^(\s+path:) data/\S+", r"\1 data/synthetic.parquet", text, count=1)
    text = re.sub(r"(?m)^(\s+batch_size:) \d+(.*)$", rf"\1 {batch_size}\2", text, count=1)
    text = re.sub(r"(?m)^(\s+max_epochs:) \d+(.*)$", rf"\1 {epochs}\2", text, count=1)
    params_path.write_text(text)
    check = yaml.safe_load(text)
    assert check["data"]["path"] == "data/synthetic.parquet", "params.yaml layout changed: data.path"
    assert check["train"]["batch_size"] == batch_size and check["train"]["max_epochs"] == epochs
    sh(["dvc", "add", "data"], repo)
    # The committed metrics are the bundled table's: no baseline for "no worse than", as in a new project.
    sh(["git", "rm", "-q", "eval/metrics.json"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "synthetic table"], repo)


def phase(name: str, repo: Path, extra: dict[str, str], remote: str) -> dict[str, tuple[float, int, str]]:
    """Every step of one setup; each line is printed as it finishes (a long run shows progress)."""
    results = {}

    def step(label: str, cmd: list[str]) -> None:
        results[label] = seconds, peak, error = measured(cmd, repo, extra)
        status = f"FAILED: {error}" if error else "ok"
        print(f"  [{name}] {label}: {seconds:.1f} s, peak {peak / 1e6:.0f} MB, {status}", flush=True)

    for stage in STAGES:
        step(stage, ["dvc", "repro", "--force", "--single-item", stage])
    step("dvc push", ["dvc", "push", "-r", remote])
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", f"trained ({remote})"], repo)
    step("mlops promote", ["mlops", "promote"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if servers.postgres_bin() is None:
        sys.exit("PostgreSQL not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    for name in [n for n in os.environ if n.startswith(("AWS_", "MLFLOW_"))]:
        del os.environ[name]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = copy_project(work / "repo", work / "local-remote")
        start = time.perf_counter()
        configure(repo, args.rows, args.batch_size, args.epochs)
        setup = time.perf_counter() - start
        size = (repo / "data/synthetic.parquet").stat().st_size / 1e6
        print(
            f"table: {args.rows:,} rows x 30 features, Parquet {size:.0f} MB (made, dvc add: {setup:.0f} s)"
        )
        print(f"params override: train.batch_size={args.batch_size}, max_epochs={args.epochs}", flush=True)

        embedded = phase("embedded", repo, {}, "local")

        launched: list[servers.Server] = []
        try:
            postgres = servers.start_postgres()
            launched.append(postgres)
            moto = servers.start_moto(work)
            launched.append(moto)
            servers.s3_client(moto).create_bucket(Bucket=BUCKET)
            backend = servers.create_database(postgres, "mlflow")
            mlflow_server = servers.start_mlflow(work, backend, moto, f"s3://{BUCKET}/mlflow", proxied=True)
            launched.append(mlflow_server)
            sh(["dvc", "remote", "add", "--local", "s3", f"s3://{BUCKET}/dvc"], repo)
            sh(["dvc", "remote", "modify", "--local", "s3", "endpointurl", moto.url], repo)
            server_peak = PeakRSS([s.proc.pid for s in launched], every=0.2)
            server_peak.start()
            client = {"MLFLOW_TRACKING_URI": mlflow_server.url, **servers.AWS}
            remote = phase("servers", repo, client, "s3")
            peak_servers = server_peak.stop()
        finally:
            for server in reversed(launched):
                server.stop()

    print(f"\n{'step':<16}{'embedded s':>12}{'peak MB':>10}{'servers s':>12}{'peak MB':>10}")
    for step in embedded:
        row = f"{step:<16}"
        for seconds, peak, error in (embedded[step], remote[step]):
            row += f"{seconds:>12.1f}{peak / 1e6:>10.0f}" if not error else f"{'FAILED':>22}"
        print(row)
        for label, (_, _, error) in (("embedded", embedded[step]), ("servers", remote[step])):
            if error:
                print(f"  {label} {step} failed: {error}")
    print(f"servers (postgres, moto_server, mlflow server): peak RSS {peak_servers / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
