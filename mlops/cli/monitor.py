"""The watch side: drift check, retraining PR, and simulated production traffic for the demo."""

from __future__ import annotations

import sys


def _policy(args):
    from mlops.config.params import load_params
    from monitoring.policy import load_policy

    params = load_params()
    return params, load_policy(
        params,
        window=getattr(args, "window", None),
        inference_log=getattr(args, "log", None),
        feedback=getattr(args, "feedback", None),
    )


def _drift(args) -> int:
    from monitoring import alerting
    from monitoring.alerting import feedback_problems
    from monitoring.drift import (
        BLIND_EXIT,
        FAILED_EXIT,
        NO_DRIFT,
        BlindError,
        check,
        drifted_columns,
        failure,
    )
    from monitoring.inference_log import parse_ts
    from monitoring.performance import performance_line

    params, policy = _policy(args)
    hint = f"Run: {args.run_link}" if args.run_link else ""
    now = parse_ts(args.now) if args.now else None
    try:
        summary = check(params, policy, now=now)
    except BlindError as err:
        print(f"mlops drift: error: monitoring is blind: {err}", file=sys.stderr)
        failure(policy, err, BLIND_EXIT, now)
        alerting.error_alert(str(err), hint)
        return BLIND_EXIT
    except Exception as err:
        import traceback

        traceback.print_exc()
        print(f"mlops drift: error: the check failed: {type(err).__name__}: {err}", file=sys.stderr)
        failure(policy, err, FAILED_EXIT, now)
        alerting.failure_alert(err, policy, hint)
        return FAILED_EXIT
    for column in drifted_columns(summary):
        print(
            f"drift: drifted column {column['column']}: {column['method']} = {column['score']:.3g}"
            f" (threshold {column['threshold']}){alerting.column_notes(column)}"
        )
    for column in (summary.get("features") or {}).get("columns", []):
        if (column.get("unseen") or {}).get("rows") and not column["drifted"]:
            print(f"drift: column {column['column']}{alerting.column_notes(column)}")
    for reason in summary["reasons"]:
        print(f"drift: {reason}")
    print(f"drift: {performance_line(summary['performance'])}")
    if line := feedback_problems(summary):
        print(f"drift: feedback: {line}")
    for unreadable in summary["log"].get("unreadable", []):
        print(f"drift: unreadable log file skipped: {unreadable}")
    for name, path in (
        ("report", summary["report"]),
        ("performance report", summary["performance"]["report"]),
    ):
        if path:
            print(f"drift: {name} {path}")
    print(f"drift: summary {policy.report_dir}/summary.json")
    if summary["decision"] != NO_DRIFT:
        alerting.decision_alert(summary, hint)
    print(f"decision: {summary['decision']}")
    return 0


def _retrain_pr(args) -> int:
    from monitoring.retrain_pr import run

    params, policy = _policy(args)
    return run(
        params,
        policy,
        summary_path=args.summary,
        report_link=args.report_link,
        force=args.force,
        push=not args.no_push,
    )


def _simulate(args) -> int:
    from monitoring.traffic import run

    params, policy = _policy(args)
    return run(
        params,
        policy,
        normal=args.normal,
        shifted=args.shifted,
        shift=args.shift,
        batch=args.batch,
        seed=args.seed,
    )


def register(sub) -> None:
    p = sub.add_parser(
        "drift",
        help="drift and performance check of production (Evidently, feedback); exit 3 when blind,"
        " 4 when the check itself failed",
    )
    p.add_argument("--window", help="override monitoring.window, e.g. 12h, 7d, all")
    p.add_argument(
        "--log", help="inference log dir/file/URI (default: params.yaml, env MLOPS_INFERENCE_LOG_DIR)"
    )
    p.add_argument("--feedback", help="labelled records for target drift (default: monitoring.feedback)")
    p.add_argument("--now", help="end of the window, ISO 8601 (default: now), for re-running a past check")
    p.add_argument("--run-link", help="URL of this run, quoted in alerts (env MLOPS_ALERT_URLS)")
    p.set_defaults(handler=_drift)

    p = sub.add_parser(
        "retrain-pr",
        help="on drift: new data snapshot, dvc push, branch retrain/..., open or"
        " update the ONE retraining PR",
    )
    p.add_argument("--summary", help="drift summary.json (default: <monitoring.report_dir>/summary.json)")
    p.add_argument(
        "--feedback", help="labelled production records (default: monitoring.feedback, env MLOPS_FEEDBACK)"
    )
    p.add_argument("--report-link", help="URL of the uploaded drift report, linked from the PR body")
    p.add_argument(
        "--force", action="store_true", help="propose a snapshot even if the decision is not drift"
    )
    p.add_argument(
        "--no-push", action="store_true", help="only build the local branch: no dvc/git push, no PR"
    )
    p.set_defaults(handler=_retrain_pr)

    p = sub.add_parser(
        "simulate-traffic",
        help="send normal, then shifted rows to the running server and"
        " write their labels to the feedback location",
    )
    p.add_argument("--normal", type=int, default=300, help="in-distribution rows (default 300)")
    p.add_argument("--shifted", type=int, default=300, help="shifted rows sent afterwards (default 300)")
    p.add_argument(
        "--shift",
        type=float,
        default=1.0,
        help="shift of the shifted rows, in training standard deviations (default 1.0)",
    )
    p.add_argument("--batch", type=int, default=20, help="rows per request (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--feedback", help="where the labels go (default: monitoring.feedback, env MLOPS_FEEDBACK)"
    )
    p.set_defaults(handler=_simulate)
