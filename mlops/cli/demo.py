"""`mlops demo`: the README's main job. Runs the whole loop locally, step by step, with the same
commands a user (or a workflow) would type, then prints where every artifact is.

Each step is a plain command line, so the output doubles as a tutorial. The local TorchServe is
always stopped at the end, also when a step fails.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from mlops.config import paths
from mlops.config.errors import UserError
from mlops.config.tracking import tracking_uri, train_run
from mlops.report.scores import flat_scores

PIPELINE = [
    ("Get the data (DVC remote, else the deterministic bootstrap)", "mlops data"),
    ("Run the pipeline: validate -> prepare -> train, baselines -> evaluate", "dvc repro"),
    ("Share outputs and run-cache with the DVC remote", "dvc push --run-cache"),
    ("Write the PR report against main (what CML posts on a pull request)", "mlops report --base main"),
    (
        "Promote: md5 vs dvc.lock, register in MLflow, gates, champion alias (a local demo may have "
        "uncommitted changes: they are recorded on the version as git_dirty=true)",
        "mlops promote --allow-dirty",
    ),
    ("Archive the champion for TorchServe", "mlops archive"),
    ("Start TorchServe on 127.0.0.1 (token auth on)", "mlops serve start"),
    ("A few real predictions on held-out rows", "mlops serve predict"),
    (
        "Production traffic: normal, then shifted; labels to the feedback folder",
        "mlops simulate-traffic --normal 300 --shifted 300 --shift 1.0",
    ),
    ("Drift check: the inference log vs the training split (Evidently)", "mlops drift"),
    (
        "On drift: a new data snapshot on a retrain/... branch (local only: no push, no PR)",
        "mlops retrain-pr --no-push",
    ),
]
STOP = ("Stop TorchServe", "mlops serve stop")


def run_step(title: str, command: str) -> None:
    print(f"\n==> {title}\n$ {command}", flush=True)
    argv = shlex.split(command)
    if argv[0] == "dvc":  # this interpreter's DVC: works without an activated venv
        argv = [sys.executable, "-m", "dvc", *argv[1:]]
    start = time.perf_counter()
    code = subprocess.run(argv).returncode
    if code != 0:
        raise UserError(f"step failed (exit {code}): {command}")
    print(f"    ({time.perf_counter() - start:.1f} s)", flush=True)


def retrain_branch() -> str | None:
    out = subprocess.run(
        ["git", "for-each-ref", "--sort=-committerdate", "--format=%(refname:short)", "refs/heads/retrain/"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[0] if out else None


def summary() -> str:
    metrics = json.loads(paths.METRICS.read_text())
    run = train_run(paths.MODEL_FILE) or {"run_id": "unknown (the model came from the DVC cache)"}
    run.setdefault("tracking_uri", tracking_uri())
    drift = Path("reports/drift/summary.json")
    decision = json.loads(drift.read_text()).get("decision", "?") if drift.exists() else "not run"
    branch = retrain_branch()
    rows = [
        (
            "metrics",
            f"{paths.METRICS}  (" + ", ".join(f"{k}={v:.3f}" for k, v in flat_scores(metrics).items()) + ")",
        ),
        ("plot data", f"{paths.PLOTS_DIR}/ (confusion, roc, pr, training curves)"),
        ("PR report", "reports/pr/report.md (+ PNG plots in reports/pr/)"),
        ("model", f"{paths.MODEL_FILE} (TorchScript); the .mar in model_store/"),
        ("MLflow run", f"{run['run_id']} in {run['tracking_uri']}"),
        ("MLflow UI", f"mlflow ui --backend-store-uri {run['tracking_uri']} --host 127.0.0.1"),
        ("inference log", "logs/inference/*.jsonl"),
        ("drift report", f"reports/drift/report.html (decision: {decision}; summary.json beside it)"),
        (
            "retrain branch",
            f"{branch} (local only; `git push origin {branch}` to propose it)"
            if branch
            else "none (no drift)",
        ),
    ]
    return "\n".join(["", "==> Done. Where things are:", *(f"  {k:<15} {v}" for k, v in rows)])


def run() -> int:
    start = time.perf_counter()
    served = False
    try:
        for title, command in PIPELINE:
            served = served or command == "mlops serve start"
            run_step(title, command)
    finally:
        if served:
            run_step(*STOP)
    print(summary())
    print(f"\nTotal: {time.perf_counter() - start:.1f} s")
    return 0
