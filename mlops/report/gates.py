"""Quality gates from params.yaml, shared by the PR check (baseline: main) and promotion (baseline: champion).

`min` sets absolute floors. `max_regression` caps the drop against a baseline; it is skipped, and
says so, when there is no baseline yet (the first PR, the first promotion).

Noise-aware regression gates: with `require_significant` (the default, per gate or for all) a drop
fails only when it is larger than allowed AND the interval of the change excludes zero. On a 114-row
test split the 0.02 accuracy threshold is about two rows, so without this a retrain with another seed
fails by chance (docs/report.md measures how often).
Where no interval exists (promotion against the registry, main without per-row predictions) the gate
falls back to the threshold alone and says so.

By task (`task_gates`): a regression model by the rmse/mae/r2 entries and `gates.regression`, a
classifier by the other entries. `min`
is a floor and `max` a ceiling; `max_regression` is the allowed worsening in the metric's own direction
(a rise for RMSE/MAE/log loss, a drop for the others). For more than two classes the classification
metrics are macro averages (f1 = macro F1, roc_auc = one-vs-rest macro), so the same gates apply.

A swapped dataset (another task, label or classes than the baseline: `swap_reason`) has no comparable
baseline: its regression gates are skipped and say why, the floors still apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlops.report.uncertainty import KNOWN, LOWER_IS_BETTER, REGRESSION_METRICS, Interval


@dataclass(frozen=True)
class GateResult:
    name: str  # e.g. "min accuracy" or "max regression roc_auc"
    metric: str
    value: float | None
    limit: float | None
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.detail}"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def needs_significance(gates: dict, metric: str) -> bool:
    """`gates.require_significant`: true/false for every max_regression gate, or {metric: bool, ...}
    (metrics left out: true). Absent: true."""
    rule = gates.get("require_significant", True)
    if isinstance(rule, dict):
        return bool(rule.get(metric, True))
    return bool(rule)


def task_gates(gates: dict, task: str) -> dict:
    """The gates for a task. Top-level `min`/`max`/`max_regression` entries apply to the task their
    metric belongs to (rmse, mae, r2: regression; the rest: classification), and for regression the
    `gates.regression` section adds to them (and wins), so one params.yaml can carry both tasks' gates
    or a regression project can simply name its metrics at the top level."""
    regression = task == "regression"
    nested = dict(gates.get("regression") or {}) if regression else {}
    chosen: dict = {}
    for key in ("min", "max", "max_regression"):
        top = {m: v for m, v in _table(gates.get(key)).items() if (m in REGRESSION_METRICS) == regression}
        merged = {**top, **_table(nested.get(key))}
        if merged:
            chosen[key] = merged
    chosen["require_significant"] = nested.get("require_significant", gates.get("require_significant", True))
    return chosen


def _table(value) -> dict:
    """A gates table; `auto` (floors derived from the baselines) or nothing: none."""
    return dict(value) if isinstance(value, dict) else {}


def infer_task(metrics: dict) -> str:
    """A metrics dict's task: its `dataset.task` (eval/metrics.json), else regression when it holds rmse
    and no accuracy (the flat metrics a registry version carries)."""
    task = ((metrics or {}).get("dataset") or {}).get("task")
    if task:
        return str(task)
    return (
        "regression" if "rmse" in (metrics or {}) and "accuracy" not in (metrics or {}) else "classification"
    )


def swap_reason(candidate: dict | None, baseline: dict | None) -> str | None:
    """Why two models are not comparable (another task, label or classes), or None. Each side is a
    `dataset` identity of eval/metrics.json; an unknown side (None: from before identities) is taken
    as comparable, as it always was."""
    if not candidate or not baseline:
        return None
    changes = []
    for key in ("task", "label", "classes"):
        old, new = baseline.get(key), candidate.get(key)
        if old is None or new is None or old == new:
            continue
        if key == "classes":
            changes.append(f"the classes changed ({', '.join(map(str, old))} → {', '.join(map(str, new))})")
        else:
            changes.append(f"the {key} changed ({old} → {new})")
    return "; ".join(changes) or None


def recorded_identity(record: dict | None) -> dict | None:
    """The `dataset` identity a metrics.json document holds, or a registry version's tags (as JSON)."""
    value = (record or {}).get("dataset")
    if isinstance(value, str):
        return json.loads(value) if value else None
    return dict(value) if value else None


def _span(delta: Interval) -> str:
    return f"{delta.low:+.4f}…{delta.high:+.4f}"


def check_gates(
    candidate: dict,
    baseline: dict | None,
    gates: dict,
    baseline_name: str = "main",
    deltas: dict[str, Interval | None] | None = None,
    delta_kind: str = "paired",
    confidence: float = 0.95,
    task: str | None = None,
    no_baseline: str | None = None,
    baselines: dict | None = None,
    floors_set: bool = False,
) -> list[GateResult]:
    """`deltas`: per metric, the interval of (candidate - baseline); `delta_kind` names how it was made.
    `task`: which gates apply (default: inferred from `candidate`); `no_baseline`: why the baseline is
    not comparable (a swapped dataset): regression gates are then skipped with that reason.
    `baselines`: the candidate's `baseline` section of eval/metrics.json. Given, the absolute floors are
    replaced by floors derived from those baselines (`derived_floors`) when `gates.min` is `auto`, or on
    a swapped dataset unless `floors_set` (the floors were set for the new table in the same change)."""
    task = task or infer_task(candidate)
    raw = gates
    derive = baselines is not None and (floors_are_auto(raw, task) or (no_baseline and not floors_set))
    gates = task_gates(without_floors(raw) if derive else raw, task)
    if no_baseline:
        baseline = None
    results: list[GateResult] = derived_floors(candidate, baselines, raw, task, confidence) if derive else []
    limits = [(m, v, None) for m, v in (gates.get("min") or {}).items()]
    limits += [(m, v, "max") for m, v in (gates.get("max") or {}).items()]
    for metric, floor, side in limits:
        value = candidate.get(metric)
        lower = side == "max" or (side is None and metric in LOWER_IS_BETTER)  # `min` of rmse: a ceiling
        name = f"{'max' if lower else 'min'} {metric}"
        if value is None:
            results.append(GateResult(name, metric, None, floor, False, "metric missing"))
            continue
        ok = value <= floor if lower else value >= floor
        op = "<=" if lower else ">="
        gap = "" if ok else f" ({'over' if lower else 'short'} by {abs(value - floor):.4f})"
        results.append(GateResult(name, metric, value, floor, ok, f"{_fmt(value)} {op} {floor}{gap}"))
    for metric, allowed in (gates.get("max_regression") or {}).items():
        significant = needs_significance(gates, metric)
        name = f"max regression {metric}"
        value = candidate.get(metric)
        base = (baseline or {}).get(metric)
        if value is None and base is None and metric in KNOWN:  # metrics written before it was measured
            why = f"skipped: neither this model nor {baseline_name} reports {metric} (an older evaluate)"
            results.append(GateResult(name, metric, None, allowed, True, why))
            continue
        if value is None:
            results.append(GateResult(name, metric, None, allowed, False, "metric missing"))
            continue
        if base is None:
            why = (
                f"no comparable {baseline_name} baseline: {no_baseline}"
                if no_baseline
                else f"no {baseline_name} baseline"
            )
            results.append(GateResult(name, metric, value, allowed, True, f"skipped: {why}"))
            continue
        lower = metric in LOWER_IS_BETTER
        drop = (value - base) if lower else (base - value)
        over = drop > allowed + 1e-12
        worse, better = ("rise", "fall") if lower else ("drop", "gain")
        word = worse if drop > 0 else better
        detail = f"{_fmt(value)} vs {baseline_name} {_fmt(base)}: {word} {abs(drop):.4f}, allowed {allowed}"
        if over:
            detail += f" (over by {drop - allowed:.4f})"
        ok = not over
        delta = (deltas or {}).get(metric)
        if significant and delta is None:
            detail += f"; no {delta_kind} interval: threshold only" if deltas is not None else ""
        elif significant:
            beyond = delta.low > 0 if lower else delta.high < 0  # the change is a drop, beyond noise
            ok = not (over and beyond)
            noise = "beyond noise" if beyond else "within noise"
            detail += f"; Δ {confidence:.0%} CI {_span(delta)} ({delta_kind}): {noise}"
            if over and not beyond:
                detail += ", passes"
        results.append(GateResult(name, metric, value, allowed, ok, detail))
    return results


DERIVED = {
    "classification": {"accuracy": "majority_class", "roc_auc": "logistic_regression"},
    "regression": {"rmse": "linear_regression"},
}


def derived_rule(gates: dict, task: str) -> tuple[dict[str, str], float]:
    """`gates.derived` (regression: `gates.regression.derived`): {metrics: {metric: baseline}, margin}.
    Default: a classifier must not fall below the majority class on accuracy nor the logistic regression
    on ROC AUC; a regression model not above the linear regression's RMSE; margin 0."""
    section = (gates.get("regression") or {}) if task == "regression" else gates
    rule = dict(section.get("derived") or gates.get("derived") or {})
    metrics = rule.get("metrics") or DERIVED["regression" if task == "regression" else "classification"]
    return {str(m): str(b) for m, b in metrics.items()}, float(rule.get("margin", 0.0))


def floors_are_auto(gates: dict, task: str) -> bool:
    """`gates.min: auto`: the floors always come from the baselines (a table without fixed floors)."""
    section = (gates.get("regression") or {}) if task == "regression" else gates
    return section.get("min") == "auto" or gates.get("min") == "auto"


def without_floors(gates: dict) -> dict:
    """The gates less their absolute floors and ceilings (`min`, `max`, here and under `regression`)."""
    out = {k: v for k, v in gates.items() if k not in ("min", "max")}
    if isinstance(gates.get("regression"), dict):
        out["regression"] = {k: v for k, v in gates["regression"].items() if k not in ("min", "max")}
    return out


def derived_floors(
    candidate: dict, baselines: dict | None, gates: dict, task: str, confidence: float = 0.95
) -> list[GateResult]:
    """Floors that fit any table: each metric of `gates.derived` must not be worse than a baseline that
    `evaluate` fitted on the same split (majority class, logistic or linear regression) by more than
    `margin` the wrong way. Noise-aware like the regression gates: with `require_significant` a model
    below its floor fails only when the paired interval of (model - baseline) that evaluate wrote
    (`baseline.<name>.delta_interval`) says it is worse beyond noise."""
    metrics, margin = derived_rule(gates, task)
    results = []
    for metric, name in metrics.items():
        base = ((baselines or {}).get(name) or {}).get(metric)
        value = candidate.get(metric)
        said = name.replace("_", " ")
        label = f"{'max' if metric in LOWER_IS_BETTER else 'min'} {metric} (derived: {said})"
        if value is None or base is None:
            missing = f"no {said} baseline to derive from"
            results.append(GateResult(label, metric, value, None, False, missing))
            continue
        lower = metric in LOWER_IS_BETTER
        floor = base - margin if lower else base + margin
        short = (value - floor) if lower else (floor - value)
        op = "<=" if lower else ">="
        detail = f"{_fmt(value)} {op} {said} {_fmt(base)}" + (
            f" {'-' if lower else '+'} {margin}" if margin else ""
        )
        ok = short <= 1e-12
        if not ok:
            detail += f" ({'over' if lower else 'short'} by {short:.4f})"
            span = (((baselines or {}).get(name) or {}).get("delta_interval") or {}).get(metric)
            if needs_significance(gates, metric) and span is not None:
                edge = -span["low"] if lower else span["high"]  # the best the model could be vs the baseline
                beyond = edge < margin
                ok = not beyond
                detail += (
                    f"; vs {said} {confidence:.0%} CI {span['low']:+.4f}…{span['high']:+.4f}"
                    f" (paired): {'beyond noise' if beyond else 'within noise, passes'}"
                )
        results.append(GateResult(label, metric, value, floor, ok, detail))
    return results


def all_passed(results: list[GateResult]) -> bool:
    return all(r.passed for r in results)


def floors_changed(base: dict, pr: dict) -> bool:
    """Whether this change sets the absolute floors itself (`gates.min`/`max`, or under `regression`):
    then they were written for this table and apply even on a dataset swap."""

    def floors(params: dict) -> list:
        gates = params.get("gates") or {}
        nested = gates.get("regression") or {}
        return [gates.get("min"), gates.get("max"), nested.get("min"), nested.get("max")]

    return floors(base) != floors(pr)
