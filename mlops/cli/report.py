"""`mlops report`: the PR report that CML posts as one comment per pull request."""

from __future__ import annotations

from pathlib import Path


def _report(args) -> int:
    from mlops.report.render import run

    return run(base_rev=args.base, out=Path(args.out), sha=args.sha)


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="PR report (markdown + PNG plots): working tree vs a base revision; exit 1 if a gate fails",
        description="Compare metrics, params, data and plots of the working tree (after `dvc repro`) with a "
        "base revision, check the gates of params.yaml, and write OUT/report.md, OUT/summary.md and PNGs. "
        "Every metric carries an interval (Wilson, DeLong or BCa) and every change one too (paired on the "
        "base's eval/predictions.csv, read from git, exact McNemar where it applies, widened by the seed "
        "models' spread), judged better, worse, within noise or too few to judge; slices are compared on "
        "the rows both sides hold with Holm's procedure; baselines, slices, calibration and feature "
        "attributions come from `mlops evaluate`. "
        "The report is written even when a gate fails; the exit status is then 1.",
    )
    p.add_argument(
        "--base", default="main", help="git revision to compare with (default: main; in CI origin/main)"
    )
    p.add_argument("--out", default="reports/pr", help="output folder (default: reports/pr/, git-ignored)")
    p.add_argument(
        "--sha", default=None, help="commit shown in the lineage (default: HEAD; in CI the PR head)"
    )
    p.set_defaults(handler=_report)
