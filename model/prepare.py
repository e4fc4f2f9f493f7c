"""DVC stage `prepare`: a seeded, stratified train/val/test split; the scaler is fitted on train only.

Splits keep raw feature values. The scaler is baked into the exported model, so serving needs no
separate preprocessing step and cannot drift from training.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlops import paths
from mlops.params import DataSpec, load_params
from model.dataset import read_table


def clean_frame(frame: pd.DataFrame, spec: DataSpec) -> pd.DataFrame:
    """Schema columns only, features as float64, label as its class index. Assumes `validate` passed."""
    out = frame[spec.feature_names].apply(pd.to_numeric).astype("float64")
    index = {str(c): i for i, c in enumerate(spec.classes)}
    out["label"] = frame[spec.label].astype(str).str.strip().map(index).astype("int64")
    return out


def split(frame: pd.DataFrame, test_size: float, val_size: float, seed: int):
    """Stratified three-way split. val_size is a share of the whole table, like test_size."""
    rest, test = train_test_split(frame, test_size=test_size, stratify=frame["label"], random_state=seed)
    train, val = train_test_split(
        rest, test_size=val_size / (1 - test_size), stratify=rest["label"], random_state=seed
    )
    return train, val, test


def fit_scaler(train: pd.DataFrame, features: list[str]) -> dict:
    values = train[features].to_numpy(dtype=np.float64)
    std = values.std(axis=0)
    std[std == 0] = 1.0  # a constant column must not divide by zero
    return {"features": features, "mean": values.mean(axis=0).tolist(), "std": std.tolist()}


def run() -> None:
    params = load_params()
    frame = clean_frame(read_table(params.data.path), params.data)
    train, val, test = split(
        frame,
        test_size=float(params.split.get("test_size", 0.2)),
        val_size=float(params.split.get("val_size", 0.2)),
        seed=params.seed,
    )
    paths.PREPARED_DIR.mkdir(parents=True, exist_ok=True)
    for part, target in ((train, paths.TRAIN_SPLIT), (val, paths.VAL_SPLIT), (test, paths.TEST_SPLIT)):
        part.reset_index(drop=True).to_parquet(target, index=False)
    paths.SCALER.write_text(json.dumps(fit_scaler(train, params.data.feature_names), indent=2) + "\n")
    print(f"prepare: train={len(train)} val={len(val)} test={len(test)} rows -> {paths.PREPARED_DIR}/")
