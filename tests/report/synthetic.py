"""Synthetic project files for report tests: what `mlops evaluate` and the other stages leave, in small."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from tests.repo import ROOT

PLOTS = {  # what `mlops evaluate` writes, in small
    "confusion": "actual,predicted,count\nbenign,benign,71\nbenign,malignant,1\nmalignant,benign,3\n"
    "malignant,malignant,39\n",
    "roc": "fpr,tpr,threshold\n0.0,0.0,1.0\n0.0,0.8,0.9\n0.1,0.95,0.5\n1.0,1.0,0.0\n",
    "pr": "recall,precision,threshold\n1.0,0.37,0.0\n0.95,0.9,0.5\n0.8,1.0,0.9\n0.0,1.0,1.0\n",
    "training": "epoch,val_loss,val_accuracy,train_loss\n1,0.5,0.9,\n2,0.3,0.95,0.4\n3,0.2,0.96,0.25\n",
}
METRICS = {
    "accuracy": 0.96,
    "precision": 0.97,
    "recall": 0.93,
    "f1": 0.95,
    "roc_auc": 0.99,
    "log_loss": 0.12,
    "brier": 0.03,
}


def write_pr_side(
    repo: Path,
    metrics: dict | None = None,
    params_edit=None,
    data_md5: str = "abc123.dir",
    predictions: str | None = None,
) -> None:
    """The files a pipeline run leaves: metrics, plot CSVs, validation report, meta; plus params/data.dvc."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["optimizer"]["lr"] = 0.003  # a fixed baseline, whatever this checkout's params.yaml says
    if params_edit:
        params_edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "data.dvc").write_text(yaml.safe_dump({"outs": [{"md5": data_md5, "path": "data"}]}))
    (repo / "eval/plots").mkdir(parents=True, exist_ok=True)
    for name, text in PLOTS.items():
        (repo / f"eval/plots/{name}.csv").write_text(text)
    (repo / "eval/metrics.json").write_text(json.dumps(metrics or METRICS))
    if predictions is not None:
        (repo / "eval/predictions.csv").write_text(predictions)
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports/validation.json").write_text(
        json.dumps({"rows": 569, "class_balance": {"benign": 357, "malignant": 212}})
    )
    (repo / "artifacts/model").mkdir(parents=True, exist_ok=True)
    (repo / "artifacts/model/meta.json").write_text(json.dumps({"seed": 42}))
    model = b"model bytes"  # the run that trained them: mlops/config/tracking.py's record, tied by md5
    (repo / "artifacts/model/model.pt").write_bytes(model)
    run = {"run_id": "r123", "experiment": "exp", "tracking_uri": "sqlite:///mlflow.db"}
    run["model_md5"] = hashlib.md5(model).hexdigest()
    (repo / "artifacts/train_run.json").write_text(json.dumps(run))


def report(repo: Path) -> str:
    return (repo / "reports" / "pr" / "report.md").read_text()
