"""`mlops demo`: the README's main job. Runs the loop locally, step by step, with the same commands
a user (or a workflow) would type, then prints where every artifact is.

Each step is a plain command line, so the output doubles as a tutorial.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time

from mlops import paths
from mlops.errors import UserError

STEPS: list[tuple[str, list[str]]] = [
    ("Get the data (DVC remote, else the deterministic bootstrap)", ["mlops", "data"]),
    ("Run the pipeline: validate -> prepare -> train -> evaluate", ["dvc", "repro"]),
    ("Share outputs and run-cache with the DVC remote", ["dvc", "push", "--run-cache"]),
]


def run_step(title: str, cmd: list[str]) -> float:
    print(f"\n==> {title}\n$ {shlex.join(cmd)}", flush=True)
    exe = [sys.executable, "-m", "dvc", *cmd[1:]] if cmd[0] == "dvc" else cmd
    start = time.perf_counter()
    if subprocess.run(exe).returncode != 0:
        raise UserError(f"step failed: {shlex.join(cmd)}")
    return time.perf_counter() - start


def summary() -> str:
    metrics = json.loads(paths.METRICS.read_text())
    meta = json.loads(paths.MODEL_META.read_text())
    lines = ["", "==> Done. Where things are:"]
    lines.append(
        "  metrics        "
        + str(paths.METRICS)
        + "  ("
        + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
        + ")"
    )
    lines.append(f"  plot data      {paths.PLOTS_DIR}/ (confusion, roc, pr, training curves)")
    lines.append(f"  model          {paths.MODEL_FILE} (TorchScript) + {paths.MODEL_META}")
    lines.append(f"  validation     {paths.VALIDATION_REPORT}")
    run = meta["mlflow"]
    lines.append(f"  MLflow run     {run['run_id']} in {run['tracking_uri']}")
    lines.append(f"  MLflow UI      mlflow ui --backend-store-uri {run['tracking_uri']} --host 127.0.0.1")
    return "\n".join(lines)


def run() -> int:
    start = time.perf_counter()
    for title, cmd in STEPS:
        took = run_step(title, cmd)
        print(f"    ({took:.1f} s)")
    print(summary())
    print(f"\nTotal: {time.perf_counter() - start:.1f} s")
    return 0
