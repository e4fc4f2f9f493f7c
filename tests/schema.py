"""The project's table as params.yaml describes it, for the forker's tests (model, data, serve, monitoring).

Those tests take column names, classes, the model's name and sample rows from here instead of naming the
bundled breast-cancer columns, so they keep passing when a forker swaps in their own table (data/ and
params.yaml `data:`); tests/template/swap_check.py checks that on another table. Tests whose point is a
particular kind of column (a category, a date) build a small table of their own instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from mlops.config.params import FeatureSpec, Params, load_params
from tests.repo import ROOT

PARAMS: Params = load_params(ROOT / "params.yaml")
SPEC = PARAMS.data
LABEL: str = SPEC.label
FEATURES: list[str] = SPEC.feature_names
CLASSES: list = list(SPEC.classes)
BINARY: bool = not SPEC.regression and len(CLASSES) == 2
MODEL_NAME: str = str(PARAMS.serve.model_name)
NUMERIC: list[str] = [f.name for f in SPEC.features if f.numeric]
DATA_FILE: Path = ROOT / SPEC.path


def numeric(i: int = 0) -> str:
    """The i-th numeric feature (tests that shift, bound or corrupt one column)."""
    return NUMERIC[i]


def bounded(count: int = 1) -> list[FeatureSpec]:
    """`count` numeric features with a declared `min` or `max` (tests of out-of-range values)."""
    found = [f for f in SPEC.features if f.numeric and (f.min is not None or f.max is not None)]
    assert len(found) >= count, f"params.yaml declares min/max on {len(found)} numeric features; need {count}"
    return found[:count]


def out_of_range(feature: FeatureSpec) -> float:
    """A value just outside the feature's declared bounds."""
    return feature.min - 1.0 if feature.min is not None else feature.max + 1.0


def write_data(root: Path) -> Path:
    """Put the project's table at `root`/data.path: this checkout's file, else the bundled one recreated."""
    target = root / SPEC.path
    target.parent.mkdir(parents=True, exist_ok=True)
    if DATA_FILE.exists():
        shutil.copy2(DATA_FILE, target)
    else:  # a fresh clone before `mlops data`: only the bundled table can be recreated without a remote
        from model.dataset import BUNDLED_FILE, write_bundled

        assert SPEC.path == BUNDLED_FILE, f"{SPEC.path} is missing: run `dvc pull` (or `mlops data`) first"
        write_bundled(target)
    return target


def raw_table() -> pd.DataFrame:
    """The table as the file holds it (label as text)."""
    from model.dataset import read_table

    if not DATA_FILE.exists():
        from model.dataset import bundled_frame

        return bundled_frame()
    return read_table(DATA_FILE)


def rows(n: int = 1) -> list[dict]:
    """The first `n` rows of the table as request instances: every feature, JSON-ready, no label."""
    frame = raw_table()[FEATURES].head(n).astype(object)
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
