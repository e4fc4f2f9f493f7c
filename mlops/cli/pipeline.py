"""The build side: data bootstrap, the DVC stages, and the end-to-end demo."""

from __future__ import annotations

from pathlib import Path


def _data(args) -> int:
    from mlops.config.params import load_params
    from model.dataset import bootstrap

    bootstrap(pull=not args.no_pull, push=not args.no_push, data_path=load_params().data.path)
    return 0


def _validate(args) -> int:
    from model.validate import run

    return run()


def _prepare(args) -> int:
    from model.prepare import run

    run()
    return 0


def _train(args) -> int:
    from model.train import fixed_hash_seed, run

    fixed_hash_seed()  # may re-run this command: the same model bytes from the same inputs
    run()
    return 0


def _baselines(args) -> int:
    from mlops.report.baselines import run

    run()
    return 0


def _evaluate(args) -> int:
    from model.evaluate import run

    run()
    return 0


def _lock_check(args) -> int:
    from mlops.release.lock_check import check

    return check(report=args.report, summary=args.summary, pushed=args.pushed == "true", base=args.base)


def _repro(args) -> int:
    from mlops.release.lock_check import repro

    return repro(args.base, pull=args.pull)


def _demo(args) -> int:
    from mlops.cli.demo import run

    return run()


def register(sub) -> None:
    p = sub.add_parser(
        "data",
        help="get the bundled dataset: dvc pull, else recreate it byte-identically and push it",
    )
    p.add_argument("--no-pull", action="store_true", help="skip `dvc pull`, always recreate")
    p.add_argument("--no-push", action="store_true", help="do not `dvc push` the recreated data")
    p.set_defaults(handler=_data)

    sub.add_parser(
        "validate", help="DVC stage: check the data against the schema in params.yaml"
    ).set_defaults(handler=_validate)
    sub.add_parser("prepare", help="DVC stage: seeded stratified split, scaler fitted on train").set_defaults(
        handler=_prepare
    )
    sub.add_parser("train", help="DVC stage: train the Lightning model, log it to MLflow").set_defaults(
        handler=_train
    )
    sub.add_parser(
        "baselines", help="DVC stage: fit the reference models on train, save their test predictions"
    ).set_defaults(handler=_baselines)
    sub.add_parser("evaluate", help="DVC stage: test-split metrics and plot data").set_defaults(
        handler=_evaluate
    )
    p = sub.add_parser(
        "repro",
        help="CI: dvc repro of the stages a PR changed against --base; stages as on base are not reproduced",
    )
    p.add_argument("--base", required=True, metavar="REF", help="the base branch, e.g. origin/main")
    p.add_argument("--pull", action="store_true", help="dvc repro --pull (a DVC remote is reachable)")
    p.set_defaults(handler=_repro)
    p = sub.add_parser(
        "lock-check",
        help="after dvc repro: fail, with the fix, when the branch does not hold what was trained",
    )
    p.add_argument("--report", type=Path, help="the PR report (markdown): the fix is put at its top")
    p.add_argument("--summary", type=Path, help="also append the fix here (e.g. $GITHUB_STEP_SUMMARY)")
    p.add_argument(
        "--pushed",
        choices=["true", "false"],
        default="false",
        help="whether this run uploaded its dvc-outputs artifact (else there is nothing to adopt yet)",
    )
    p.add_argument("--base", metavar="REF", help="the base branch (e.g. origin/main): named in the message")
    p.set_defaults(handler=_lock_check)
    sub.add_parser("demo", help="the main job: run the whole loop locally, end to end").set_defaults(
        handler=_demo
    )
