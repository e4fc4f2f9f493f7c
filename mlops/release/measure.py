"""Trusted measurement: the release job scores the shipped model with main's code, not the PR's numbers.

`eval/metrics.json` is an output of the PR's run. Its bytes match the merged dvc.lock, but a PR run that
restored planted outputs (its own Actions cache, an earlier force-pushed commit's run-cache) records
whatever numbers came with them, and the lock only proves those are the numbers the PR run left. So
the release re-runs the point metrics of `model/evaluate.py` (its functions, no copy of them) on the
admitted model and the test split, each checked against dvc.lock first, and the gates and the registry
use these. No retraining: one forward pass over the test split.

When they disagree with the PR's `eval/metrics.json` beyond float noise, the release stops, names each
metric with both values, and alerts (MLOPS_ALERT_URLS): either the PR's report was not made by this
model, or evaluation differs between the PR run and main, and neither should ship quietly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from mlops.config import paths
from mlops.config.errors import UserError
from mlops.config.params import Params, load_params
from mlops.report.scores import flat_scores

# Absolute, scaled by max(1, |value|) for metrics in the label's units (RMSE, MAE). evaluate rounds
# every metric to 6 decimals; the same TorchScript bytes on the same test split differ between CPUs only
# in float32 summation order (AVX2 vs AVX-512 kernels), about 1e-7 relative in a probability, which moves
# a smooth metric (log loss, Brier, ECE, RMSE) by a unit or two of the 6th decimal. 1e-5 is ten rounding
# units: above that noise, and far below anything a gate resolves (one row of the bundled 114-row test
# split is 0.0088 accuracy). A prediction that flips class between machines moves a count metric past it:
# rare (a row within ~1e-7 of the decision boundary), and then the numbers really differ, so it stops too.
TOLERANCE = 1e-5


@dataclass
class Measurement:
    metrics: dict[str, float]  # the flat scores evaluate writes at the top of metrics.json
    dataset: dict = field(default_factory=dict)  # evaluate's dataset identity (task, label, rows, classes)


def _verify_test_split() -> None:
    """The test split must be the bytes dvc.lock names, as the model must (verify_reviewed_artifacts)."""
    from mlops.release.artifacts import locked_md5, md5

    expected = locked_md5(paths.TEST_SPLIT)
    if not paths.TEST_SPLIT.exists():
        raise UserError(f"{paths.TEST_SPLIT} missing: `dvc pull` (or checkout) the reviewed outputs first")
    actual = md5(paths.TEST_SPLIT)
    if actual != expected:
        raise UserError(
            f"{paths.TEST_SPLIT}: md5 {actual} is not {expected} in dvc.lock; refusing to measure"
        )


def measure(params: Params | None = None) -> Measurement:
    """The point metrics and dataset identity of the model on disk over the test split, as evaluate
    computes them (model/evaluate.py's functions), after checking both files against dvc.lock."""
    import numpy as np
    import pandas as pd

    from mlops.release.artifacts import verify_reviewed_artifacts
    from mlops.report.settings import report_settings, task_of
    from model import evaluate

    params = params or load_params()
    verify_reviewed_artifacts()
    _verify_test_split()
    task = task_of(params)
    features = params.data.feature_names
    test = pd.read_parquet(paths.TEST_SPLIT, columns=[*features, "label"])
    x = test[features].to_numpy(dtype=np.float64)
    if task == "regression":
        y = test["label"].to_numpy(dtype=np.float64)
        scores = evaluate.regression_metrics(y, evaluate.predict_values(paths.MODEL_FILE, x))
    else:
        y = test["label"].to_numpy()
        proba = evaluate.predict_proba(paths.MODEL_FILE, x)
        scores = evaluate.compute_metrics(y, proba, len(params.data.classes))
    interval_rows = min(len(y), int(report_settings(params)["max_rows"]))  # evaluate.bounded_sample's size
    return Measurement(scores, evaluate.dataset_identity(params, task, len(y), interval_rows))


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


def disagreements(reported: dict, measured: Measurement) -> list[str]:
    """Each metric (and dataset identity entry) where the PR's document and the measurement differ."""
    claimed = flat_scores(reported)
    problems = []
    for name in sorted(claimed.keys() | measured.metrics.keys()):
        said, got = claimed.get(name), measured.metrics.get(name)
        if said is None:
            problems.append(f"{name}: {paths.METRICS} reports none; re-measured {got}")
        elif got is None:
            problems.append(
                f"{name}: {paths.METRICS} reports {said}; main's evaluate measures no such metric"
            )
        elif not _close(float(said), float(got)):
            problems.append(
                f"{name}: {paths.METRICS} reports {said}, re-measured {got} "
                f"(off by {abs(float(said) - float(got)):.3g}; tolerance {TOLERANCE:g})"
            )
    identity = reported.get("dataset") if isinstance(reported.get("dataset"), dict) else {}
    for key, value in measured.dataset.items():
        if identity.get(key) != value:
            problems.append(
                f"dataset.{key}: {paths.METRICS} reports {identity.get(key)!r}, re-measured {value!r}"
            )
    return problems


def trusted_metrics(params: Params | None = None) -> Measurement:
    """Measure; refuse (and alert) when the PR's eval/metrics.json says otherwise."""
    measured = measure(params)
    reported = json.loads(paths.METRICS.read_text())
    problems = disagreements(reported, measured)
    if problems:
        from mlops.release.alerts import release_alert

        body = (
            "The shipped model, re-measured on the test split by main's code, does not score what the PR "
            f"run reported in {paths.METRICS}. Nothing was registered; champion unchanged.\n"
            + "\n".join(problems)
        )
        release_alert("re-measured metrics disagree with the PR's report", body)
        raise UserError(
            f"the shipped model does not score what the PR reported ({paths.METRICS}); refused, nothing "
            "registered, champion unchanged:\n  " + "\n  ".join(problems)
        )
    return measured
