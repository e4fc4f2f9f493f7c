"""The release side: promote and roll back in the MLflow registry, archive for TorchServe, serve locally."""

from __future__ import annotations


def _promote(args) -> int:
    from model.registry import promote

    return promote(summary=args.summary)


def _rollback(args) -> int:
    from model.registry import rollback

    return rollback(version=args.to)


def _archive(args) -> int:
    from serve.archive import build

    build(version=args.version)
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

    p = sub.add_parser("rollback", help="move the champion alias back to the previous champion")
    p.add_argument("--to", metavar="VERSION", help="a specific registry version instead of the previous one")
    p.set_defaults(handler=_rollback)

    p = sub.add_parser("archive", help="build model_store/<model_name>.mar for TorchServe")
    p.add_argument("--version", help="model version to stamp (default: the one `mlops promote` recorded)")
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
