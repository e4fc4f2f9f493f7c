"""A different labelled table for "bring your own data" checks: sklearn's wine data (13 float columns, 3
classes, label `cultivar`, Parquet not CSV), put into a project copy with a data + params.yaml change only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from sklearn.datasets import load_wine

from tests.repo import sh

CLASSES = ["cultivar_0", "cultivar_1", "cultivar_2"]


def swap_table(repo: Path, table: pd.DataFrame, file: str, name: str, data: dict) -> dict:
    """Put `table` as the project's only data file (CSV or Parquet by `file`'s suffix) and point params.yaml
    `name` and `data:` at it, as a forker would; returns the new params (not yet `dvc add`ed)."""
    (repo / "data").mkdir(exist_ok=True)
    for old in (repo / "data").glob("*"):
        old.unlink()
    path = repo / "data" / file
    table.to_parquet(path, index=False) if path.suffix == ".parquet" else table.to_csv(path, index=False)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["name"] = name
    params["data"] = {"path": f"data/{file}", **data}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def use_wine(repo: Path) -> dict:
    """Replace the project's data with the wine table, as a forker would; returns the new params."""
    wine = load_wine(as_frame=True)
    table = wine.frame.drop(columns="target").rename(columns=lambda c: c.replace("/", "_"))
    table["cultivar"] = [CLASSES[t] for t in wine.target]
    features = {c: {"type": "float", "min": 0} for c in table.columns if c != "cultivar"}
    params = swap_table(
        repo, table, "wine.parquet", "wine", {"label": "cultivar", "classes": CLASSES, "features": features}
    )
    sh(["dvc", "add", "data"], repo)
    return params
