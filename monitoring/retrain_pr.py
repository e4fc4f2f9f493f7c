"""`mlops retrain-pr`: turn a drift decision into exactly one retraining PR.

The PR changes only `data.dvc`: the new snapshot (training table + labelled production records) is
pushed to the DVC remote, the commit goes to a `retrain/...` branch, and pr.yml then retrains and
reports on it like any other PR. If a retraining PR is already open, its branch is force-updated
and its body rewritten: re-running the job never opens a second one. The working tree is left as
it was (the new data stays in the DVC cache and on the branch), so a local run changes nothing you
have checked out.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from mlops.errors import UserError
from mlops.params import Params
from model.dataset import bootstrap, dvc
from monitoring.actions import set_outputs, step_summary
from monitoring.drift import DRIFT, SUMMARY, markdown
from monitoring.github import GitHub
from monitoring.policy import Policy
from monitoring.snapshot import Snapshot, build

DATA_DVC = "data.dvc"
MARKER = "<!-- mlops:retrain-pr -->"  # identifies the body as ours for readers and tools
BOT = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")


def git(*args: str, env: dict | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], text=True, capture_output=True, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise UserError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def _identity() -> dict[str, str]:
    """Commit as the configured user; on a bare CI runner, as the Actions bot."""
    if git("config", "user.email", check=False):
        return {}
    name, email = BOT
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def commit_file(branch: str, path: str, message: str) -> str:
    """Commit the working copy of `path` on top of HEAD as `branch`, without touching index or checkout."""
    blob = git("hash-object", "-w", path)
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git("read-tree", "HEAD", env=index)
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = git("write-tree", env=index)
    commit = git("commit-tree", tree, "-p", "HEAD", "-m", message, env=_identity())
    git("update-ref", f"refs/heads/{branch}", commit)
    return commit


def push_branch(commit: str, branch: str, url: str, token: str | None) -> None:
    """Force-push (the branch is ours alone); an https remote gets the token the way actions/checkout does."""
    auth = []
    if token and url.startswith("https://"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        auth = ["-c", f"http.extraheader=AUTHORIZATION: basic {basic}"]
    git(*auth, "push", "--force", "origin", f"{commit}:refs/heads/{branch}")


def _body(summary: dict, snap: Snapshot, feedback: str, report_link: str | None, top: int) -> str:
    fb = snap.feedback
    balance = ", ".join(f"{k} {v}" for k, v in snap.class_balance.items())
    return "\n".join(
        [
            MARKER,
            "Production inputs drifted from the training data, so this PR proposes retraining on a new data"
            " snapshot. It changes only `data.dvc`; the PR workflow retrains and reports on it.",
            "",
            markdown(summary, report_link=report_link, top=top),
            "",
            "### New data snapshot",
            f"- `{snap.path}`: {snap.rows} rows = {snap.previous_rows} previous"
            f" + **{snap.new_rows} new labelled production rows** from `{feedback}` (classes: {balance})",
            f"- Skipped: {snap.duplicates} feedback record(s) already in the data, {fb.malformed} malformed"
            " feedback line(s)",
            "- Validated with the training schema (`mlops validate`); pushed to the DVC remote.",
            "",
            "Review: `git fetch origin && git switch <this branch> && dvc pull && dvc repro`."
            " Re-running the drift job updates this PR instead of opening another.",
        ]
    )


def run(
    params: Params,
    policy: Policy,
    summary_path: str | None = None,
    report_link: str | None = None,
    force: bool = False,
    push: bool = True,
) -> int:
    path = Path(summary_path or Path(policy.report_dir) / SUMMARY)
    if not path.exists():
        raise UserError(f"{path}: no drift summary; run `mlops drift` first")
    summary = json.loads(path.read_text())
    if summary["decision"] != DRIFT and not force:
        print(f"retrain-pr: the drift decision is {summary['decision']!r}: no retraining PR")
        return 0
    if git("status", "--porcelain", "--", DATA_DVC):
        raise UserError(f"{DATA_DVC} has uncommitted changes; the retraining branch is built on HEAD")
    github = GitHub.from_env() if push else None
    existing = github.open_pull(policy.base, policy.branch_prefix) if github else None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    branch = existing["head"]["ref"] if existing else f"{policy.branch_prefix}drift-{stamp}"
    if git("branch", "--show-current", check=False) == branch:
        raise UserError(f"{branch} is checked out; run retrain-pr from {policy.base}")

    bootstrap(pull=True, push=False)  # the data data.dvc names, from the remote (or the bundled copy)
    snap = build(params.data, policy.feedback)
    if snap.new_rows == 0:
        note = (
            f"drift, but no new labelled records at {policy.feedback} ({snap.duplicates} already in the"
            " data): nothing to retrain on yet, no PR"
        )
        print(f"::warning::{note}" if os.environ.get("GITHUB_ACTIONS") else f"retrain-pr: {note}")
        step_summary(f"**Retraining PR:** {note}")
        return 0
    try:
        dvc("commit", "--force", DATA_DVC)
        if push:
            pushed = dvc("push", DATA_DVC, check=False)
            if pushed.returncode != 0:
                raise UserError(f"dvc push failed, nothing proposed:\n{pushed.stderr.strip()}")
        message = f"Retrain on drifted data: +{snap.new_rows} labelled production rows\n\n" + "\n".join(
            summary["reasons"]
        )
        commit = commit_file(branch, DATA_DVC, message)
    finally:  # back to the checked-out version: the snapshot lives on in the DVC cache and the branch
        git("checkout", "HEAD", "--", DATA_DVC)
        dvc("checkout", "--force", DATA_DVC, check=False)
    print(
        f"retrain-pr: {snap.path} +{snap.new_rows} rows ({snap.rows} total), validated; commit {commit[:10]}"
        f" on branch {branch}"
    )
    origin = git("remote", "get-url", "origin", check=False)
    if not push or not origin:
        why = "--no-push" if not push else "no git remote 'origin'"
        print(f"retrain-pr: {why}: branch {branch} is local only (`git switch {branch} && dvc checkout`)")
        set_outputs(branch=branch)
        return 0
    push_branch(commit, branch, origin, github.token if github else None)
    print(f"retrain-pr: pushed {branch} to origin; the data is in the DVC remote")
    set_outputs(branch=branch)
    if github is None:
        print(
            "retrain-pr: no GitHub repository/token (GITHUB_REPOSITORY, GH_TOKEN): open the PR from"
            f" {branch} yourself, or run this in the drift workflow"
        )
        return 0
    title = f"Retrain: data drift, +{snap.new_rows} labelled production rows"
    body = _body(summary, snap, policy.feedback, report_link, policy.top_features)
    if existing:
        pull = github.call("PATCH", f"pulls/{existing['number']}", {"title": title, "body": body})
        action = "updated"
    else:
        pull = github.call(
            "POST", "pulls", {"title": title, "head": branch, "base": policy.base, "body": body}
        )
        action = "opened"
    url = pull.get("html_url", "")
    print(f"retrain-pr: {action} PR #{pull['number']} {url}")
    set_outputs(pr_number=str(pull["number"]), pr_url=url, action=action)
    step_summary(f"**Retraining PR:** {action} #{pull['number']} {url} (branch `{branch}`)")
    return 0
