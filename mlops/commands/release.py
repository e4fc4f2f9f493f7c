"""The release side: promote and roll back in the MLflow registry, archive for TorchServe, serve locally."""

from __future__ import annotations


def _promote(args) -> int:
    from model.registry import promote

    return promote(summary=args.summary)


def _rollback(args) -> int:
    from model.registry import rollback

    return rollback(version=args.to, force=args.force, reason=args.reason)


def _archive(args) -> int:
    from serve.archive import archive_champion

    archive_champion()
    return 0


def _serve(args) -> int:
    from serve import server

    if args.action == "start":
        server.start(timeout=args.timeout)
        return 0
    if args.action == "stop":
        server.stop()
        return 0
    if args.action == "predict":
        return server.predict_file(args.file)
    return server.status()


def register(sub) -> None:
    p = sub.add_parser(
        "promote",
        help="register the reviewed model (md5 must match dvc.lock), apply the gates, move the champion",
    )
    p.add_argument(
        "--summary", metavar="FILE", help="append a markdown summary here (CI passes $GITHUB_STEP_SUMMARY)"
    )
    p.set_defaults(handler=_promote)

    p = sub.add_parser(
        "rollback",
        help="move the champion back to the previous one, or --to a version that passed its gates",
    )
    p.add_argument("--to", metavar="VERSION", help="a specific registry version instead of the previous one")
    p.add_argument("--force", action="store_true", help="allow a version whose gates failed (needs --reason)")
    p.add_argument("--reason", help="why: recorded on the registry version and in model_store/release.json")
    p.set_defaults(handler=_rollback)

    p = sub.add_parser(
        "archive",
        help="build model_store/<model_name>.mar of the registry's champion (the model's md5 must match it)",
    )
    p.set_defaults(handler=_archive)

    p = sub.add_parser(
        "serve", help="run TorchServe locally (127.0.0.1, token auth on): start, status, predict, stop"
    )
    p.add_argument("action", choices=("start", "status", "predict", "stop"))
    p.add_argument(
        "--file",
        default="model_store/request.json",
        help="predict: a request body (default: the held-out rows `mlops archive` wrote)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a READY worker")
    p.set_defaults(handler=_serve)
