"""`mlops deploy`: GitOps delivery. The release files under deploy/release/ say what runs; these commands
change them (stage, canary), open the production PR (propose) or revert a deployment (rollback).
stage and canary print only the changed paths on stdout (for `git add`), their notes on stderr.
stage, propose and canary never move a deployment backwards (an older model version, an image that is
not the champion's) unless given --force --reason, which goes into the commit and the PR."""

from __future__ import annotations

import sys
from pathlib import Path


def _stage(args) -> int:
    from mlops.release import delivery

    changed = delivery.stage(Path.cwd(), args.image, args.version, force=args.force, reason=args.reason)
    for path in changed:
        print(path)
    if not changed:
        print(f"deploy stage: staging already runs {args.image}; nothing changed", file=sys.stderr)
    _unchecked(Path.cwd())
    return 0


def _unchecked(root: Path) -> None:
    """Say so when no champion could be compared (no registry configured, no local release record)."""
    from mlops.release import delivery

    if delivery.champion(root) is None:
        print(
            "deploy: no champion to compare with (MLFLOW_TRACKING_URI unset, no "
            f"{delivery.RELEASE_RECORD}): only the model versions were checked",
            file=sys.stderr,
        )


def _propose(args) -> int:
    from mlops.release import delivery
    from mlops.release.proposal import propose

    action, number, url = propose(
        args.image,
        args.version,
        repo=args.repo,
        base=args.base,
        percent=args.canary,
        env=args.overlay,
        force=args.force,
        reason=args.reason,
        root=Path.cwd(),
    )
    if action == "unchanged":
        print(f"deploy propose: {args.overlay} on {args.base} already runs {args.image}; no PR")
    else:
        print(f"deploy propose: {action} PR #{number} from {delivery.branch_for(args.overlay)}: {url}")
    _unchecked(Path.cwd())
    return 0


def _canary(args) -> int:
    from mlops.release import delivery

    changed = delivery.canary(Path.cwd(), args.percent, force=args.force, reason=args.reason)
    for path in changed:
        print(path)
    if changed:
        print(
            f"deploy canary: {args.percent} % to the newest revision; commit it (a PR), Argo CD syncs main",
            file=sys.stderr,
        )
    else:
        print(f"deploy canary: already {args.percent} %; nothing changed", file=sys.stderr)
    return 0


def _rollback(args) -> int:
    import shlex

    from mlops.release import delivery

    commit, subject, _ = delivery.rollback_plan(Path.cwd(), args.overlay)
    commands = delivery.rollback(Path.cwd(), args.overlay, apply=args.apply)
    print(f"deploy rollback: {args.overlay} back to before {commit[:12]} ({subject})")
    for command in commands:
        print(("done: " if args.apply else "") + shlex.join(command))
    if not args.apply:
        print("(run them, or `mlops deploy rollback --apply`; then push or open a PR: Argo CD syncs it)")
    return 0


def _forward_options(p) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="allow a backwards move (an older model version, not the champion's image); needs --reason",
    )
    p.add_argument("--reason", help="why it is forced: written into the commit and the PR")


def register(sub) -> None:
    deploy = sub.add_parser(
        "deploy", help="GitOps delivery: stage, propose, canary, rollback (docs/deploy.md)"
    )
    actions = deploy.add_subparsers(dest="action", metavar="<action>", required=True)
    image_help = "the pushed image by digest: <repository>@sha256:<64 hex>"

    p = actions.add_parser("stage", help="point deploy/release/staging at an image; prints the changed paths")
    p.add_argument("--image", required=True, help=image_help)
    p.add_argument("--version", required=True, help="the registry model version in that image")
    _forward_options(p)
    p.set_defaults(handler=_stage)

    p = actions.add_parser(
        "propose", help="open or update the ONE PR from deploy/<overlay> moving that overlay to an image"
    )
    p.add_argument(
        "--overlay",
        choices=("staging", "production"),
        default="production",
        help="production (default; with a canary share) or staging (the workflow's PR when no App may push)",
    )
    p.add_argument("--image", required=True, help=image_help)
    p.add_argument("--version", required=True, help="the registry model version in that image")
    p.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    p.add_argument("--base", default="main", help="the branch Argo CD follows (default: main)")
    p.add_argument(
        "--canary",
        type=int,
        default=10,
        metavar="PERCENT",
        help="production's traffic share of the new revision (10)",
    )
    _forward_options(p)
    p.set_defaults(handler=_propose)

    p = actions.add_parser("canary", help="set production's KServe canary share: 100 promotes, 0 holds back")
    p.add_argument("--percent", type=int, required=True, help="0 to 100")
    _forward_options(p)
    p.set_defaults(handler=_canary)

    p = actions.add_parser(
        "rollback", help="print (or --apply) the git revert of the last image change of an overlay"
    )
    p.add_argument("--overlay", choices=("staging", "production"), default="production")
    p.add_argument("--apply", action="store_true", help="make the revert commit (not pushed)")
    p.set_defaults(handler=_rollback)
