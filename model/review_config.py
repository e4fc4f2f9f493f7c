"""params.yaml `report`: the settings `evaluate` and `mlops report` share, with their defaults.

A module of its own so the report imports no torch or scikit-learn just to read them.
"""

from __future__ import annotations

from mlops.params import Params
from model.uncertainty import METRICS

DEFAULTS = {
    "resamples": 1000,
    "confidence": 0.95,
    "bootstrap_seed": 0,
    "baseline": {"metric": "roc_auc", "margin": 0.0},
    "slices": [],
    "slice_metrics": ["accuracy", "recall", "roc_auc"],
    "top_k": 8,
    "ig_steps": 32,
}
BASELINE_NAMES = {"logistic_regression": "logistic regression", "majority_class": "majority class"}


def report_settings(params: Params) -> dict:
    """params.yaml `report`, with defaults for any key left out; unknown metric names are an error."""
    settings = {**DEFAULTS, **params.section("report")}
    unknown = set(settings["slice_metrics"]) - set(METRICS)
    if unknown:
        raise ValueError(
            f"params.yaml: report.slice_metrics has unknown {sorted(unknown)}; known: {', '.join(METRICS)}"
        )
    confidence = float(settings["confidence"])
    if not 0.5 <= confidence < 1:
        raise ValueError(f"params.yaml: report.confidence must be in [0.5, 1), got {confidence}")
    if int(settings["resamples"]) < 100:
        raise ValueError(f"params.yaml: report.resamples must be at least 100, got {settings['resamples']}")
    return settings
