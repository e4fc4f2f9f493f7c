"""One side of the PR report's comparison: a revision's metrics, params, data summary, lock and plot data.

The working tree is read from disk; a base revision from git, so the base needs no checkout.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from mlops.config import paths
from mlops.config.git import git
from mlops.report.compare import Predictions
from mlops.report.scores import flat_scores
from mlops.report.settings import task_of

PLOT_FILES = {
    "confusion": paths.CONFUSION,
    "roc": paths.ROC,
    "pr": paths.PR_CURVE,
    "training": paths.TRAINING_CURVES,
    "calibration": paths.CALIBRATION,
    "slices": paths.SLICES,
    "attributions": paths.ATTRIBUTIONS,
    "residuals": paths.RESIDUALS,
}


PR = "this PR"


@dataclass
class Side:
    """Everything the report compares, for one revision (`rev` None: the working tree)."""

    name: str
    rev: str | None
    sha: str
    metrics: dict | None
    params: dict
    data_md5: str | None
    lock: dict
    plots: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    predictions: Predictions | None = None

    @classmethod
    def load(cls, name: str, rev: str | None, sha: str) -> Side:
        def read(path: Path) -> str | None:
            if rev is None:
                return path.read_text() if path.exists() else None
            return git("show", f"{rev}:{path.as_posix()}", check=False)

        def parsed(path: Path) -> dict:
            text = read(path)
            return (yaml.safe_load(text) or {}) if text else {}

        metrics = read(paths.METRICS)
        outs = parsed(Path("data.dvc")).get("outs") or [{}]
        return cls(
            name=name,
            rev=rev,
            sha=sha,
            metrics=json.loads(metrics) if metrics else None,
            params=parsed(paths.PARAMS),
            data_md5=outs[0].get("md5"),
            lock=parsed(Path("dvc.lock")),
            plots={key: _frame(read(p)) for key, p in PLOT_FILES.items()},
            predictions=Predictions.parse(read(paths.PREDICTIONS)),
        )

    @property
    def scores(self) -> dict[str, float]:
        """The model's own metrics: the top-level numbers of metrics.json (not intervals, baselines...)."""
        return flat_scores(self.metrics or {})

    @property
    def task(self) -> str:
        return str(self.identity.get("task") or task_of(self.params))

    @property
    def identity(self) -> dict:
        """What the model predicts: metrics.json's `dataset`, else (older metrics) params.yaml's."""
        recorded = (self.metrics or {}).get("dataset")
        if recorded:
            return dict(recorded)
        data = self.params.get("data") or {}
        if not data:
            return {}
        task = task_of(self.params)
        identity = {"task": task, "label": data.get("label")}
        if task != "regression" and data.get("classes") is not None:
            identity["classes"] = [str(c) for c in data["classes"]]
        return identity

    def interval(self, metric: str, where: dict | None = None) -> tuple[float, float] | None:
        span = ((where if where is not None else self.metrics or {}).get("interval") or {}).get(metric)
        return (span["low"], span["high"]) if span else None


def _numbers(metrics: dict | None) -> dict:
    """metrics.json without its `dataset` record (main may predate it): what "metrics unchanged" means."""
    return {k: v for k, v in (metrics or {}).items() if k != "dataset"}


def _frame(text: str | None) -> pd.DataFrame | None:
    """A plot CSV; None when absent or header-only (a plot of the other task: roc for regression)."""
    if not text or not text.strip():  # no slices configured: an empty file
        return None
    frame = pd.read_csv(io.StringIO(text))
    return None if frame.empty else frame


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """{"train.lr": "0.003", ...}: nested params as dotted keys, leaves as compact JSON."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value)
    return flat


def params_diff(base: dict, pr: dict) -> list[tuple[str, str | None, str | None]]:
    old, new = flatten(base), flatten(pr)
    return [(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]


def changed_params(diff: list[tuple[str, str | None, str | None]]) -> str:
    """A few keys by name; many (a new section) by top-level section, so the line stays readable."""
    if len(diff) <= 4:
        return ", ".join(f"`{k}`" for k, _, _ in diff)
    sections: dict[str, int] = {}
    for key, _, _ in diff:
        sections[key.split(".")[0]] = sections.get(key.split(".")[0], 0) + 1
    return ", ".join(f"`{name}` ({n} key{'s' if n > 1 else ''})" for name, n in sections.items())


def changed_deps(base_lock: dict, pr_lock: dict) -> list[str]:
    """Files whose hash in dvc.lock differs (code and data the stages depend on), for "what changed"."""

    def deps(lock: dict) -> dict[str, str]:
        return {
            d["path"]: d.get("md5", "")
            for stage in (lock.get("stages") or {}).values()
            for d in stage.get("deps") or []
        }

    old, new = deps(base_lock), deps(pr_lock)
    return sorted(
        p for p in old.keys() | new.keys() if old.get(p) != new.get(p) and not p.startswith("artifacts")
    )


def data_summary(base: Side, label: str, classes: list) -> tuple[dict | None, dict | None]:
    """Rows and class balance of the PR's data (validation report) and of main's (same data, or DVC)."""
    validation = json.loads(paths.VALIDATION_REPORT.read_text()) if paths.VALIDATION_REPORT.exists() else None
    pr = (
        {"rows": validation["rows"], "class_balance": validation.get("class_balance")} if validation else None
    )
    if base.data_md5 is None:
        return None, pr
    if pr and base.data_md5 == Side.load(PR, None, "").data_md5:
        return pr, pr
    try:  # main's data from the local DVC cache or the remote; a reviewer can live without it
        import dvc.api

        data = base.params.get("data") or {}
        base_label = data.get("label", label)
        with dvc.api.open(data.get("path"), rev=base.rev, mode="rb") as fh:
            frame = (
                pd.read_parquet(fh)
                if str(data.get("path")).endswith((".parquet", ".pq"))
                else pd.read_csv(fh)
            )
        counts = frame[base_label].astype(str).value_counts()
        base_classes = [str(c) for c in data.get("classes", classes)]
        return {"rows": len(frame), "class_balance": {c: int(counts.get(c, 0)) for c in base_classes}}, pr
    except Exception:  # any failure (no cache, no remote, other schema) just means "unknown"
        return None, pr
