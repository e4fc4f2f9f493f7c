"""A different labelled table for "bring your own data" checks: sklearn's wine data (13 float columns, 3
classes, label `cultivar`, Parquet not CSV), put into a project copy with a data + params.yaml change only."""

from __future__ import annotations

from pathlib import Path

import yaml
from sklearn.datasets import load_wine

from tests.repo import sh

CLASSES = ["cultivar_0", "cultivar_1", "cultivar_2"]


def use_wine(repo: Path) -> dict:
    """Replace the project's data with the wine table, as a forker would; returns the new params."""
    wine = load_wine(as_frame=True)
    table = wine.frame.drop(columns="target").rename(columns=lambda c: c.replace("/", "_"))
    table["cultivar"] = [CLASSES[t] for t in wine.target]
    for old in (repo / "data").glob("*"):
        old.unlink()
    (repo / "data").mkdir(exist_ok=True)
    table.to_parquet(repo / "data/wine.parquet", index=False)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["name"] = "wine"
    params["data"] = {
        "path": "data/wine.parquet",
        "label": "cultivar",
        "classes": CLASSES,
        "features": {c: {"type": "float", "min": 0} for c in table.columns if c != "cultivar"},
    }
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["dvc", "add", "data"], repo)
    return params
