"""params.yaml `report`: the settings `evaluate` and `mlops report` share (defaults:
mlops/config/sections.py).

A module of its own so the report imports no torch or scikit-learn just to read them. Everything that
differs between a classification and a regression table is decided here from the top-level `task`,
so one `report:` section serves both (a classification metric named for a regression table is
replaced by the task's default, not an error: swapping datasets stays an edit of `data:` and `task`).
"""

from __future__ import annotations

from mlops.config.params import Params
from mlops.config.sections import Report, as_dict
from mlops.report.uncertainty import KNOWN, REGRESSION_METRICS

DEFAULTS = as_dict(Report())  # the section's defaults, as the dict the report code reads
# The linear model comes first: the report's "does not beat" warning reads the first entry.
BASELINE_NAMES = {
    "logistic_regression": "logistic regression",
    "majority_class": "majority class",
    "gradient_boosting": "gradient-boosted trees",
}
REGRESSION_BASELINE_NAMES = {
    "linear_regression": "linear regression",
    "mean_predictor": "mean predictor",
    "gradient_boosting": "gradient-boosted trees",
}
REGRESSION_DEFAULTS = {"baseline_metric": "rmse", "slice_metrics": ["rmse", "mae"]}


def task_of(params: Params | dict) -> str:
    """`task` at the top of params.yaml (a Params or the raw dict): classification unless it says
    regression."""
    if isinstance(params, Params):
        return params.task
    raw = params or {}
    return "regression" if str(raw.get("task") or "classification") == "regression" else "classification"


def baseline_names(task: str) -> dict[str, str]:
    return REGRESSION_BASELINE_NAMES if task == "regression" else BASELINE_NAMES


def for_task(settings: dict, task: str) -> dict:
    """The settings with the metric choices of the other task replaced by this task's defaults."""
    if task != "regression":
        classification = [m for m in settings["slice_metrics"] if m not in REGRESSION_METRICS]
        return {**settings, "slice_metrics": classification or list(DEFAULTS["slice_metrics"])}
    slice_metrics = [m for m in settings["slice_metrics"] if m in REGRESSION_METRICS]
    baseline = dict(settings.get("baseline") or {})
    if baseline.get("metric") not in REGRESSION_METRICS:
        baseline["metric"] = REGRESSION_DEFAULTS["baseline_metric"]
    return {
        **settings,
        "slice_metrics": slice_metrics or list(REGRESSION_DEFAULTS["slice_metrics"]),
        "baseline": baseline,
    }


def report_settings(params: Params) -> dict:
    """params.yaml `report` as a dict, for the params' task; unknown metric names and out-of-range
    numbers are errors."""
    settings = as_dict(params.report)
    unknown = set(settings["slice_metrics"]) - set(KNOWN)
    if unknown:
        raise ValueError(
            f"params.yaml: report.slice_metrics has unknown {sorted(unknown)}; known: {', '.join(KNOWN)}"
        )
    confidence = float(settings["confidence"])
    if not 0.5 <= confidence < 1:
        raise ValueError(f"params.yaml: report.confidence must be in [0.5, 1), got {confidence}")
    if int(settings["resamples"]) < 100:
        raise ValueError(f"params.yaml: report.resamples must be at least 100, got {settings['resamples']}")
    if settings["seeds"] != "auto" and (not str(settings["seeds"]).isdigit() or int(settings["seeds"]) > 20):
        raise ValueError(f"params.yaml: report.seeds must be auto or 0..20, got {settings['seeds']!r}")
    level = float(settings["slice_error"])
    if not 0 < level < 0.5:
        raise ValueError(f"params.yaml: report.slice_error must be in (0, 0.5), got {level}")
    checks = (("max_rows", 100), ("ig_rows", 1), ("baseline_rows", 100), ("plot_points", 10))
    checks += (("min_rows", 1), ("min_positives", 1), ("max_cells", 1000), ("max_classes", 2))
    for key, least in checks:
        if int(settings[key]) < least:
            raise ValueError(f"params.yaml: report.{key} must be at least {least}, got {settings[key]}")
    return for_task(settings, task_of(params))
