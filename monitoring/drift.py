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

from mlops.config import paths
from mlops.config.errors import UserError
from mlops.config.params import Params
from mlops.github.actions import set_outputs, step_summary
from monitoring import performance, serving
from monitoring.columns import (
    PROBA_REPORT,
    REPORT,
    TARGET_REPORT,
    _feature_drift,
    _prediction_drift,
    _raw,
    _reason,
    _target_drift,
    categorical_columns,
    feature_types,
)
from monitoring.inference_log import ReadStats, read_jsonl
from monitoring.policy import LOG_ENV, Policy
from monitoring.rejections import rejection_line, rejection_reason, rejections

DRIFT, PERFORMANCE, NO_DRIFT, NOT_ENOUGH = "drift", "performance", "no_drift", "not_enough_data"
NEVER_SERVED = "never_served"  # no release and no log file yet: nothing to watch, a notice
# requests refused at serving (or logged values the schema refuses) over the policy's rate: an alert, no
# PR (retraining cannot fix what clients send), whatever the window's row count
REJECTIONS = "rejections"
RETRAIN = (DRIFT, PERFORMANCE)  # the decisions that propose a retraining PR
SUMMARY = "summary.json"
OUTPUTS = (SUMMARY, REPORT, TARGET_REPORT, PROBA_REPORT, performance.REPORT, performance.DATA)
BLIND_EXIT = 3
FAILED_EXIT = 4  # the check itself failed (a bug, bad data, bad configuration): never a silent exit 1
ERROR = "error"  # the decision a failed run leaves in summary.json: no retraining PR acts on it


class BlindError(UserError):
    """The monitor cannot see production: an error with its own exit code, never "not enough data"."""


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
