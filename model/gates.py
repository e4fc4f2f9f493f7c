"""Quality gates from params.yaml, shared by the PR check (baseline: main) and promotion (baseline: champion).

`min` sets absolute floors. `max_regression` caps the drop against a baseline; it is skipped, and
says so, when there is no baseline yet (the first PR, the first promotion).
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER_IS_BETTER = {"log_loss"}


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


def check_gates(
    candidate: dict, baseline: dict | None, gates: dict, baseline_name: str = "main"
) -> list[GateResult]:
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
        drop = (value - base) if metric in LOWER_IS_BETTER else (base - value)
        ok = drop <= allowed + 1e-12
        detail = f"{_fmt(value)} vs {baseline_name} {_fmt(base)}: drop {drop:+.4f}, allowed {allowed}"
        if not ok:
            detail += f" (over by {drop - allowed:.4f})"
        results.append(GateResult(name, metric, value, allowed, ok, detail))
    return results


def all_passed(results: list[GateResult]) -> bool:
    return all(r.passed for r in results)
