"""Typed access to params.yaml: the single source of configuration for every stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops import paths


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    dtype: str = "float"  # "float" or "int"
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class DataSpec:
    """The schema of the training table: swapping datasets means editing this, not code."""

    path: Path
    label: str
    classes: list[Any]
    features: list[FeatureSpec]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True)
class Params:
    raw: dict[str, Any]
    seed: int
    data: DataSpec
    split: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    mlflow: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """Any other top-level section (serve, monitoring, ...), empty if absent."""
        return dict(self.raw.get(name) or {})


def _feature(name: str, spec: dict[str, Any] | None) -> FeatureSpec:
    spec = spec or {}
    dtype = str(spec.get("dtype", "float"))
    if dtype not in ("float", "int"):
        raise ValueError(f"params.yaml: data.features.{name}.dtype must be 'float' or 'int', got {dtype!r}")
    return FeatureSpec(name=name, dtype=dtype, min=spec.get("min"), max=spec.get("max"))


def load_params(path: str | Path = paths.PARAMS) -> Params:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    data = raw.get("data") or {}
    missing = [k for k in ("path", "label", "classes", "features") if k not in data]
    if missing:
        raise ValueError(f"params.yaml: data section lacks {', '.join(missing)}")
    spec = DataSpec(
        path=Path(data["path"]),
        label=str(data["label"]),
        classes=list(data["classes"]),
        features=[_feature(str(n), s) for n, s in data["features"].items()],
    )
    if len(spec.classes) < 2:
        raise ValueError("params.yaml: data.classes needs at least two labels")
    return Params(
        raw=raw,
        seed=int(raw.get("seed", 0)),
        data=spec,
        split=dict(raw.get("split") or {}),
        train=dict(raw.get("train") or {}),
        gates=dict(raw.get("gates") or {}),
        mlflow=dict(raw.get("mlflow") or {}),
    )
