"""Typed access to params.yaml: the single source of configuration for every stage.

A mistake in the schema (an unknown type, a typo in a key) is a `ParamsError`: the CLI prints it as one
line naming the key, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mlops.config import paths
from mlops.config.sections import (
    Gates,
    Mlflow,
    Monitoring,
    ParamsError,
    Report,
    Serve,
    Split,
    Train,
    build,
    unknown_key,
)

TYPES = ("float", "int", "category", "bool", "date", "datetime")
MISSING = ("error", "drop_row", "impute")
LABEL_MISSING = ("drop_row", "error")  # an unlabelled row teaches nothing: dropped (and counted) by default
IMPUTE = ("median", "most_frequent", "constant")
TASKS = ("classification", "regression")
FEATURE_KEYS = ("type", "min", "max", "categories", "missing", "impute", "fill_value")
DATA_KEYS = ("path", "label", "classes", "features", "missing", "impute", "label_missing", "sep", "encoding")
TOP_KEYS = (
    "seed",
    "name",
    "task",
    "data",
    "split",
    "train",
    "gates",
    "report",
    "mlflow",
    "serve",
    "monitoring",
)
__all__ = ["DataSpec", "FeatureSpec", "Params", "ParamsError", "load_params"]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    type: str = "float"  # float | int | category | bool | date | datetime
    min: float | None = None
    max: float | None = None
    categories: tuple | None = None  # category: the declared vocabulary; None = learned from train
    missing: str = "error"  # error | drop_row | impute
    impute: str = "median"  # median | most_frequent | constant
    fill_value: Any = None  # impute: constant

    @property
    def numeric(self) -> bool:
        """Read as a number (a date is read as text, then parsed: mlops/config/values.py)."""
        return self.type in ("float", "int")

    @property
    def temporal(self) -> bool:
        return self.type in ("date", "datetime")


@dataclass(frozen=True)
class DataSpec:
    """The schema of the training table: swapping datasets means editing this, not code."""

    path: Path
    label: str
    classes: list[Any]
    features: list[FeatureSpec]
    task: str = "classification"
    label_missing: str = "drop_row"  # a row without a label: drop_row (counted) | error
    sep: str = ","  # CSV field separator
    encoding: str = "utf8"  # CSV text encoding (any Python codec name: latin-1, cp1252, utf-16, ...)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def regression(self) -> bool:
        return self.task == "regression"


@dataclass(frozen=True)
class Params:
    """params.yaml, typed: one frozen dataclass per section (mlops/config/sections.py holds their defaults).
    `raw` is the file as read, for rules that compare it with another revision's file
    (mlops/report/gates.py)."""

    raw: dict[str, Any]
    seed: int
    data: DataSpec
    split: Split = field(default_factory=Split)
    train: Train = field(default_factory=Train)
    gates: Gates = field(default_factory=Gates)
    report: Report = field(default_factory=Report)
    mlflow: Mlflow = field(default_factory=Mlflow)
    serve: Serve = field(default_factory=Serve)
    monitoring: Monitoring = field(default_factory=Monitoring)
    name: str = "model"
    task: str = "classification"


def _choice(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    text = str(value)
    if text not in allowed:
        raise ParamsError(f"params.yaml: {where} must be one of {', '.join(allowed)}; got {value!r}")
    return text


def _number(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParamsError(f"params.yaml: {where} must be a number; got {value!r}")
    return value


def _feature(name: str, spec: Any, missing: str, impute: str) -> FeatureSpec:
    where = f"data.features.{name}"
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ParamsError(f"params.yaml: {where} must be a mapping such as {{type: float}}; got {spec!r}")
    for key in spec:
        if key not in FEATURE_KEYS:
            raise unknown_key(where, key, list(FEATURE_KEYS))
    kind = _choice(f"{where}.type", spec.get("type", "float"), TYPES)
    categories = spec.get("categories")
    if categories is not None:
        if kind != "category":
            raise ParamsError(f"params.yaml: {where}.categories is only for type: category (type is {kind})")
        if not isinstance(categories, list) or not categories:
            raise ParamsError(f"params.yaml: {where}.categories must be a non-empty list; got {categories!r}")
        texts = [str(c) for c in categories]
        if len(set(texts)) != len(texts):
            raise ParamsError(f"params.yaml: {where}.categories lists a value twice: {categories!r}")
        categories = tuple(texts)
    bounds = {k: _number(f"{where}.{k}", spec.get(k)) for k in ("min", "max")}
    if kind not in ("float", "int") and any(v is not None for v in bounds.values()):
        raise ParamsError(
            f"params.yaml: {where}: min/max are only for float and int columns (type is {kind})"
        )
    policy = _choice(f"{where}.missing", spec.get("missing", missing), MISSING)
    strategy = _choice(f"{where}.impute", spec.get("impute", impute), IMPUTE)
    if kind in ("category", "bool") and "impute" not in spec and strategy == "median":
        strategy = "most_frequent"  # a median of labels or flags means nothing: the data default adapts
    if kind == "category" and strategy == "median":
        raise ParamsError(
            f"params.yaml: {where}.impute: median needs a number; use most_frequent or constant"
        )
    fill = spec.get("fill_value")
    if policy == "impute" and strategy == "constant" and fill is None:
        raise ParamsError(f"params.yaml: {where}: impute: constant needs a fill_value")
    if fill is not None and kind in ("float", "int") and _number(f"{where}.fill_value", fill) is None:
        raise ParamsError(f"params.yaml: {where}.fill_value must be a number")
    if fill is not None and kind == "bool" and not isinstance(fill, bool):
        raise ParamsError(f"params.yaml: {where}.fill_value must be true or false; got {fill!r}")
    if fill is not None and kind in ("date", "datetime"):
        from mlops.config import values

        try:
            values.days(str(fill), kind)
        except values.Invalid:
            raise ParamsError(
                f"params.yaml: {where}.fill_value must be an ISO 8601 {kind}; got {fill!r}"
            ) from None
    return FeatureSpec(name, kind, bounds["min"], bounds["max"], categories, policy, strategy, fill)


def _data(data: Any, task: str) -> DataSpec:
    if not isinstance(data, dict):
        raise ParamsError("params.yaml: the data section is missing or not a mapping")
    for key in data:
        if key not in DATA_KEYS:
            raise unknown_key("data", key, list(DATA_KEYS))
    needed = ["path", "label", "features"] + (["classes"] if task == "classification" else [])
    absent = [k for k in needed if k not in data]
    if absent:
        raise ParamsError(f"params.yaml: data section lacks {', '.join(absent)}")
    features = data["features"]
    if not isinstance(features, dict) or not features:
        raise ParamsError("params.yaml: data.features must map each feature column to its schema")
    missing = _choice("data.missing", data.get("missing", "error"), MISSING)
    impute = _choice("data.impute", data.get("impute", "median"), IMPUTE)
    classes = list(data.get("classes") or [])
    if task == "classification":
        if len(classes) < 2:
            raise ParamsError("params.yaml: data.classes needs at least two labels")
        if len({str(c) for c in classes}) != len(classes):
            raise ParamsError(f"params.yaml: data.classes lists a label twice: {classes!r}")
    elif classes:
        raise ParamsError("params.yaml: data.classes is for task: classification; remove it for regression")
    label = str(data["label"])
    if label in map(str, features):
        raise ParamsError(f"params.yaml: data.label {label!r} is also listed in data.features")
    sep = data.get("sep", ",")
    if not isinstance(sep, str) or len(sep) != 1 or sep in '\r\n"':
        raise ParamsError(
            f"params.yaml: data.sep must be one character such as ',' ';' or '\\t'; got {sep!r}"
        )
    encoding = str(data.get("encoding") or "utf8")
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ParamsError(f"params.yaml: data.encoding {encoding!r} is not a known text encoding") from None
    return DataSpec(
        path=Path(data["path"]),
        label=label,
        classes=classes,
        features=[_feature(str(n), s, missing, impute) for n, s in features.items()],
        task=task,
        label_missing=_choice("data.label_missing", data.get("label_missing", "drop_row"), LABEL_MISSING),
        sep=sep,
        encoding=encoding,
    )


# libyaml's safe loader when PyYAML has it: the same documents, parsed in milliseconds instead of the
# pure-Python parser's half second (every stage and `mlops report` read params.yaml)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_params(path: str | Path = paths.PARAMS) -> Params:
    """Read and check params.yaml. Names not set in `mlflow` and `serve` derive from the top-level `name`."""
    try:
        raw = yaml.load(Path(path).read_text(), Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections")
    for key in raw:
        if key not in TOP_KEYS:
            raise unknown_key("params", key, list(TOP_KEYS))
    task = _choice("task", raw.get("task", "classification"), TASKS)
    name = str(raw.get("name") or "model")
    mlflow = build(Mlflow, raw.get("mlflow"), "mlflow")
    kind = "regressor" if task == "regression" else "classifier"
    mlflow = replace(
        mlflow,
        experiment=str(mlflow.experiment or name),
        registered_model=str(mlflow.registered_model or f"{name}-{kind}"),
    )
    serve = build(Serve, raw.get("serve"), "serve")
    return Params(
        raw=raw,
        seed=int(raw.get("seed", 0)),
        data=_data(raw.get("data"), task),
        split=build(Split, raw.get("split"), "split"),
        train=build(Train, raw.get("train"), "train"),
        gates=build(Gates, raw.get("gates"), "gates"),
        report=build(Report, raw.get("report"), "report"),
        mlflow=mlflow,
        serve=replace(serve, model_name=str(serve.model_name or name)),
        monitoring=build(Monitoring, raw.get("monitoring"), "monitoring"),
        name=name,
        task=task,
    )
