"""Benchmark: memory of each DDP process while loading a large split, before and after sharded loading.

Method. A synthetic table (default 1,000,000 train rows x 30 float64 features plus an int label, and a
validation split of a quarter of that) is written as Parquet the way `mlops prepare` writes its splits
(pandas `to_parquet`, one row group per million rows). For each loader, `--world` processes start at the
same time, as the ranks of one node would, and each:
  1. imports what `mlops train` imports (torch, Lightning, pandas, pyarrow), then notes its RSS;
  2. loads its data the loader's way, timing it;
  3. reports its peak RSS (VmHWM) and its RSS once loaded.
Loaders:
  - before: the previous code, in every process: `pd.read_parquet` of both splits, then `to_tensors`
    (float32 tensors of all rows): each process holds the whole table, and briefly its float64 frame too.
  - after: `model.datamodule.load_block`, what `TabularDataModule.setup` now does: each process streams
    the file and keeps only its own block of rows (train: equal blocks; validation: all rows, split).
"data" is peak RSS minus the post-import RSS: what loading added. Then, unless `--no-train`, the real
`mlops train` runs with `strategy: ddp` on the same table (1 epoch, batch 8192), in a temp project, and
each rank's peak RSS is sampled every 20 ms (psutil, the launcher and its re-launched rank process).

Usage: python benchmarks/ddp_memory.py [--rows 1000000] [--features 30] [--world 2] [--no-train]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOADERS = ("before", "after")


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


def peak_rss_bytes() -> int:
    """VmHWM: this process image's peak RSS. Not ru_maxrss, which keeps the peak of the process that
    forked us (this benchmark, holding the generated table) across exec."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def write_table(folder: Path, rows: int, n_features: int) -> list[str]:
    import numpy as np
    import pandas as pd

    features = [f"f{i}" for i in range(n_features)]
    rng = np.random.default_rng(0)
    for name, n in (("train", rows), ("val", rows // 4)):
        frame = pd.DataFrame(rng.normal(size=(n, n_features)), columns=features)
        frame["label"] = rng.integers(0, 2, size=n)
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return features


def worker(loader: str, rank: int, world: int, folder: Path, features: list[str]) -> None:
    """One rank: imports, then load, then report as one JSON line on stdout."""
    import pandas as pd
    import pyarrow.parquet  # noqa: F401  (what `mlops train` imports anyway)
    import pytorch_lightning  # noqa: F401
    import torch  # noqa: F401

    from model.datamodule import load_block, to_tensors

    imported = current_rss_bytes()
    start = time.perf_counter()
    if loader == "before":
        train = to_tensors(pd.read_parquet(folder / "train.parquet"), features)
        val = to_tensors(pd.read_parquet(folder / "val.parquet"), features)
    else:
        train = load_block(folder / "train.parquet", features, rank, world, equal=True)
        val = load_block(folder / "val.parquet", features, rank, world, equal=False)
    seconds = time.perf_counter() - start
    rows = len(train) + len(val)
    print(
        json.dumps(
            {
                "rank": rank,
                "rows": rows,
                "seconds": seconds,
                "imported": imported,
                "peak": peak_rss_bytes(),
                "loaded": current_rss_bytes(),
            }
        )
    )


def run_ranks(loader: str, world: int, folder: Path, features: list[str]) -> list[dict]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                loader,
                "--rank",
                str(r),
                "--world",
                str(world),
                "--dir",
                str(folder),
                "--features",
                ",".join(features),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"{loader} worker failed ({proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def train_project(folder: Path, features: list[str], world: int) -> Path:
    """A temp project whose prepared splits are the synthetic table; params: ddp, 1 epoch."""
    import yaml

    project = folder / "project"
    prepared = project / "artifacts/prepared"
    prepared.mkdir(parents=True)
    for name in ("train", "val"):
        shutil.copy(folder / f"{name}.parquet", prepared / f"{name}.parquet")
    columns = [{"name": f, "type": "float", "fill": 0.0, "mean": 0.0, "std": 1.0} for f in features]
    (prepared / "preprocessing.json").write_text(json.dumps({"features": features, "columns": columns}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(features={f: {"type": "float"} for f in features}, label="label", classes=[0, 1])
    params["train"].update(
        max_epochs=1, batch_size=8192, accelerator="cpu", devices=world, strategy="ddp", num_nodes=1
    )
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def train_ranks(project: Path) -> tuple[float, list[int]]:
    """`mlops train` under DDP; returns (seconds, peak RSS of each process in the tree, launcher first)."""
    import psutil

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{project}/mlflow.db"}
    mlops = Path(sys.executable).with_name("mlops")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(mlops), "train"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    parent = psutil.Process(proc.pid)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        try:
            for p in [parent, *parent.children(recursive=True)]:
                if "train" in p.cmdline():  # a rank, not a helper such as git
                    peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"mlops train failed:\n{err.decode()[-3000:]}")
    print("  " + out.decode().strip().splitlines()[-1])
    return seconds, [peaks[pid] for pid in sorted(peaks, key=lambda pid: pid != proc.pid)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", default="30", help="a count (or, for --worker, the names)")
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--no-train", action="store_true", help="skip the end-to-end `mlops train` run")
    ap.add_argument("--worker", choices=LOADERS, help=argparse.SUPPRESS)
    ap.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.rank, args.world, args.dir, args.features.split(","))
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        features = write_table(folder, args.rows, int(args.features))
        size = sum((folder / f"{n}.parquet").stat().st_size for n in ("train", "val"))
        float32 = (args.rows + args.rows // 4) * (len(features) * 4 + 8)
        print(
            f"table: {args.rows:,} train + {args.rows // 4:,} val rows x {len(features)} features; "
            f"Parquet {mib(size):.0f} MiB; as float32 tensors {mib(float32):.0f} MiB; {args.world} ranks"
        )
        print(
            f"{'loader':<8} {'rank':>4} {'rows':>10} {'load s':>7} {'imports MiB':>12} "
            f"{'peak MiB':>9} {'data MiB':>9} {'held MiB':>9}"
        )
        for loader in LOADERS:
            for r in run_ranks(loader, args.world, folder, features):
                print(
                    f"{loader:<8} {r['rank']:>4} {r['rows']:>10,} {r['seconds']:>7.2f} "
                    f"{mib(r['imported']):>12.0f} {mib(r['peak']):>9.0f} "
                    f"{mib(r['peak'] - r['imported']):>9.0f} {mib(r['loaded'] - r['imported']):>9.0f}"
                )
        if not args.no_train:
            print(f"\nmlops train, strategy ddp, {args.world} CPU processes, 1 epoch, batch 8192:")
            seconds, peaks = train_ranks(train_project(folder, features, args.world))
            for rank, peak in enumerate(peaks):
                print(f"  rank {rank}: peak RSS {mib(peak):.0f} MiB")
            print(f"  {seconds:.1f} s wall")


if __name__ == "__main__":
    main()
