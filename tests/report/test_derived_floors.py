"""Gates that fit a new table: on a dataset swap the bundled floors (set for the breast-cancer table) give
way to floors derived from the baselines `evaluate` fits on the same split, unless the swap sets them."""

from __future__ import annotations

from mlops.report.gates import all_passed, check_gates

BUNDLED = {
    "min": {"accuracy": 0.90, "f1": 0.90, "roc_auc": 0.95},
    "max_regression": {"accuracy": 0.02, "f1": 0.02, "roc_auc": 0.01, "log_loss": 0.10},
    "require_significant": True,
}
SWAP = "the label changed (diagnosis → income)"
MODEL = {"accuracy": 0.8206, "f1": 0.61, "roc_auc": 0.87, "log_loss": 0.39}


def baselines(majority: float, logistic: float, majority_span, logistic_span) -> dict:
    """A `baseline` section as evaluate writes it: value and paired interval of (model - baseline)."""
    return {
        "majority_class": {
            "accuracy": majority,
            "delta_interval": {"accuracy": dict(zip(("low", "high"), majority_span, strict=True))},
        },
        "logistic_regression": {
            "accuracy": 0.80,
            "roc_auc": logistic,
            "delta_interval": {"roc_auc": dict(zip(("low", "high"), logistic_span, strict=True))},
        },
    }


def test_the_bundled_floors_fail_a_new_table():
    results = check_gates(MODEL, None, BUNDLED, no_baseline=SWAP)
    assert not all_passed(results)
    assert "min accuracy" in [r.name for r in results if not r.passed]


def test_a_swapped_table_that_beats_its_baselines_passes_on_derived_floors():
    fitted = baselines(0.76, 0.85, (0.03, 0.09), (0.005, 0.035))
    results = check_gates(MODEL, None, BUNDLED, no_baseline=SWAP, baselines=fitted)
    assert all_passed(results), [r.line() for r in results]
    names = [r.name for r in results]
    assert "min accuracy (derived: majority class)" in names
    assert "min roc_auc (derived: logistic regression)" in names
    assert "min accuracy" not in names and "min f1" not in names  # the old table's floors are gone


def test_a_swapped_table_worse_than_the_majority_class_fails():
    """The imbalanced case: the model predicts worse than always saying the majority class."""
    fitted = baselines(0.88, 0.85, (-0.09, -0.03), (0.005, 0.035))
    results = check_gates({**MODEL, "accuracy": 0.844}, None, BUNDLED, no_baseline=SWAP, baselines=fitted)
    failed = [r for r in results if not r.passed]
    assert [r.name for r in failed] == ["min accuracy (derived: majority class)"]
    assert "short by 0.0360" in failed[0].detail and "beyond noise" in failed[0].detail


def test_below_a_baseline_within_noise_passes_and_floors_set_by_the_swap_apply():
    fitted = baselines(0.76, 0.88, (0.03, 0.09), (-0.03, 0.01))  # 0.87 vs 0.88: within noise
    results = check_gates(MODEL, None, BUNDLED, no_baseline=SWAP, baselines=fitted)
    assert all_passed(results), [r.line() for r in results]
    own = {**BUNDLED, "min": {"accuracy": 0.80}}  # the swap PR wrote floors for its own table
    kept = check_gates(MODEL, None, own, no_baseline=SWAP, baselines=fitted, floors_set=True)
    assert [r.name for r in kept if r.name.startswith("min")] == ["min accuracy"]
    auto = check_gates(MODEL, dict(MODEL), {**BUNDLED, "min": "auto"}, baselines=fitted)
    assert "min accuracy (derived: majority class)" in [r.name for r in auto]
