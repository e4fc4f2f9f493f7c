"""The release side: promote, champion and roll back in the MLflow registry, hand PR outputs to the
trusted remote, tag images immutably, archive for TorchServe, serve locally."""

from __future__ import annotations

from pathlib import Path


def _promote(args) -> int:
    from mlops.release.registry import promote

    return promote(
        summary=args.summary,
        candidate=args.candidate,
        allow_dirty=args.allow_dirty,
        remeasure=args.remeasure or None,
        force=args.force,
        reason=args.reason,
    )


def _champion(args) -> int:
    from mlops.release import registry

    if args.undo:
        return registry.undo_champion(version=args.version, previous=args.previous)
    return registry.move_champion(
        version=args.version,
        expect=args.expect,
        image=args.image,
        summary=args.summary,
        force=args.force,
        reason=args.reason,
    )


def _outputs(args) -> int:
    from mlops.release import outputs

    if args.action == "pack":
        copied = outputs.pack(args.dir)
        print(f"outputs: {len(copied)} file(s) packed into {args.dir}")
    elif args.action == "fetch":
        outputs.fetch(args.dir)
    elif args.action in ("admit", "receive"):
        result = outputs.admit(args.dir) if args.action == "admit" else outputs.receive(args.dir, args.depth)
        for line in result.lines():
            print(f"outputs: {line}")
    else:
        print(f"outputs: run-cache entries written for {outputs.seal()} stage(s)")
    return 0


def _adopt(args) -> int:
    from mlops.release.adopt import adopt

    return adopt(args.run_id, repo=args.repo, push=not args.no_push)


def _image_tag(args) -> int:
    from mlops.release import image

    if args.refuse_existing:
        image.refuse_existing(args.repository, image.tag(args.version, args.sha))
    if args.expect_digest:
        image.verify_pushed(args.repository, image.tag(args.version, args.sha), args.expect_digest)
    print(image.tag(args.version, args.sha))
    return 0


def _image_build(args) -> int:
    import subprocess

    from mlops.release import image

    cmd = image.build_command(args.engine, args.ref, args.version, args.sha, args.store, args.build_args)
    print("build:", " ".join(cmd), flush=True)
    if args.dry_run:
        return 0
    return subprocess.run(cmd).returncode


def _rollback(args) -> int:
    from mlops.release.registry import rollback

    code = rollback(version=args.to, force=args.force, reason=args.reason)
    print("rollback: registry only; to take the deployment back: `mlops deploy rollback` (a git revert)")
    return code


def _archive(args) -> int:
    from mlops.release.archive import archive_champion

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


def _force_arguments(p) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="move champion even backwards in main's history (a commit that does not contain the "
        "champion's release); needs --reason",
    )
    p.add_argument("--reason", help="with --force: why, recorded on the registry version")


def register(sub) -> None:
    p = sub.add_parser(
        "promote",
        help="register the reviewed model (md5 must match dvc.lock), apply the gates, move the champion",
    )
    p.add_argument(
        "--summary", metavar="FILE", help="append a markdown summary here (CI passes $GITHUB_STEP_SUMMARY)"
    )
    p.add_argument(
        "--candidate",
        action="store_true",
        help="register and gate only: record the version as the candidate, leave champion (CI: image first)",
    )
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="promote despite uncommitted changes, recorded as git_dirty=true (else refused)",
    )
    p.add_argument(
        "--remeasure",
        action="store_true",
        help="gate on the test-split metrics this checkout's code measures (always with --candidate and "
        "in GitHub Actions); refused when eval/metrics.json disagrees",
    )
    _force_arguments(p)
    p.set_defaults(handler=_promote)

    p = sub.add_parser(
        "champion",
        help="move champion to a gated candidate once its image is pushed (or --undo that move)",
    )
    p.add_argument("--version", required=True, help="the registry version `promote --candidate` recorded")
    p.add_argument(
        "--expect",
        metavar="VERSION",
        help='the champion the gates compared with ("" = none): refused if the alias moved since',
    )
    p.add_argument("--image", metavar="REF", help="the pushed image by digest, recorded on the version")
    p.add_argument("--summary", metavar="FILE", help="append a markdown line here")
    p.add_argument("--undo", action="store_true", help="put champion back on --previous if it is --version")
    p.add_argument("--previous", default="", help="with --undo: the champion before (empty: none)")
    _force_arguments(p)
    p.set_defaults(handler=_champion)

    p = sub.add_parser(
        "outputs",
        help="PR outputs to the trusted remote: pack (PR job); fetch, admit, receive, seal (release job)",
    )
    p.add_argument("action", choices=("pack", "fetch", "admit", "receive", "seal"))
    p.add_argument("--depth", type=int, default=10, help="receive: main's commits to look back through")
    p.add_argument(
        "--dir", type=Path, default=Path("dvc-outputs"), help="the artifact's folder (pack, fetch, admit)"
    )
    p.set_defaults(handler=_outputs)

    p = sub.add_parser(
        "adopt",
        help="commit what a PR's CI run trained (its dvc-outputs artifact): dvc.lock, eval/, the model",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the Actions run id the lock check printed")
    p.add_argument("--repo", metavar="OWNER/NAME", help="default: the `origin` remote's repository")
    p.add_argument("--no-push", action="store_true", help="commit only; do not git push")
    p.set_defaults(handler=_adopt)

    p = sub.add_parser(
        "image-tag", help="the immutable image tag model-v<N>-<sha7>; --refuse-existing checks the registry"
    )
    p.add_argument("--version", required=True)
    p.add_argument("--sha", required=True)
    p.add_argument("--repository", default="", help="e.g. ghcr.io/owner/name (with --refuse-existing)")
    p.add_argument("--refuse-existing", action="store_true", help="fail if the registry has the tag")
    p.add_argument(
        "--expect-digest",
        metavar="sha256:...",
        help="after the push: fail unless the registry serves this digest for the tag (read back)",
    )
    p.set_defaults(handler=_image_tag)

    p = sub.add_parser(
        "image-build", help="build the serving image of model_store/*.mar with its runtime's Dockerfile"
    )
    p.add_argument(
        "--ref", required=True, help="the image reference to tag, e.g. ghcr.io/o/n:model-v3-abc1234"
    )
    p.add_argument("--version", required=True)
    p.add_argument("--sha", required=True)
    p.add_argument("--engine", default="docker", help="docker | podman | buildah")
    p.add_argument("--build-args", default="", help="extra build options, split on whitespace")
    p.add_argument("--store", type=Path, default=Path("model_store"))
    p.add_argument("--dry-run", action="store_true", help="print the command only")
    p.set_defaults(handler=_image_build)

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
