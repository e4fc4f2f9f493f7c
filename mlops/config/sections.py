"""The sections of params.yaml as frozen dataclasses: every default is written here, once, and equals
params.yaml's value.

`build` turns a section's mapping into its dataclass and refuses a key the class does not declare, naming
the closest valid one: a typo (`train.max_epoch`) must stop the run, not train with the default. Adding a
setting means a field here plus its line in params.yaml; the code that uses it reads the attribute.
Mappings whose keys are the user's own (metric names, column weights, a class's keyword arguments) are
plain dicts inside the dataclass.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from datetime import timedelta
from typing import Any

from mlops.config.errors import UserError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ParamsError(UserError, ValueError):
    """params.yaml says something the pipeline cannot do; the message names the key."""


def duration(text: Any, where: str = "duration") -> timedelta | None:
    """'90s', '30m', '12h', '7d', '2w' or a number of seconds -> timedelta; None, '', 'all' -> None."""
    if text is None or str(text).strip().lower() in ("", "all", "none"):
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text).lower())
    if not match:
        raise ParamsError(f"params.yaml: {where}: {text!r} is not a duration like 30m, 12h, 7d or 2w")
    return timedelta(**{_UNITS[match[2] or "s"]: float(match[1])})


# Keys that moved into a class's arguments: the hint names the new place.
MOVED = {
    "train.hidden": "model.hidden",
    "train.dropout": "model.dropout",
    "train.lr": "optimizer.lr",
    "train.weight_decay": "optimizer.weight_decay",
}


def unknown_key(where: str, key: Any, valid: list[str]) -> ParamsError:
    """One line: the key as written and the closest valid one (or the valid ones)."""
    close = [MOVED[f"{where}.{key}"]] if f"{where}.{key}" in MOVED else []
    close = close or difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"valid: {', '.join(valid) or 'none'}"
    return ParamsError(f"params.yaml: unknown key {where}.{key}; {hint}")


def _default(f) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def build(cls: type, values: Any, where: str) -> Any:
    """The dataclass `cls` from a section of params.yaml; a nested dataclass default makes a nested
    section, checked the same way; a `Component` default makes a `{class: ..., kwargs}` section."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ParamsError(f"params.yaml: {where} must be a mapping; got {values!r}")
    declared = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in declared:
            raise unknown_key(where, key, list(declared))
    given = {}
    for name, value in values.items():
        default = _default(declared[name])
        if isinstance(default, Component):
            given[name] = Component.parse(value, default, f"{where}.{name}")
        elif is_dataclass(default) and (value is None or isinstance(value, dict)):
            given[name] = build(type(default), value, f"{where}.{name}")
        else:
            given[name] = value
    try:
        return cls(**given)
    except (TypeError, ValueError) as err:
        if isinstance(err, ParamsError):
            raise
        raise ParamsError(f"params.yaml: {where}: {err}") from None


def as_dict(section: Any) -> dict[str, Any]:
    """A section as plain data (for MLflow params, hashing, or rules that also read main's raw file)."""
    return asdict(section)


@dataclass(frozen=True)
class Component:
    """`{class: dotted.Name, key: value, ...}`: a class named in params.yaml and its keyword arguments.
    Without `class`, the default's class and its arguments, overridden key by key."""

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, default: Component, where: str) -> Component:
        if isinstance(value, str):
            value = {"class": value}
        if not isinstance(value, dict):
            raise ParamsError(f"params.yaml: {where} must be a mapping such as {{class: {default.target}}}")
        kwargs = {str(k): v for k, v in value.items() if k != "class"}
        target = str(value.get("class") or default.target)
        if target == default.target:
            kwargs = {**default.kwargs, **kwargs}
        return cls(target, kwargs)

    def resolve(self, where: str) -> Any:
        """The named class (or function): `module.Name`, imported."""
        import importlib

        module, _, name = self.target.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as err:
            raise ParamsError(f"params.yaml: {where}.class: cannot import {self.target!r} ({err})") from None

    def checked_kwargs(self, where: str, target: Any, reserved: tuple[str, ...] = ()) -> dict[str, Any]:
        """The keyword arguments, each one a parameter of `target` (else a one-line error naming it)."""
        import inspect

        signature = inspect.signature(target)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        valid = [n for n in signature.parameters if n not in ("self", *reserved)]
        for key in self.kwargs:
            if key in reserved or (key not in valid and not accepts_any):
                raise unknown_key(where, key, valid)
        return dict(self.kwargs)

    def updated(self, **kwargs: Any) -> Component:
        """The same class with some arguments changed (a benchmark's or a test's variant)."""
        return Component(self.target, {**self.kwargs, **kwargs})

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.target, **self.kwargs}


@dataclass(frozen=True)
class Split:
    test_size: float = 0.2  # share of all rows held out for the test metrics
    val_size: float = 0.2  # share of all rows for validation during training


@dataclass(frozen=True)
class Train:
    # the LightningModule (or a network builder) and its keyword arguments: model/build.py
    model: Component = field(default_factory=lambda: Component("model.net.LitTabular"))
    # engineered features compiled into the exported model: model/features.py
    features: Component = field(default_factory=lambda: Component("model.features.Features"))
    optimizer: Component = field(
        default_factory=lambda: Component("torch.optim.AdamW", {"lr": 0.003, "weight_decay": 0.0001})
    )
    batch_size: int = 64  # the global batch, split between the training processes
    max_epochs: int = 40
    # none | auto | {label: weight}. Not `auto` by default: on a 12%-positive table inverse-frequency
    # weights raised the minority recall (0.44 -> 0.86) but cost accuracy below the majority-class model
    # (0.829 vs 0.880, `none` 0.904) and calibration (ECE 0.146 vs 0.020): benchmarks/class_weights.py.
    class_weights: Any = "none"
    accelerator: str = "cpu"  # Lightning Trainer placement, passed as is
    devices: Any = 1  # a count, a list of GPU indices, or auto
    strategy: str = "auto"
    num_nodes: int = 1
    threads: Any = "auto"  # torch CPU threads per process: auto | N (model/threads.py)

    def placement(self) -> dict[str, Any]:
        """The Trainer's hardware arguments; `devices` may be a count, a list or "auto"."""
        devices = self.devices
        if isinstance(devices, str) and devices.strip().isdigit():
            devices = int(devices)
        return {
            "accelerator": str(self.accelerator),
            "devices": devices,
            "strategy": str(self.strategy),
            "num_nodes": int(self.num_nodes),
        }

    def flat(self) -> dict[str, Any]:
        """Dotted keys for MLflow params: `model.hidden`, `optimizer.lr`, `max_epochs`, ..."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Component):
                out.update({f"{f.name}.{k}": v for k, v in value.as_dict().items()})
            else:
                out[f.name] = value
        return out


@dataclass(frozen=True)
class GateTables:
    min: Any = field(default_factory=dict)  # floors, or "auto" (derived from the baselines)
    max: dict[str, float] = field(default_factory=dict)
    max_regression: dict[str, float] = field(default_factory=dict)
    derived: dict[str, Any] | None = None
    require_significant: Any = None  # None: as the top level says


@dataclass(frozen=True)
class Gates:
    # Metric tables are the project's own data, not settings: empty unless params.yaml fills them.
    min: Any = field(default_factory=dict)  # absolute floors on the test metrics, or "auto"
    max_regression: dict[str, float] = field(default_factory=dict)  # largest allowed worsening
    max: dict[str, float] = field(default_factory=dict)  # ceilings
    derived: dict[str, Any] | None = None
    require_significant: Any = True  # true/false or {metric: bool}
    regression: GateTables = field(default_factory=GateTables)  # task: regression's tables

    def rules(self) -> dict[str, Any]:
        """The section as mlops/report/gates.py reads it (it reads main's params.yaml the same way); unset
        nested keys left out."""
        out = {k: v for k, v in asdict(self).items() if v is not None}
        out["regression"] = {k: v for k, v in out["regression"].items() if v is not None}
        return out


@dataclass(frozen=True)
class Baseline:
    metric: str = "roc_auc"
    margin: float = 0.0


@dataclass(frozen=True)
class Report:
    resamples: int = 2000
    confidence: float = 0.95
    bootstrap_seed: int = 0
    min_rows: int = 20
    min_positives: int = 5
    slice_error: float = 0.025
    seeds: Any = "auto"  # auto | 0..20
    baseline: Baseline = field(default_factory=Baseline)
    slices: list[dict[str, Any]] = field(default_factory=list)  # columns are the dataset's: none by default
    slice_metrics: list[str] = field(default_factory=lambda: ["accuracy", "recall", "roc_auc"])
    top_k: int = 8
    ig_steps: int = 32
    max_rows: int = 10000
    ig_rows: int = 1000
    baseline_rows: int = 100000
    plot_points: int = 200
    max_cells: int = 300000
    max_classes: int = 20


@dataclass(frozen=True)
class Mlflow:
    experiment: str | None = None  # None: the top-level `name`
    registered_model: str | None = None  # None: <name>-classifier or <name>-regressor


@dataclass(frozen=True)
class Serve:
    runtime: str = "torchserve"  # torchserve | kserve
    model_name: str | None = None  # None: the top-level `name`
    workers: int = 1
    kserve_workers: int = 2
    batch_size: int = 8
    max_batch_delay: int = 2
    response_timeout: int = 30
    max_batch_rows: int = 1024
    metrics_min_rows: int = 100
    inference_log_dir: str = "logs/inference"
    inference_log_rotate_mb: float = 64
    inference_log_rotate_age: Any = "1h"
    inference_log_keep_files: int = 48
    inference_log_compress: bool = True

    def __post_init__(self) -> None:
        duration(self.inference_log_rotate_age, "serve.inference_log_rotate_age")  # fails on load

    @property
    def rotate_seconds(self) -> float:
        age = duration(self.inference_log_rotate_age, "serve.inference_log_rotate_age")
        return age.total_seconds() if age else 0.0


@dataclass(frozen=True)
class Rejections:
    max_rate: float = 0.05
    min_requests: int = 20


@dataclass(frozen=True)
class Prediction:
    probabilities: bool = True


@dataclass(frozen=True)
class Performance:
    min_rows: int = 50
    metrics: list[str] | None = None  # None: every gates.max_regression metric production computes
    baseline: str = "eval/metrics.json"
    confidence: float | None = 0.95
    bucket: str = "1d"
    label_horizon: Any = "14d"

    def __post_init__(self) -> None:
        duration(self.bucket, "monitoring.performance.bucket")
        duration(self.label_horizon, "monitoring.performance.label_horizon")


@dataclass(frozen=True)
class StatTests:
    """Per column type; auto = Evidently's pick."""

    numerical: str | None = "ks"
    categorical: str | None = "two_sample_chi2"  # monitoring/categorical.py


@dataclass(frozen=True)
class Thresholds:
    """Per column type; None = the test's default."""

    numerical: float | None = 0.05
    categorical: float | None = None


@dataclass(frozen=True)
class Pr:
    branch_prefix: str = "retrain/"
    base: str = "main"
    top_features: int = 10


@dataclass(frozen=True)
class Monitoring:
    inference_log: str | None = None  # None: serve.inference_log_dir
    window: Any = "7d"
    min_rows: int = 100
    max_rows: int | None = 100000
    columns: list[str] | None = None  # None: all of data.features
    drift_share: float = 0.5
    weights: dict[str, float] = field(default_factory=dict)
    critical: list[str] = field(default_factory=list)
    critical_p_value: float = 0.01
    missing_increase: float = 0.05
    rejections: Rejections = field(default_factory=Rejections)
    staleness: Any = "2d"
    stattest: StatTests = field(default_factory=StatTests)
    threshold: Thresholds = field(default_factory=Thresholds)
    retrain_on: list[str] = field(default_factory=lambda: ["features", "performance"])
    prediction: Prediction = field(default_factory=Prediction)
    performance: Performance = field(default_factory=Performance)
    feedback: str = "feedback"
    report_dir: str = "reports/drift"
    pr: Pr = field(default_factory=Pr)

    def __post_init__(self) -> None:
        duration(self.window, "monitoring.window")
        duration(self.staleness, "monitoring.staleness")
