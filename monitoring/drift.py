"""`mlops drift`: Evidently data drift of the recent production inputs against the training split.

The decision is one of `drift`, `performance`, `rejections`, `no_drift` or `not_enough_data`. It is
printed, written to summary.json next to the HTML reports, and exported as step outputs under GitHub
Actions, so the workflow branches on data rather than on parsing logs. What counts is the policy in
params.yaml.

A monitor that cannot see is worse than none, because its silence reads as "all is well". A missing log
location, no readable log file, or a log whose newest record is older than `monitoring.staleness` is a
`BlindError` (exit 3), never a decision; and the previous summary.json is deleted before anything else,
so no later step can act on an old verdict. The one exception is a production that has never served
(monitoring.serving: no release recorded, no log file ever): a missing or empty log is then expected,
and the decision is `never_served`, a notice, so a new repository's scheduled job does not fail daily.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mlops import paths
from mlops.errors import UserError
from mlops.params import Params
from monitoring import categorical as categorical_test
from monitoring import performance, serving
from monitoring.actions import set_outputs, step_summary
from monitoring.inference_log import ReadStats, read_jsonl
from monitoring.policy import LOG_ENV, Policy

DRIFT, PERFORMANCE, NO_DRIFT, NOT_ENOUGH = "drift", "performance", "no_drift", "not_enough_data"
NEVER_SERVED = "never_served"  # no release and no log file yet: nothing to watch, a notice
# requests refused at serving (or logged values the schema refuses) over the policy's rate: an alert, no
# PR (retraining cannot fix what clients send), whatever the window's row count
REJECTIONS = "rejections"
RETRAIN = (DRIFT, PERFORMANCE)  # the decisions that propose a retraining PR
SUMMARY, REPORT, TARGET_REPORT = "summary.json", "report.html", "target.html"
PROBA_REPORT = "probabilities.html"
OUTPUTS = (SUMMARY, REPORT, TARGET_REPORT, PROBA_REPORT, performance.REPORT, performance.DATA)
BLIND_EXIT = 3
FAILED_EXIT = 4  # the check itself failed (a bug, bad data, bad configuration): never a silent exit 1
ERROR = "error"  # the decision a failed run leaves in summary.json: no retraining PR acts on it


class BlindError(UserError):
    """The monitor cannot see production: an error with its own exit code, never "not enough data"."""


CATEGORICAL = ("prediction", "target")  # classification: the class columns


def categorical_columns(params: Params) -> list[str]:
    """Columns Evidently must test as categorical (chi-square / Jensen-Shannon, by policy.stattest
    .categorical): category and bool features, and for classification the class columns. For regression
    the prediction and the target are numbers."""
    features = [f.name for f in params.data.features if f.type in ("category", "bool")]
    return features + ([] if params.data.regression else list(CATEGORICAL))


def feature_types(params: Params) -> dict[str, str]:
    return {f.name: f.type for f in params.data.features}


def load_reference(params: Params, path: Path = paths.TRAIN_SPLIT) -> pd.DataFrame:
    """The training split as raw values, the form the inference log has: category codes back to their
    strings (from the preprocessing `prepare` fitted next to it), bool as True/False, and the label as
    its class name (classification) or number (regression)."""
    if not Path(path).exists():
        raise UserError(
            f"{path}: no reference data. Fetch it with `dvc pull {path}` or build it with"
            " `dvc repro prepare`."
        )
    from model.encoding import decode_categories

    ref = pd.read_parquet(path)
    preprocessing = Path(path).with_name(paths.PREPROCESSING.name)
    if preprocessing.exists():
        ref = decode_categories(ref, json.loads(preprocessing.read_text()))
    for feature in params.data.features:
        if feature.type == "bool" and feature.name in ref.columns:
            flags = ref[feature.name].to_numpy(dtype=np.float64)
            ref[feature.name] = np.where(np.isnan(flags), None, flags == 1.0).astype(object)
    if not params.data.regression:
        ref["label"] = [str(params.data.classes[i]) for i in ref["label"]]
    return ref


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


def _window(policy: Policy, now: datetime) -> dict:
    since = now - policy.window if policy.window is not None else None
    return {
        "length": policy.window_text,
        "since": since.isoformat() if since else None,
        "until": now.isoformat(),
    }


def _log_line(stats: ReadStats) -> str:
    text = f"{stats.rows} rows in the window from {stats.files} file(s) ({stats.kinds_text()})"
    text += f" at {stats.location}"
    if stats.outside_window:
        text += f"; {stats.outside_window} older/newer rows outside it"
    if stats.malformed:
        text += f"; {stats.malformed} malformed line(s) skipped (first: {stats.examples[0]})"
    return text


def clear(out: Path) -> None:
    """Delete the previous run's outputs first: a run that fails later leaves nothing to act on."""
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    for png in out.glob("performance-*.png"):
        png.unlink()


def blindness(policy: Policy, stats: ReadStats, now: datetime) -> str | None:
    """Why the log cannot be trusted to show production, or None."""
    where = f"monitoring.inference_log / {LOG_ENV} / --log"
    if not stats.exists:
        return f"the inference log location {stats.location} does not exist (set by {where})"
    if stats.files == 0:
        detail = "; ".join(stats.unreadable[:3]) or "no *.jsonl, *.jsonl.N or *.jsonl[.N].gz file in it"
        return f"no readable inference log file at {stats.location}: {detail}"
    if stats.newest is None:
        return (
            f"no valid record in {stats.files} log file(s) at {stats.location}"
            f" ({stats.lines} lines, {stats.malformed} malformed)"
        )
    if policy.staleness is not None and now - stats.newest > policy.staleness:
        return (
            f"the inference log is stale: its newest record is from {stats.newest.isoformat()},"
            f" {_age(now - stats.newest)} before {now.isoformat()}; monitoring.staleness allows"
            f" {_age(policy.staleness)}. Is the server logging, and is the log shipped to {stats.location}?"
        )
    return None


def _age(delta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def check(
    params: Params, policy: Policy, now: datetime | None = None, reference_path: Path = paths.TRAIN_SPLIT
) -> dict:
    """Run the checks, write the reports and summary.json, return the summary; BlindError when blind."""
    now = now or datetime.now(timezone.utc)
    out = Path(policy.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    clear(out)
    window = _window(policy, now)
    since = datetime.fromisoformat(window["since"]) if window["since"] else None
    reference = load_reference(params, reference_path)
    classes = tuple(str(c) for c in params.data.classes)
    categorical = categorical_columns(params)
    # the preceding window of the same length is the probabilities' reference: read it in the same pass
    earliest = since - policy.window if since is not None and policy.probabilities else since
    horizon = policy.performance.label_horizon
    scored_since = since - horizon if since is not None and horizon is not None else since
    if scored_since is not None and (earliest is None or scored_since < earliest):
        earliest = scored_since  # labels come late: their predictions may predate the window
    rows, log = read_jsonl(
        policy.inference_log,
        policy.columns,
        since=earliest,
        until=now,
        keys=("prediction", "request_id"),
        classes=classes,
        types=feature_types(params),
    )
    rows = _raw(rows, params)
    read = len(rows)
    scored = rows[rows["ts"] >= pd.Timestamp(scored_since)] if scored_since is not None else rows
    if since is not None and policy.probabilities:
        rows = rows[rows["ts"] >= pd.Timestamp(since - policy.window)]
    else:
        rows = rows[rows["ts"] >= pd.Timestamp(since)] if since is not None else rows
    previous = rows[rows["ts"] < pd.Timestamp(since)] if since is not None else rows.iloc[:0]
    current = rows[rows["ts"] >= pd.Timestamp(since)] if since is not None else rows
    log.rows, log.outside_window = len(current), log.outside_window + read - len(current)
    print(f"drift: {_log_line(log)}")
    if problem := blindness(policy, log, now):
        evidence = serving.evidence(log)
        if evidence.served:
            raise BlindError(problem + serving.served_note(evidence))
        return _never_served(_summary(policy, window, log, len(reference), 0), log, evidence, out)
    summary = _summary(policy, window, log, len(reference), len(current))
    summary["performance"] = _performance(params, policy, classes, scored, out)
    summary["rejections"] = rejections(policy, params, log, current, since)
    if line := rejection_line(summary):
        print(f"drift: rejections: {line}")
    drifted = {"performance": summary["performance"]["regressed"]}
    if len(current) < policy.min_rows:
        summary["reasons"].append(
            f"not enough data: {len(current)} rows in the window, the policy needs"
            f" {policy.min_rows} (monitoring.min_rows)"
        )
    else:
        summary["features"], summary["prediction"] = _feature_drift(
            policy, reference, current, out, categorical
        )
        summary["prediction"] = _prediction_drift(policy, summary["prediction"], previous, current, out)
        summary["rows"]["analysed"] = summary["features"]["rows_analysed"]
        summary["report"] = str(out / REPORT)
        summary["target"] = _target_drift(policy, reference, since, now, out, params)
        drifted |= {
            name: bool(summary[name] and summary[name]["drifted"])
            for name in ("features", "prediction", "target")
        }
    summary["reasons"] += [_reason(name, summary[name]) for name in CHECK_ORDER if drifted.get(name)]
    if summary["rejections"]["exceeded"]:
        summary["reasons"].append(rejection_reason(summary["rejections"]))
    if drifted["performance"] and "performance" in policy.retrain_on:
        summary["decision"] = PERFORMANCE
    elif any(drifted.get(name) for name in policy.retrain_on):
        summary["decision"] = DRIFT
    elif summary["rejections"]["exceeded"]:
        summary["decision"] = REJECTIONS
    elif summary["features"] is not None:
        summary["decision"] = NO_DRIFT
    summary["retrain"] = summary["decision"] in RETRAIN
    return _finish(summary, out)


CHECK_ORDER = ("performance", "features", "prediction", "target")


def _summary(policy: Policy, window: dict, log: ReadStats, reference_rows: int, current_rows: int) -> dict:
    return {
        "decision": NOT_ENOUGH,
        "retrain": False,
        "reasons": [],
        "window": window,
        "log": log.as_dict(),
        "rows": {"reference": reference_rows, "current": current_rows, "analysed": 0},
        "policy": {
            "drift_share": policy.drift_share,
            "critical": list(policy.critical),
            "weights": policy.weights,
            "min_rows": policy.min_rows,
            "max_rows": policy.max_rows,
            "stattest": policy.stattest,
            "threshold": policy.threshold,
            "retrain_on": list(policy.retrain_on),
            "staleness": str(policy.staleness) if policy.staleness else None,
        },
        "features": None,
        "prediction": None,
        "target": None,
        "performance": {
            "checked": False,
            "regressed": False,
            "rows": 0,
            "metrics": None,
            "regressions": [],
            "over_time": [],
            "report": None,
            "note": "no production rows",
        },
        "report": None,
    }


def _never_served(summary: dict, log: ReadStats, evidence: serving.Evidence, out: Path) -> dict:
    """A notice, not an error: exit 0, no alert, no PR; the job summary says why and what comes next."""
    note = serving.never_served_note(log, evidence)
    summary |= {"decision": NEVER_SERVED, "reasons": [note]}
    summary["performance"]["note"] = "nothing served yet"
    if os.environ.get("GITHUB_ACTIONS") == "true":  # an annotation on the run; the CLI prints the reason
        print(f"::notice title=Nothing served yet::{note}")
    return _finish(summary, out)


def _performance(params: Params, policy: Policy, classes: tuple, current: pd.DataFrame, out: Path) -> dict:
    if params.data.regression:  # the rule compares classification metrics with the champion's
        return {
            "checked": False,
            "regressed": False,
            "rows": 0,
            "metrics": None,
            "regressions": [],
            "over_time": [],
            "report": None,
            "note": "the performance rule scores classification metrics; not for task: regression (yet)",
        }
    return performance.check(policy, list(classes), current, out, types=feature_types(params))


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


def rejections(
    policy: Policy, params: Params, log: ReadStats, current: pd.DataFrame, since: datetime | None
) -> dict:
    """The rejection rule, per column. `refused`: requests the handler answered with a 4xx naming the
    column (its refusal records), as a share of the window's requests, served and refused. `invalid`:
    logged rows holding a null in a column whose `missing` policy is not `impute`: the schema refuses
    them, so a server with another schema or an older handler let them through; they are counted here
    rather than read as NaN without a word (they still count in the missing-rate test). A column over
    `rejections.max_rate` on either count, with at least `min_requests` requests (rows) in the window,
    is flagged; refusals naming no column (malformed JSON, a wrong body) are judged as `(request)`."""
    rule = policy.rejections
    start = since.timestamp() if since is not None else -np.inf
    events = [(column, reason) for ts, column, reason in log.refusals if ts >= start]
    ids = current["request_id"] if "request_id" in current.columns else pd.Series([None] * len(current))
    served = int(ids.dropna().nunique() + ids.isna().sum())  # a row without a request id is its own
    requests = served + len(events)
    by_column: dict = {}
    for column, reason in events:
        reasons = by_column.setdefault(column or "(request)", {})
        reasons[reason] = reasons.get(reason, 0) + 1
    nullable = {f.name for f in params.data.features if f.missing == "impute"}
    invalid = {
        c: int(current[c].isna().sum())
        for c in policy.columns
        if c not in nullable and c in current.columns and len(current)
    }
    columns = []
    for name in [*by_column, *(c for c, n in invalid.items() if n and c not in by_column)]:
        refused = sum(by_column.get(name, {}).values())
        bad = invalid.get(name, 0)
        refused_rate = refused / requests if requests else 0.0
        invalid_rate = bad / len(current) if len(current) else 0.0
        judged = (requests >= rule.min_requests and refused_rate > rule.max_rate) or (
            len(current) >= rule.min_requests and invalid_rate > rule.max_rate
        )
        columns.append(
            {
                "column": name,
                "refused": refused,
                "refused_rate": round(refused_rate, 6),
                "reasons": by_column.get(name, {}),
                "invalid_rows": bad,
                "invalid_rate": round(invalid_rate, 6),
                "exceeded": bool(judged),
            }
        )
    columns.sort(key=lambda c: (-max(c["refused_rate"], c["invalid_rate"]), c["column"]))
    return {
        "requests": requests,
        "served_requests": served,
        "refused": len(events),
        "rows": len(current),
        "max_rate": rule.max_rate,
        "min_requests": rule.min_requests,
        "judged": requests >= rule.min_requests or len(current) >= rule.min_requests,
        "exceeded": any(c["exceeded"] for c in columns),
        "columns": columns,
    }


def rejection_text(column: dict) -> str:
    """One column's refusals and schema-refused nulls, for the console, the alert and the reasons."""
    parts = []
    if column["refused"]:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(column["reasons"].items(), key=lambda x: -x[1]))
        parts.append(f"{column['refused']} request(s) refused ({column['refused_rate']:.1%}: {reasons})")
    if column["invalid_rows"]:
        parts.append(
            f"{column['invalid_rows']} logged row(s) null where the schema refuses a null"
            f" ({column['invalid_rate']:.1%})"
        )
    return f"{column['column']}: " + "; ".join(parts)


def rejection_line(summary: dict) -> str:
    """Every column with refusals or schema-refused nulls, flagged or not, or '' when there are none."""
    result = summary.get("rejections") or {}
    columns = [c for c in result.get("columns", []) if c["refused"] or c["invalid_rows"]]
    if not columns:
        return ""
    text = "; ".join(rejection_text(c) + (" (over the limit)" if c["exceeded"] else "") for c in columns)
    return f"{text} [{result['requests']} requests, {result['rows']} logged rows in the window]"


def rejection_reason(result: dict) -> str:
    flagged = [c for c in result["columns"] if c["exceeded"]]
    return (
        f"rejections over {result['max_rate']:.1%} (monitoring.rejections.max_rate) of"
        f" {result['requests']} requests ({result['refused']} refused) / {result['rows']} logged rows: "
        + "; ".join(rejection_text(c) for c in flagged)
    )


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


def drifted_columns(summary: dict) -> list[dict]:
    """Every drifted column of every check, for the console and the alert."""
    found = [c for c in (summary.get("features") or {}).get("columns", []) if c["drifted"]]
    prediction = summary.get("prediction") or {}
    if prediction.get("class_mix") and prediction["class_mix"]["drifted"]:
        found.append(prediction["class_mix"])
    found += [c for c in (prediction.get("probabilities") or {}).get("columns", []) if c["drifted"]]
    if summary.get("target") and summary["target"]["drifted"]:
        found.append(summary["target"])
    return found


def failure(policy: Policy, error: BaseException, exit_code: int, now: datetime | None = None) -> dict:
    """The summary of a run that could not decide: written where the decision would have been, with
    the error, so the job summary, the artifact and the alert all say what broke."""
    out = Path(policy.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    clear(out)
    summary = {
        "decision": ERROR,
        "retrain": False,
        "exit_code": exit_code,
        "error": f"{type(error).__name__}: {error}" if exit_code != BLIND_EXIT else str(error),
        "blind": exit_code == BLIND_EXIT,
        "reasons": [str(error)],
        "window": _window(policy, now or datetime.now(timezone.utc)),
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    set_outputs(decision=ERROR, retrain="false", summary=str(out / SUMMARY))
    title = "monitoring is blind" if summary["blind"] else "the drift check failed"
    step_summary(f"### Drift check: **{title}** (exit {exit_code})\n\n```\n{summary['error']}\n```")
    return summary


def _finish(summary: dict, out: Path) -> dict:
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    set_outputs(
        decision=summary["decision"],
        retrain=str(summary["retrain"]).lower(),
        summary=str(out / SUMMARY),
    )
    step_summary(markdown(summary))
    return summary


def markdown(summary: dict, report_link: str | None = None, top: int = 10) -> str:
    """The human summary: the job summary page and the retraining PR body both use it."""
    rows, window, log = summary["rows"], summary["window"], summary["log"]
    verdict = {
        DRIFT: "**Drift detected**",
        PERFORMANCE: "**Performance regressed**",
        REJECTIONS: "**Requests refused**",
        NO_DRIFT: "No drift",
        NOT_ENOUGH: "Not enough data",
        NEVER_SERVED: "Nothing served yet (a notice, not a failure)",
    }[summary["decision"]]
    lines = [f"### Drift check: {verdict}", ""]
    lines += [f"- {reason}" for reason in summary["reasons"]]
    if summary["decision"] == NEVER_SERVED:  # no checks ran: the note is the whole story
        return "\n".join(lines)
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
            f" (policy: drift when the weighted share is at least {features['drift_share']:.2f}, or when a"
            " critical column drifts).",
            "",
            "| feature | test | score | threshold | drifted |",
            "| --- | --- | ---: | ---: | :---: |",
        ]
        lines += [
            f"| `{c['column']}`{' (critical)' if c.get('critical') else ''} | {c['method']}"
            f" | {c['score']:.3g} | {c['threshold']} | {'yes' if c['drifted'] else 'no'} |"
            for c in features["columns"][:top]
        ]
    if line := rejection_line(summary):
        lines += ["", f"Rejections (limit {summary['rejections']['max_rate']:.1%} per column): {line}"]
    prediction = summary.get("prediction")
    state = "not checked" if not prediction else ("drifted" if prediction["drifted"] else "no drift")
    lines.append(f"\nPrediction drift: {state}")
    for c in [
        (prediction or {}).get("class_mix"),
        *((prediction or {}).get("probabilities") or {}).get("columns", []),
    ]:
        if c:
            lines.append(
                f"- `{c['column']}`: {c['method']} = {c['score']:.3g}{' (drifted)' if c['drifted'] else ''}"
            )
    target = summary.get("target")
    state = "not checked" if not target else ("drifted" if target["drifted"] else "no drift")
    lines.append(
        f"\nTarget drift: {state}" + (f" ({target['method']} = {target['score']:.3g})" if target else "")
    )
    perf = summary.get("performance") or {}
    if perf.get("checked"):
        lines += [
            "",
            f"Performance on {perf['rows']} labelled production rows (vs the champion's test metrics):",
            "",
        ]
        lines += [
            "| metric | production | champion | drop | allowed | regressed |",
            "| --- | ---: | ---: | ---: | ---: | :---: |",
        ]
        lines += [
            f"| {r['metric']} | {_num(r['value'])} | {_num(r['baseline'])} | {_num(r['drop'])}"
            f" | {r['allowed']} | {'yes' if r['regressed'] else 'no'} |"
            for r in perf["regressions"]
        ]
    elif perf:
        lines.append(f"\nPerformance: not checked ({perf.get('note', '')})")
    if report_link:
        lines += ["", f"Full reports (Evidently, performance): {report_link}"]
    return "\n".join(lines)


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
