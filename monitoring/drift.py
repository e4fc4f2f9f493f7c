"""`mlops drift`: Evidently data drift of the recent production inputs against the training split.

The decision is one of `drift`, `no_drift` or `not_enough_data`. It is printed, written to
summary.json next to the HTML report, and exported as step outputs under GitHub Actions, so the
workflow branches on data rather than on parsing logs. What counts as drift is the policy in params.yaml.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mlops import paths
from mlops.errors import UserError
from mlops.params import Params
from monitoring.actions import set_outputs, step_summary
from monitoring.inference_log import ReadStats, read_jsonl
from monitoring.policy import Policy

DRIFT, NO_DRIFT, NOT_ENOUGH = "drift", "no_drift", "not_enough_data"
SUMMARY, REPORT, TARGET_REPORT = "summary.json", "report.html", "target.html"
CATEGORICAL = ("prediction", "target")  # the class columns; every feature is numerical


def load_reference(params: Params, path: Path = paths.TRAIN_SPLIT) -> pd.DataFrame:
    """The training split (raw features + integer label), with the label as its class name."""
    if not Path(path).exists():
        raise UserError(
            f"{path}: no reference data. Fetch it with `dvc pull {path}` or build it with"
            " `dvc repro prepare`."
        )
    ref = pd.read_parquet(path)
    ref["label"] = [str(params.data.classes[i]) for i in ref["label"]]
    return ref


def _sample(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    if limit is None or len(frame) <= limit:
        return frame
    rng = np.random.default_rng(seed)
    return frame.iloc[np.sort(rng.choice(len(frame), size=limit, replace=False))].reset_index(drop=True)


def _run_report(metrics: list, ref: pd.DataFrame, cur: pd.DataFrame, categorical: list[str]):
    from evidently import DataDefinition, Dataset, Report

    definition = DataDefinition(
        numerical_columns=[c for c in cur.columns if c not in categorical], categorical_columns=categorical
    )
    return Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )


def _column_results(snapshot) -> dict[str, dict]:
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
                "method": _method_name(config.get("method"), config["column"]),
                "threshold": config.get("threshold"),
                "score": float(metric["value"]),
                "drifted": failed.get(metric["id"], False),
            }
    return columns


def _method_name(method: str | None, column: str) -> str:
    """Evidently's display name ('K-S p_value'), which tells whether a low or a high score means drift."""
    from evidently.legacy.calculations.stattests.registry import (
        StatTestNotFoundError,
        get_registered_stattest,
    )
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if column in CATEGORICAL else ColumnType.Numerical
    try:
        return get_registered_stattest(method, kind).display_name
    except StatTestNotFoundError:  # already a display name (Evidently resolved "auto")
        return str(method)


def _severity(col: dict) -> float:
    """Smaller = more drifted, across p-value tests (low means drift) and distances (high means drift)."""
    score, threshold = col["score"], col["threshold"] or 1.0
    if "p_value" in str(col["method"]):
        return score / threshold
    return threshold / score if score > 0 else float("inf")


def _window(policy: Policy, now: datetime) -> dict:
    since = now - policy.window if policy.window is not None else None
    return {
        "length": policy.window_text,
        "since": since.isoformat() if since else None,
        "until": now.isoformat(),
    }


def _log_line(stats: ReadStats) -> str:
    text = f"{stats.rows} rows in the window from {stats.files} file(s) at {stats.location}"
    if stats.outside_window:
        text += f"; {stats.outside_window} older/newer rows outside it"
    if stats.malformed:
        text += f"; {stats.malformed} malformed line(s) skipped (first: {stats.examples[0]})"
    return text


def check(
    params: Params, policy: Policy, now: datetime | None = None, reference_path: Path = paths.TRAIN_SPLIT
) -> dict:
    """Run the drift check, write the report and summary.json, return the summary."""
    now = now or datetime.now(timezone.utc)
    window = _window(policy, now)
    since = datetime.fromisoformat(window["since"]) if window["since"] else None
    out = Path(policy.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (REPORT, TARGET_REPORT):  # never leave an old report next to a new summary
        (out / stale).unlink(missing_ok=True)
    reference = load_reference(params, reference_path)
    current, log = read_jsonl(policy.inference_log, policy.columns, since=since, until=now)
    print(f"drift: {_log_line(log)}")
    summary: dict = {
        "decision": NOT_ENOUGH,
        "reasons": [],
        "window": window,
        "log": log.as_dict(),
        "rows": {"reference": len(reference), "current": len(current), "analysed": 0},
        "policy": {
            "drift_share": policy.drift_share,
            "min_rows": policy.min_rows,
            "max_rows": policy.max_rows,
            "stattest": policy.stattest,
            "threshold": policy.threshold,
            "retrain_on": list(policy.retrain_on),
        },
        "features": None,
        "prediction": None,
        "target": None,
        "report": None,
    }
    if len(current) < policy.min_rows:
        summary["reasons"].append(
            f"not enough data: {len(current)} rows in the window, the policy needs"
            f" {policy.min_rows} (monitoring.min_rows)"
        )
        return _finish(summary, out)
    summary["features"], summary["prediction"] = _feature_drift(policy, reference, current, out)
    summary["rows"]["analysed"] = summary["features"]["rows_analysed"]
    summary["report"] = str(out / REPORT)
    summary["target"] = _target_drift(policy, reference, since, now, out)
    drifted = {
        name: bool(summary[name] and summary[name]["drifted"])
        for name in ("features", "prediction", "target")
    }
    summary["reasons"] = [_reason(name, summary[name]) for name in drifted if drifted[name]]
    summary["decision"] = DRIFT if any(drifted[name] for name in policy.retrain_on) else NO_DRIFT
    return _finish(summary, out)


def _feature_drift(policy: Policy, reference: pd.DataFrame, current: pd.DataFrame, out: Path):
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    cols = policy.columns
    ref = _sample(reference, policy.max_rows, policy.seed)
    cur = _sample(current, policy.max_rows, policy.seed)
    has_predictions = bool(cur["prediction"].notna().all())
    ref = ref[cols].assign(prediction=ref["label"])
    cur = cur[cols].assign(prediction=cur["prediction"]) if has_predictions else cur[cols]
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
        metrics.append(
            ValueDrift(column="prediction", method=tests["categorical"], threshold=limits["categorical"])
        )
    snapshot = _run_report(metrics, ref[cur.columns], cur, ["prediction"] if has_predictions else [])
    snapshot.save_html(str(out / REPORT))
    results = _column_results(snapshot)
    columns = sorted((results[c] for c in cols), key=_severity)
    count = sum(c["drifted"] for c in columns)
    features = {
        "drifted": count / len(cols) >= policy.drift_share,
        "drifted_count": count,
        "monitored": len(cols),
        "share": count / len(cols),
        "drift_share": policy.drift_share,
        "rows_analysed": len(cur),
        "sampled": len(cur) < len(current) or len(ref) < len(reference),
        "columns": columns,
    }
    return features, results.get("prediction")


def _target_drift(policy: Policy, reference: pd.DataFrame, since, until, out: Path) -> dict | None:
    """Labels that came back for the window (the feedback location) against the training labels."""
    from evidently.metrics import ValueDrift

    labelled, stats = read_jsonl(
        policy.feedback, policy.columns, since=since, until=until, keys=("label",), required=("label",)
    )
    if len(labelled) < policy.min_rows:
        print(
            f"drift: target drift not checked: {len(labelled)} labelled rows in the window at"
            f" {policy.feedback} (needs {policy.min_rows})"
        )
        return None
    snapshot = _run_report(
        [
            ValueDrift(
                column="target",
                method=policy.stattest["categorical"],
                threshold=policy.threshold["categorical"],
            )
        ],
        reference[["label"]].rename(columns={"label": "target"}),
        labelled[["label"]].rename(columns={"label": "target"}),
        ["target"],
    )
    snapshot.save_html(str(out / TARGET_REPORT))
    return {
        **_column_results(snapshot)["target"],
        "rows": len(labelled),
        "malformed": stats.malformed,
        "report": str(out / TARGET_REPORT),
    }


def _reason(name: str, result: dict) -> str:
    if name == "features":
        return (
            f"{result['drifted_count']} of {result['monitored']} monitored features drifted"
            f" (share {result['share']:.2f} >= {result['drift_share']:.2f})"
        )
    return f"{name} drift: {result['method']} = {result['score']:.3g} (threshold {result['threshold']})"


def _finish(summary: dict, out: Path) -> dict:
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    set_outputs(decision=summary["decision"], summary=str(out / SUMMARY))
    step_summary(markdown(summary))
    return summary


def markdown(summary: dict, report_link: str | None = None, top: int = 10) -> str:
    """The human summary: the job summary page and the retraining PR body both use it."""
    rows, window, log = summary["rows"], summary["window"], summary["log"]
    verdict = {DRIFT: "**Drift detected**", NO_DRIFT: "No drift", NOT_ENOUGH: "Not enough data"}[
        summary["decision"]
    ]
    lines = [f"### Drift check: {verdict}", ""]
    lines += [f"- {reason}" for reason in summary["reasons"]]
    since = window["since"] or "the start of the log"
    lines += [
        f"- Window: last {window['length']} ({since} to {window['until']})",
        f"- Rows: {rows['current']} production rows in the window ({rows['analysed']} analysed) against"
        f" {rows['reference']} training rows; {log['malformed']} malformed log line(s) skipped",
    ]
    features = summary.get("features")
    if features:
        lines += [
            "",
            f"{features['drifted_count']} of {features['monitored']} monitored features drifted"
            f" (policy: drift when the share is at least {features['drift_share']:.2f}).",
            "",
            "| feature | test | score | threshold | drifted |",
            "| --- | --- | ---: | ---: | :---: |",
        ]
        lines += [
            f"| `{c['column']}` | {c['method']} | {c['score']:.3g} | {c['threshold']} |"
            f" {'yes' if c['drifted'] else 'no'} |"
            for c in features["columns"][:top]
        ]
    for name in ("prediction", "target"):
        result = summary.get(name)
        state = "not checked" if not result else ("drifted" if result["drifted"] else "no drift")
        detail = f" ({result['method']} = {result['score']:.3g})" if result else ""
        lines.append(f"\n{name.capitalize()} drift: {state}{detail}")
    if report_link:
        lines += ["", f"Full Evidently report: {report_link}"]
    return "\n".join(lines)
