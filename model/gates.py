"""Quality gates from params.yaml, shared by the PR check (baseline: main) and promotion (baseline: champion).

`min` sets absolute floors. `max_regression` caps the drop against a baseline; it is skipped, and
says so, when there is no baseline yet (the first PR, the first promotion).

Noise-aware regression gates: with `require_significant` (the default, per gate or for all) a drop
fails only when it is larger than allowed AND the interval of the change excludes zero. On a 114-row
test split the 0.02 accuracy threshold is about two rows, so without this a retrain with another seed
fails by chance (docs/review.md measures how often).
Where no interval exists (promotion against the registry, main without per-row predictions) the gate
falls back to the threshold alone and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.uncertainty import LOWER_IS_BETTER, Interval


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
) -> list[GateResult]:
    """`deltas`: per metric, the interval of (candidate - baseline); `delta_kind` names how it was made."""
    results: list[GateResult] = []
    for metric, floor in (gates.get("min") or {}).items():
        value = candidate.get(metric)
        lower = metric in LOWER_IS_BETTER
        if value is None:
            results.append(GateResult(f"min {metric}", metric, None, floor, False, "metric missing"))
            continue
        ok = value <= floor if lower else value >= floor
        op = "<=" if lower else ">="
        gap = "" if ok else f" (short by {abs(value - floor):.4f})"
        results.append(
            GateResult(
                f"{'max' if lower else 'min'} {metric}",
                metric,
                value,
                floor,
                ok,
                f"{_fmt(value)} {op} {floor}{gap}",
            )
        )
    for metric, allowed in (gates.get("max_regression") or {}).items():
        significant = needs_significance(gates, metric)
        name = f"max regression {metric}"
        value = candidate.get(metric)
        base = (baseline or {}).get(metric)
        if value is None:
            results.append(GateResult(name, metric, None, allowed, False, "metric missing"))
            continue
        if base is None:
            results.append(
                GateResult(name, metric, value, allowed, True, f"skipped: no {baseline_name} baseline")
            )
            continue
        lower = metric in LOWER_IS_BETTER
        drop = (value - base) if lower else (base - value)
        over = drop > allowed + 1e-12
        detail = f"{_fmt(value)} vs {baseline_name} {_fmt(base)}: drop {drop:+.4f}, allowed {allowed}"
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


def all_passed(results: list[GateResult]) -> bool:
    return all(r.passed for r in results)
