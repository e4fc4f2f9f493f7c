"""A project as `prepare` and `train` leave it, built directly: prepared splits in the "encoded raw" form
of the issue-11 contract (category codes, -1 unknown, NaN missing), an exported TorchScript model that
imputes and one-hot encodes inside itself, its meta.json with `task` and `schema`, and params.yaml.

The model is a fixed formula, not a trained network, so the right answers are known by construction
and `mlops evaluate` can be tested in seconds on multi-class, regression and large tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from tests.repo import ROOT

COLOURS = ["red", "green", "blue"]  # the category column's vocabulary: codes 0, 1, 2; -1 unknown
FEATURES = ["size", "weight", "colour"]


class FormulaModel(nn.Module):
    """Encoded raw in: fills NaN with `fill`, one-hot encodes the colour code (with an unknown bucket),
    then a linear map to `outputs` logits (classification) or one prediction (regression)."""

    def __init__(self, fill: list[float], weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("fill", torch.tensor(fill, dtype=torch.float32))
        self.register_buffer("levels", torch.tensor([0.0, 1.0, 2.0, -1.0]))
        self.register_buffer("weight", weight.float())  # [2 + 4, outputs]
        self.register_buffer("bias", bias.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.where(torch.isnan(x), self.fill.expand_as(x), x)
        code = x[:, 2:3]
        code = torch.where((code >= 0) & (code <= 2), code, torch.full_like(code, -1.0))
        onehot = (code == self.levels.unsqueeze(0)).float()
        return torch.cat([x[:, 0:2], onehot], dim=1) @ self.weight + self.bias


def make_table(n: int, task: str, seed: int) -> pd.DataFrame:
    """size ~ N(0,1) with 5% NaN, weight ~ N(0,1), colour codes 0..2 (a few -1); label by formula + noise.
    Classification: 3 imbalanced classes (about 60/30/10%)."""
    rng = np.random.default_rng(seed)
    size = rng.normal(size=n)
    weight = rng.normal(size=n)
    colour = rng.choice([0, 1, 2], size=n, p=[0.5, 0.3, 0.2]).astype(float)
    signal = 1.5 * size + 0.8 * weight + np.array([0.0, 1.0, -1.0])[colour.astype(int)]
    if task == "regression":
        label = 10 + 2 * signal + rng.normal(scale=1.0, size=n)
    else:
        score = signal + rng.normal(scale=0.7, size=n)
        label = np.digitize(score, np.quantile(score, [0.6, 0.9])).astype(np.int64)
    size[rng.random(n) < 0.05] = np.nan
    colour[rng.random(n) < 0.02] = -1  # an unseen value at serving time
    return pd.DataFrame({"size": size, "weight": weight, "colour": colour, "label": label})


def formula_model(task: str, strength: float = 1.0) -> nn.Module:
    """The generating formula (what a good model learns); `strength` 0 gives a model that knows nothing."""
    colour = [0.0, 1.0, -1.0, 0.0]
    if task == "regression":
        weight = torch.tensor([[3.0], [1.6], *[[2 * c] for c in colour]]) * strength
        return FormulaModel([0.0, 0.0, 0.0], weight, torch.tensor([10.0]))
    direction = torch.tensor([1.5, 0.8, *colour]).unsqueeze(1)
    weight = direction * torch.tensor([[-2.0, 0.0, 2.0]]) * strength  # class 2 high, class 0 low
    return FormulaModel([0.0, 0.0, 0.0], weight, torch.tensor([1.0, 0.6, -1.2]))


def write_project(
    where: Path,
    task: str = "classification",
    rows: int = 1500,
    model: nn.Module | None = None,
    report: dict | None = None,
    seed: int = 0,
) -> Path:
    """The project files `mlops evaluate` reads, in `where` (also the dir it must run in)."""
    splits = {"train": 3 * rows // 5, "val": rows // 5, "test": rows // 5}
    prepared = where / "artifacts/prepared"
    prepared.mkdir(parents=True, exist_ok=True)
    for i, (part, n) in enumerate(splits.items()):
        make_table(n, task, seed + i).to_parquet(prepared / f"{part}.parquet", index=False)
    model_dir = where / "artifacts/model"
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.jit.script((model or formula_model(task)).eval()).save(str(model_dir / "model.pt"))
    (model_dir / "history.csv").write_text("epoch,train_loss,val_loss,val_accuracy\n1,0.6,0.6,0.7\n")
    classes = [] if task == "regression" else ["low", "mid", "high"]
    schema = [
        {"name": "size", "type": "float", "missing": "impute"},
        {"name": "weight", "type": "float", "missing": "error"},
        {"name": "colour", "type": "category", "categories": COLOURS, "missing": "error"},
    ]
    meta = {"features": FEATURES, "classes": classes, "task": task, "schema": schema}
    (model_dir / "meta.json").write_text(json.dumps(meta))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["task"] = task
    params["data"] = {
        "path": "data/table.csv",
        "label": "price" if task == "regression" else "grade",
        "features": {
            "size": {"type": "float", "missing": "impute"},
            "weight": {"type": "float"},
            "colour": {"type": "category", "categories": COLOURS},
        },
    }
    if classes:
        params["data"]["classes"] = classes
    params["report"] = {
        **params.get("report", {}),
        "resamples": 200,
        "slices": [{"column": "colour"}, {"column": "size", "bins": 2}],
        **(report or {}),
    }
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return where
