"""Benchmark: training throughput of the Lightning loop against a plain PyTorch loop.

Method: same data (the prepared train/val splits), same model (LitTabular.net), same batches
(model.datamodule.batches, same seed), same epochs and optimiser. Each loop runs `--repeats` times,
alternating, after one warm-up run of each; we report the median wall and CPU time of `fit` only (no data
loading, no export) and rows/s = epochs * train rows / time. Run after `dvc repro` (needs
artifacts/prepared/). Usage: python benchmarks/train_loop.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import pandas as pd
import torch

from mlops.config import paths
from mlops.config.params import load_params
from model.build import build_module
from model.datamodule import batches, to_tensors
from model.threads import use_threads
from model.train import fit


def plain_fit(params, train, val, scaler) -> None:
    """The loop a user would write by hand: same module, optimiser, batches and validation."""
    torch.manual_seed(params.seed)
    cfg = params.train
    module = build_module(params, scaler, None)
    optimiser = module.configure_optimizers()
    features = params.data.feature_names
    train_set, val_set = to_tensors(train, features), to_tensors(val, features)
    loader = batches(train_set, int(cfg.batch_size), shuffle=True, seed=params.seed)
    val_loader = batches(val_set, len(val_set), shuffle=False)
    for _ in range(int(cfg.max_epochs)):
        module.train()
        for x, y in loader:
            optimiser.zero_grad()
            loss = module.loss(module(x), y)
            loss.backward()
            optimiser.step()
        module.eval()
        with torch.no_grad():
            for x, y in val_loader:
                module.loss(module(x), y)


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is steadier when the machine is shared."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    params = load_params()
    use_threads(params.train)  # both loops alike: `fit` applies train.threads too (model/threads.py)
    train, val = pd.read_parquet(paths.TRAIN_SPLIT), pd.read_parquet(paths.VAL_SPLIT)
    scaler = {**json.loads(paths.PREPROCESSING.read_text()), "task": params.task}  # as `fit` passes it on
    runs = {
        "lightning": lambda: fit(params, train, val, scaler),
        "plain": lambda: plain_fit(params, train, val, scaler),
    }
    for run in runs.values():
        run()  # warm-up: imports, allocator, first-call costs
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(timed(run))
    rows = int(params.train.max_epochs) * len(train)
    print(
        f"training loop: {params.train.max_epochs} epochs x {len(train)} rows,"
        f" batch {params.train.batch_size},"
        f" median of {args.repeats}"
    )
    med = {name: [statistics.median(t[i] for t in ts) for i in (0, 1)] for name, ts in times.items()}
    for name, (wall, cpu) in med.items():
        print(f"  {name:<10} wall {wall:6.3f} s  cpu {cpu:6.3f} s  {rows / wall:9.0f} rows/s")
    wall_ratio = med["lightning"][0] / med["plain"][0]
    cpu_ratio = med["lightning"][1] / med["plain"][1]
    print(f"  lightning/plain ratio: wall {wall_ratio:.2f}, cpu {cpu_ratio:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
