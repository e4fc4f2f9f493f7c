"""The baselines' test-split predictions, as the `baselines` stage saves them and `evaluate` loads them.

Why a store: fitting the baselines needs scikit-learn, whose import alone cost `evaluate` seconds, and they
depend only on the split and a few params, not on the model: their own DVC stage fits them once per split
and every model change reuses them. The file records what it was fitted on (a hash of the train and test
splits, the feature types and the params the fit reads), so `evaluate` never scores predictions of
another split; without a matching file it fits the baselines itself (slower, the same numbers).
Kept free of scikit-learn and pandas: `evaluate` imports this, not the fitting code.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from mlops.config import paths

PREDICTIONS = paths.BASELINES_DIR / "predictions.npz"
MANIFEST = paths.BASELINES_DIR / "baselines.json"


def fingerprint(params, task: str, kinds: list[str], baseline_rows: int) -> str:
    """What a fit depends on: both splits' bytes, task, features and their types, classes, seed, rows."""
    digest = hashlib.sha256()
    for split in (paths.TRAIN_SPLIT, paths.TEST_SPLIT):
        digest.update(hashlib.sha256(split.read_bytes()).digest())
    classes = [str(c) for c in params.data.classes] if task != "regression" else []
    inputs = [task, params.data.label, params.data.feature_names, kinds, classes, params.seed, baseline_rows]
    digest.update(json.dumps(inputs, default=str).encode())
    return digest.hexdigest()


def save(fitted: dict[str, np.ndarray], key: str) -> None:
    paths.BASELINES_DIR.mkdir(parents=True, exist_ok=True)
    with PREDICTIONS.open("wb") as handle:
        np.savez(handle, **fitted)
    manifest = {"fingerprint": key, "baselines": list(fitted)}
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def load(key: str) -> dict[str, np.ndarray] | None:
    """The saved predictions when they were fitted on these inputs, else None (with a line saying why)."""
    if not (MANIFEST.exists() and PREDICTIONS.exists()):
        print(f"evaluate: fitting the baselines here ({paths.BASELINES_DIR} missing: run `mlops baselines`)")
        return None
    manifest = json.loads(MANIFEST.read_text())
    if manifest.get("fingerprint") != key:
        print(f"evaluate: fitting the baselines here ({paths.BASELINES_DIR} is for other inputs)")
        return None
    with np.load(PREDICTIONS) as saved:
        return {name: saved[name] for name in manifest["baselines"]}
