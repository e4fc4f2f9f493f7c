"""Seed models: extra models trained exactly like the shipped one, on the same split, with seeds seed+1 ...
seed+k (params.yaml `report.seeds`). The PR report widens every interval of a change by their spread: the
noise a retrain alone brings (docs/report.md, "Which noise an interval covers").

The `train` stage fits them right after the shipped model, where Lightning is loaded already, and exports
each as the same TorchScript into artifacts/seeds/ (a DVC output of `train`). `evaluate` only loads and
scores those files, so it imports neither Lightning nor the training code: that import alone cost it
seconds. They train in one process on CPU wherever the shipped model trains (they are a measurement, not
a product). seeds.json names them with their seeds and the shipped model's seed, so `evaluate` never
scores models left over from another `seed`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlops.config import paths

AUTO_SEED_ROWS = 20000  # report.seeds auto: seed models only up to this many train rows
MANIFEST = paths.SEEDS_DIR / "seeds.json"
SINGLE = {"accelerator": "cpu", "devices": 1, "strategy": "auto", "num_nodes": 1}
# Set by torchrun, SLURM or Lightning's DDP launch: a fit in a child without them is one plain process.
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK")


def count(settings: dict, train_rows: int) -> int:
    """`report.seeds`; `auto`: 2 on tables small enough that a fit takes seconds (the train split up to
    AUTO_SEED_ROWS rows), else 0."""
    value = settings.get("seeds", "auto")
    if value == "auto":
        return 2 if train_rows <= AUTO_SEED_ROWS else 0
    return int(value)


def train(params, preprocessing: dict) -> list[Path]:
    """Fit and export the `report.seeds` seed models into artifacts/seeds/ (emptied first), with seeds.json.
    Called by `train` on global rank 0 after the shipped model is saved."""
    from dataclasses import replace

    from mlops.report.settings import report_settings
    from model.datamodule import parquet_rows
    from model.train import export, fit

    k = count(report_settings(params), parquet_rows(paths.TRAIN_SPLIT))
    shutil.rmtree(paths.SEEDS_DIR, ignore_errors=True)
    paths.SEEDS_DIR.mkdir(parents=True)
    models = []
    for offset in range(1, k + 1):
        run_params = replace(params, seed=params.seed + offset, train=replace(params.train, **SINGLE))
        module, _ = fit(run_params, paths.TRAIN_SPLIT, paths.VAL_SPLIT, preprocessing)
        name = f"seed{offset}.pt"
        export(module, paths.SEEDS_DIR / name)
        models.append({"seed": params.seed + offset, "file": name})
    MANIFEST.write_text(json.dumps({"seed": params.seed, "models": models}, indent=2) + "\n")
    print(f"train seeds: {k} seed model(s) -> {paths.SEEDS_DIR}")  # not "train: ", the run summary
    return [paths.SEEDS_DIR / m["file"] for m in models]


def train_after(params, preprocessing: dict, world_size: int) -> None:
    """`train` on global rank 0: the seed models in this process, or, after a distributed fit, in a child
    process without the launcher's environment (one plain single-device fit, never a rank of a group)."""
    if world_size <= 1:
        train(params, preprocessing)
        return
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV and not k.startswith("SLURM_")}
    subprocess.run([sys.executable, "-m", "model.seeds"], env=env, check=True)


def files(params) -> list[Path]:
    """The seed models `train` wrote for this `seed`, in order; none (with a line saying why) when there
    are none or they belong to another seed."""
    if not MANIFEST.exists():
        print(f"evaluate: no seed models ({MANIFEST} missing: run the train stage)")
        return []
    manifest = json.loads(MANIFEST.read_text())
    if manifest.get("seed") != params.seed:
        print(f"evaluate: no seed models ({MANIFEST} is for seed {manifest.get('seed')}, not {params.seed})")
        return []
    return [paths.SEEDS_DIR / m["file"] for m in manifest.get("models", [])]


def _main() -> None:
    from mlops.config.params import load_params

    train(load_params(), json.loads(paths.PREPROCESSING.read_text()))


if __name__ == "__main__":
    _main()
