"""Does `train.class_weights: auto` help on an imbalanced table? Prints accuracy, per-class recall, ECE
and Brier for `none` and `auto` next to the majority-class model, per seed and on average.

Method: per seed, a synthetic binary table of `--rows` rows (default 4,000) with about 12% positives:
six numeric features, the label from a noisy linear score (positives = its top 12%), so the classes
overlap as real imbalanced tables do. The project's own `prepare` (stratified split 60/20/20) and
`train.fit` with params.yaml's `train:` section, changing only `class_weights`; scored on the test split
with model/evaluate.py's metrics. Run: `python benchmarks/class_weights.py [--seeds 5] [--rows 4000]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def table(rows: int, seed: int, positive: float = 0.12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    score = x @ np.array([1.0, 0.8, -0.6, 0.5, 0.0, 0.0]) + rng.normal(scale=1.0, size=rows)
    label = np.where(score > np.quantile(score, 1 - positive), "yes", "no")
    return pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]).assign(target=label)


def run_seed(rows: int, seed: int) -> dict[str, dict[str, float]]:
    from mlops.config import paths
    from mlops.config.params import load_params
    from model.evaluate import compute_metrics
    from model.prepare import run as prepare
    from model.train import fit

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["seed"] = seed
    params["data"] = {
        "path": "data/imbalanced.csv",
        "label": "target",
        "classes": ["no", "yes"],
        "features": {f"x{i}": {"type": "float"} for i in range(6)},
    }
    Path("data").mkdir(exist_ok=True)
    table(rows, seed).to_csv("data/imbalanced.csv", index=False)
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    prepare()
    loaded = load_params()
    import json

    prep = json.loads(paths.PREPROCESSING.read_text())
    test = pd.read_parquet(paths.TEST_SPLIT)
    x = test[loaded.data.feature_names].to_numpy(dtype=np.float32)
    y = test["label"].to_numpy()
    out = {}
    prior = np.asarray(prep["class_counts"], dtype=float) / sum(prep["class_counts"])
    out["majority"] = _scores(y, np.tile(prior, (len(y), 1)), compute_metrics)
    for setting in ("none", "auto"):
        trial = replace(loaded, train=replace(loaded.train, class_weights=setting))
        module, _ = fit(trial, paths.TRAIN_SPLIT, paths.VAL_SPLIT, prep)
        with torch.no_grad():
            proba = torch.softmax(module.net.eval()(torch.from_numpy(x)).double(), dim=1).numpy()
        out[setting] = _scores(y, proba, compute_metrics)
    return out


def _scores(y, proba, compute_metrics) -> dict[str, float]:
    metrics = compute_metrics(y, proba, 2)
    pred = proba.argmax(1)
    return {
        "accuracy": metrics["accuracy"],
        "recall_no": float((pred[y == 0] == 0).mean()),
        "recall_yes": float((pred[y == 1] == 1).mean()),
        "ece": metrics["ece"],
        "brier": metrics["brier"],
        "roc_auc": metrics["roc_auc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=4000)
    args = parser.parse_args()
    results = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                result = run_seed(args.rows, seed)
            finally:
                os.chdir(cwd)
        for model, scores in result.items():
            print(
                f"seed {seed} {model:8s} " + " ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True
            )
            results.append({"model": model, **scores})
    mean = pd.DataFrame(results).groupby("model", sort=False).mean()
    print("\nmean over seeds:")
    print(mean.round(3).to_markdown())


if __name__ == "__main__":
    main()
