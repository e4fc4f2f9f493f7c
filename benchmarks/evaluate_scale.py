"""Benchmark: wall time and peak RSS of `mlops evaluate` on a large test split, for one or more code trees.

Method: a seeded synthetic project in a temp dir: 30 float features, two overlapping Gaussian classes,
prepared splits of --train/--val/--test rows (default 600k/200k/200k: a 1M-row table at
split 0.6/0.2/0.2), a TorchScript MLP (standardise, 32, 16, 2 logits; seeded random weights: what is
measured is the evaluation's cost, not the model's quality), a history.csv and a meta.json, and a
params.yaml: this checkout's, with `data.features` replaced by the 30 columns and `report.slices` by
two quantile-binned columns (the bundled data's shape of slices). Then, for each --tree (a directory
holding this project's code, e.g. a `git worktree` of an older commit; default: this checkout), in
that order and one after the other, `/usr/bin/time -v python -m mlops.cli evaluate` runs in the project
with PYTHONPATH=<tree>, pinned to --cores CPUs with taskset. Printed per tree: wall seconds, user+sys
CPU seconds, and "Maximum resident set size" (the peak RSS of the process) in GB.

--task regression gives the label a linear formula of five columns and the model one output; --missing
puts that share of NaN into three columns (the model imputes them; the code measured must handle NaN).

Usage: python benchmarks/evaluate_scale.py [--tree DIR ...] [--test 200000] [--cores 2]
       [--task classification|regression] [--missing 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
N_FEATURES = 30


class SyntheticModel(nn.Module):
    """Imputes NaN with 0 (the training mean here), standardises, MLP; 2 logits or 1 regression output."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, outputs: int = 2):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.body = nn.Sequential(
            nn.Linear(N_FEATURES, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((torch.nan_to_num(x) - self.mean) / self.std)


def make_project(
    where: Path, rows: dict[str, int], seed: int = 0, task: str = "classification", missing: float = 0.0
) -> None:
    """`missing`: the share of NaN in f00..f02 (regression or not: needs a tree that handles NaN)."""
    rng = np.random.default_rng(seed)
    features = [f"f{i:02d}" for i in range(N_FEATURES)]
    prepared = where / "artifacts/prepared"
    prepared.mkdir(parents=True)
    for part, n in rows.items():
        y = (rng.random(n) < 0.4).astype(np.int64)
        x = rng.normal(size=(n, N_FEATURES)) + 0.6 * y[:, None]
        frame = pd.DataFrame(x.copy(), columns=features)
        frame["label"] = y if task == "classification" else x[:, :5].sum(axis=1) + rng.normal(size=n)
        for column in features[:3] if missing else []:  # no draws without: the same table as before
            frame.loc[rng.random(n) < missing, column] = np.nan
        frame.to_parquet(prepared / f"{part}.parquet", index=False)
    torch.manual_seed(seed)
    outputs = 1 if task == "regression" else 2
    model = SyntheticModel(np.zeros(N_FEATURES), np.ones(N_FEATURES), outputs).eval()
    model_dir = where / "artifacts/model"
    model_dir.mkdir(parents=True)
    torch.jit.script(model).save(str(model_dir / "model.pt"))
    (model_dir / "history.csv").write_text("epoch,train_loss,val_loss,val_accuracy\n1,0.6,0.6,0.7\n")
    (model_dir / "meta.json").write_text(json.dumps({"features": features, "classes": ["neg", "pos"]}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["path"] = "data/synthetic.parquet"
    params["data"]["label"] = "target"
    params["data"]["features"] = {name: {"dtype": "float"} for name in features}
    if task == "regression":
        params["task"] = "regression"
        params["data"].pop("classes", None)
    else:
        params["data"]["classes"] = ["neg", "pos"]
    params["report"]["slices"] = [{"column": "f00", "bins": 3}, {"column": "f01", "bins": 2}]
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def measure(project: Path, tree: Path, cores: int) -> dict[str, float]:
    for stale in ("eval",):
        shutil.rmtree(project / stale, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "mlops.cli", "evaluate"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", f"0-{cores - 1}", *command]
    proc = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"evaluate failed with {tree}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", proc.stderr).group(1).strip()

    clock = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(p * 60**i for i, p in enumerate(reversed(clock)))
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    rss_gb = int(field("Maximum resident set size (kbytes)")) / 1024**2
    sizes = {p.name: p.stat().st_size for p in (project / "eval").rglob("*") if p.is_file()}
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(rss_gb, 2), "files": sizes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="code tree(s) to measure, in order")
    parser.add_argument("--train", type=int, default=600_000)
    parser.add_argument("--val", type=int, default=200_000)
    parser.add_argument("--test", type=int, default=200_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--task", choices=["classification", "regression"], default="classification")
    parser.add_argument("--missing", type=float, default=0.0, help="share of NaN in 3 columns")
    args = parser.parse_args()
    trees = args.tree or [ROOT]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        make_project(
            project, {"train": args.train, "val": args.val, "test": args.test}, 0, args.task, args.missing
        )
        print(
            f"{args.task}: test split {args.test} rows, train {args.train}, val {args.val}, "
            f"{args.missing:.0%} missing in 3 columns; {args.cores} cores"
        )
        for tree in trees:
            result = measure(project, tree.resolve(), args.cores)
            files = result.pop("files")
            print(f"{tree}: {json.dumps(result)}")
            print(f"  eval/ files: {', '.join(f'{k} {v / 1024:.0f} KiB' for k, v in sorted(files.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
