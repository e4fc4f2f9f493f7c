"""Per-column drift tests, one verdict each: Evidently's for features, ours for the class mix and target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlops.config.params import Params
from monitoring import categorical as categorical_test
from monitoring import performance
from monitoring.inference_log import read_jsonl
from monitoring.policy import Policy

REPORT, TARGET_REPORT, PROBA_REPORT = "report.html", "target.html", "probabilities.html"


CATEGORICAL = ("prediction", "target")  # classification: the class columns


def categorical_columns(params: Params) -> list[str]:
    """Columns Evidently must test as categorical (chi-square / Jensen-Shannon, by policy.stattest
    .categorical): category and bool features, and for classification the class columns. For regression
    the prediction and the target are numbers."""
    features = [f.name for f in params.data.features if f.type in ("category", "bool")]
    return features + ([] if params.data.regression else list(CATEGORICAL))


def feature_types(params: Params) -> dict[str, str]:
    return {f.name: f.type for f in params.data.features}


def _raw(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Logged category values as text (a client may send 3 for "3"), None where missing."""
    for feature in params.data.features:
        if feature.type == "category" and feature.name in frame.columns:
            values = frame[feature.name]
            frame[feature.name] = values.where(values.isna(), values.astype(str)).astype(object)
    return frame


def _sample(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    if limit is None or len(frame) <= limit:
        return frame
    rng = np.random.default_rng(seed)
    return frame.iloc[np.sort(rng.choice(len(frame), size=limit, replace=False))].reset_index(drop=True)


def _run_report(metrics: list, ref: pd.DataFrame, cur: pd.DataFrame, categorical: list[str]):
    from evidently import DataDefinition, Dataset, Report

    categorical_test.register()
    categorical = [c for c in cur.columns if c in categorical]
    definition = DataDefinition(
        numerical_columns=[c for c in cur.columns if c not in categorical], categorical_columns=categorical
    )
    return Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )


def _column_results(snapshot, categorical: list[str] | tuple = CATEGORICAL) -> dict[str, dict]:
    """Per column: method, threshold, score and Evidently's own drift verdict (its test status)."""
    result = snapshot.dict()
    failed = {
        t["metric_config"]["metric_id"]: str(t["status"]).endswith("FAIL") for t in result.get("tests", [])
    }
    columns = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            columns[config["column"]] = {
                "column": config["column"],
                "method": _method_name(config.get("method"), config["column"] in categorical),
                "threshold": config.get("threshold"),
                "score": float(metric["value"]),
                "drifted": failed.get(metric["id"], False),
            }
    return columns


def _method_name(method: str | None, categorical: bool) -> str:
    """Evidently's display name ('K-S p_value'), which tells whether a low or a high score means drift."""
    from evidently.legacy.calculations.stattests.registry import (
        StatTestNotFoundError,
        get_registered_stattest,
    )
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    try:
        return get_registered_stattest(method, kind).display_name
    except StatTestNotFoundError:  # already a display name (Evidently resolved "auto")
        return str(method)


def _decisive(col: dict, policy: Policy) -> bool:
    """A critical column decides alone only at the family-wise p-value `critical_p_value`, split over the
    critical columns (Bonferroni): each would otherwise add its own 5% of false alarms."""
    if not col["drifted"]:
        return False
    missing = col.get("missing") or {}
    if missing.get("drifted") and missing["p_value"] < policy.critical_p_value / max(len(policy.critical), 1):
        return True
    if "p_value" not in str(col["method"]):
        return True  # a distance: its threshold is the verdict
    return col["score"] < policy.critical_p_value / max(len(policy.critical), 1)


def _severity(col: dict) -> float:
    """Smaller = more drifted, across p-value tests (low means drift) and distances (high means drift)."""
    score, threshold = col["score"], col["threshold"] or 1.0
    if "p_value" in str(col["method"]):
        return score / threshold
    return threshold / score if score > 0 else float("inf")


def _feature_drift(
    policy: Policy, reference: pd.DataFrame, current: pd.DataFrame, out: Path, categorical: list[str]
):
    """Every monitored feature against the training split, each with the test for its type, plus the
    prediction against the training labels (a class mix, or for regression the numeric prediction)."""
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    cols = policy.columns
    ref = _sample(reference, policy.max_rows, policy.seed)
    cur = _sample(current, policy.max_rows, policy.seed)
    has_predictions = bool(cur["prediction"].notna().all())
    numeric_prediction = "prediction" not in categorical
    ref = ref[cols].assign(prediction=ref["label"])
    if has_predictions:
        prediction = cur["prediction"]
        if numeric_prediction:
            prediction = pd.to_numeric(prediction, errors="coerce").astype("float64")
        cur = cur[cols].assign(prediction=prediction)
    else:
        cur = cur[cols]
    empty = [c for c in cols if not (ref[c].notna().any() and cur[c].notna().any())]
    cols = [c for c in cols if c not in empty]  # Evidently cannot test a column without values
    tests, limits = policy.stattest, policy.threshold
    metrics: list = [
        DataDriftPreset(
            columns=cols,
            drift_share=policy.drift_share,
            num_method=tests["numerical"],
            cat_method=tests["categorical"],
            num_threshold=limits["numerical"],
            cat_threshold=limits["categorical"],
        )
    ]
    if has_predictions:
        kind = "numerical" if numeric_prediction else "categorical"
        metrics.append(ValueDrift(column="prediction", method=tests[kind], threshold=limits[kind]))
    snapshot = _run_report(metrics, ref[cur.columns], cur, categorical)
    snapshot.save_html(str(out / REPORT))
    results = _column_results(snapshot, categorical)
    columns = [_empty_column(c, ref, cur) for c in empty]
    columns += sorted((results[c] for c in cols), key=_severity)
    for col in columns:
        if col["column"] in categorical and col["column"] not in empty:
            col["unseen"] = categorical_test.unseen(ref[col["column"]], cur[col["column"]])
        col["missing"] = _missing_rate(ref[col["column"]], cur[col["column"]], policy)
        col["drifted"] = bool(col["drifted"] or col["missing"]["drifted"])
        col["weight"] = policy.weights.get(col["column"], 1.0)
        col["critical"] = col["column"] in policy.critical
    count = sum(c["drifted"] for c in columns)
    total = sum(c["weight"] for c in columns) or 1.0
    share = sum(c["weight"] for c in columns if c["drifted"]) / total
    critical = [c["column"] for c in columns if c["critical"] and _decisive(c, policy)]
    features = {
        "drifted": share >= policy.drift_share or bool(critical),
        "drifted_count": count,
        "drifted_critical": critical,
        "monitored": len(columns),
        "share": share,
        "drift_share": policy.drift_share,
        "rows_analysed": len(cur),
        "sampled": len(cur) < len(current) or len(ref) < len(reference),
        "columns": columns,
    }
    return features, results.get("prediction")


def _missing_rate(ref: pd.Series, cur: pd.Series, policy: Policy) -> dict:
    """Nulls are dropped before the distribution tests, so a column going 40% null would show nothing
    there: its missing rate is compared on its own (two-sample test on the null indicator), and a rise
    of at least `monitoring.missing_increase` that is beyond noise makes the column drifted."""
    before, now = float(ref.isna().mean()), float(cur.isna().mean())
    p = categorical_test.p_value(ref.isna().astype(str), cur.isna().astype(str))
    limit = policy.threshold.get("numerical") or 0.05
    return {
        "reference": round(before, 6),
        "current": round(now, 6),
        "p_value": p,
        "drifted": bool(now - before >= policy.missing_increase and p < limit),
    }


def _empty_column(column: str, ref: pd.DataFrame, cur: pd.DataFrame) -> dict:
    """A column with no value on one side: no distribution to compare, and certainly a change."""
    side = "production window" if not cur[column].notna().any() else "reference"
    return {
        "column": column,
        "method": f"all values missing in the {side}",
        "threshold": None,
        "score": float(cur[column].isna().mean()),
        "drifted": side == "production window" and bool(ref[column].notna().any()),
    }


def _prediction_drift(
    policy: Policy, mix: dict | None, previous: pd.DataFrame, current: pd.DataFrame, out: Path
) -> dict | None:
    """The class mix (against the training labels) and each class probability (K-S, against the
    preceding window): a model that grows unsure shifts its probabilities before its predicted classes."""
    result = {"class_mix": mix, "probabilities": None, "drifted": bool(mix and mix["drifted"])}
    proba = [c for c in current.columns if c.startswith("proba_")]
    proba = proba[-1:] if len(proba) == 2 else proba  # binary: p(benign) = 1 - p(malignant), one test
    if not policy.probabilities or not proba:
        return result if mix else None
    cur = current[proba].dropna()
    ref = previous[proba].dropna()
    if len(cur) < policy.min_rows or len(ref) < policy.min_rows:
        result["probabilities"] = {
            "checked": False,
            "note": f"{len(ref)} earlier and {len(cur)} current rows with probabilities (needs"
            f" {policy.min_rows} each, the earlier ones from the preceding {policy.window_text})",
        }
        return result
    from evidently.metrics import ValueDrift

    method, limit = policy.stattest["numerical"], policy.threshold["numerical"]
    if method is not None and "p_value" in _method_name(method, False) and len(proba) > 1:
        limit = (limit or 0.05) / len(proba)  # one test per class: split the 5% (Bonferroni), not 3 x 5%
    metrics = [ValueDrift(column=c, method=method, threshold=limit) for c in proba]
    snapshot = _run_report(
        metrics, _sample(ref, policy.max_rows, policy.seed), _sample(cur, policy.max_rows, policy.seed), []
    )
    snapshot.save_html(str(out / PROBA_REPORT))
    columns = [_column_results(snapshot)[c] for c in proba]
    result["probabilities"] = {
        "checked": True,
        "reference_rows": len(ref),
        "rows": len(cur),
        "columns": columns,
        "report": str(out / PROBA_REPORT),
    }
    result["drifted"] = result["drifted"] or any(c["drifted"] for c in columns)
    return result


def _target_drift(
    policy: Policy, reference: pd.DataFrame, since, until, out: Path, params: Params
) -> dict | None:
    """Labels that came back for the window (the feedback location) against the training labels."""
    from evidently.metrics import ValueDrift

    labelled, stats = read_jsonl(
        policy.feedback,
        policy.columns,
        since=since,
        until=until,
        keys=("label",),
        required=("label",),
        types=feature_types(params),
    )
    if len(labelled) < policy.min_rows:
        print(
            f"drift: target drift not checked: {len(labelled)} labelled rows in the window at"
            f" {policy.feedback} (needs {policy.min_rows})"
        )
        return None
    kind = "numerical" if params.data.regression else "categorical"
    target = labelled[["label"]].rename(columns={"label": "target"})
    if params.data.regression:
        target["target"] = pd.to_numeric(target["target"], errors="coerce").astype("float64")
    categorical = categorical_columns(params)
    snapshot = _run_report(
        [ValueDrift(column="target", method=policy.stattest[kind], threshold=policy.threshold[kind])],
        reference[["label"]].rename(columns={"label": "target"}),
        target,
        categorical,
    )
    snapshot.save_html(str(out / TARGET_REPORT))
    return {
        **_column_results(snapshot, categorical)["target"],
        "rows": len(labelled),
        "malformed": stats.malformed,
        "report": str(out / TARGET_REPORT),
    }


def _reason(name: str, result: dict) -> str:
    if name == "performance":
        return performance.reason(result)
    if name == "features":
        text = (
            f"{result['drifted_count']} of {result['monitored']} monitored features drifted"
            f" (weighted share {result['share']:.2f}, policy {result['drift_share']:.2f})"
        )
        if result["drifted_critical"]:
            text += f"; critical: {', '.join(result['drifted_critical'])}"
        return text
    if name == "prediction":
        parts = [result["class_mix"]] if result["class_mix"] and result["class_mix"]["drifted"] else []
        parts += [c for c in (result["probabilities"] or {}).get("columns", []) if c["drifted"]]
        return "prediction drift: " + "; ".join(
            f"{c['column']} {c['method']} = {c['score']:.3g} (threshold {c['threshold']})" for c in parts
        )
    return f"{name} drift: {result['method']} = {result['score']:.3g} (threshold {result['threshold']})"
