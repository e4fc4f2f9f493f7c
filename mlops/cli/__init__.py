"""`mlops`: the one entry point that dvc.yaml, the Makefile, the workflows and people call.

Each area registers its sub-commands from a light module in `mlops.cli`; the heavy libraries
(torch, lightning, mlflow, evidently) are imported inside the handlers, so `mlops --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mlops.config.errors import UserError

# One module per area; each defines register(subparsers). Order sets the order in --help.
COMMAND_MODULES = (
    "mlops.cli.pipeline",  # data, validate, prepare, train, baselines, evaluate, demo
    "mlops.cli.report",  # report (PR comment)
    "mlops.cli.release",  # promote, rollback, archive, serve
    "mlops.cli.deploy",  # deploy stage, propose, canary, rollback (GitOps)
    "mlops.cli.monitor",  # drift, retrain-pr, simulate-traffic
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="GitOps MLOps template: train, review, promote, serve and monitor a model.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        code = args.handler(args)
    except UserError as err:  # expected failures: a clear message, no traceback
        print(f"mlops {args.command}: error: {err}", file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
