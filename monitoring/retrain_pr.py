"""`mlops retrain-pr`: turn a retraining decision (drift or performance) into exactly one retraining PR.

The PR changes only `data.dvc`: the new snapshot (training table + labelled production records) is
pushed to the DVC remote, the commit goes to the ONE branch `retrain/<base>`, and pr.yml then retrains
and reports on it like any other PR. Inside GitHub Actions with no remote that outlives the runner
(monitoring.remote), nothing is pushed: the snapshot is kept for the workflow's artifact and the run fails
saying how to set DVC_REMOTE_URL, so data is never silently lost.

Exactly one PR, even for two runs racing from two clones: creating the branch is the lock. The push
that creates `retrain/<base>` is create-only (`--force-with-lease=<ref>:` with an empty expected value),
so the git server lets one run create it and rejects the other. The winner opens the PR; the loser
refreshes the branch (a lease on the tip it saw) and updates the PR, which it looks up by head AFTER its
push. A snapshot whose tree equals the base's (an empty diff) proposes nothing. The working tree is left
as it was (the new data stays in the DVC cache and on the branch).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

from mlops.config.errors import UserError
from mlops.config.git import git, identity
from mlops.config.params import Params
from mlops.github.actions import set_outputs, step_summary
from mlops.github.client import GitHub
from model.dataset import bootstrap, dvc
from monitoring import remote
from monitoring.drift import PERFORMANCE, RETRAIN, SUMMARY, markdown
from monitoring.policy import Policy
from monitoring.snapshot import Snapshot, build

DATA_DVC = "data.dvc"
MARKER = "<!-- mlops:retrain-pr -->"  # identifies the body as ours for readers and tools
LOSER_WAIT = 20.0  # s the run that lost the branch race waits for the winner's PR before opening one


def served_ids(policy: Policy) -> set[str] | None:
    """Every request id in the inference log (all of it, not only the window), or None when there is no
    log to ask (then no record is refused as never served)."""
    from monitoring.inference_log import read_jsonl

    rows, stats = read_jsonl(policy.inference_log, [], keys=("request_id",))
    if not stats.files:
        return None
    return set(rows["request_id"].dropna().astype(str))


def run_id() -> str:
    """Unique per run, so two runs never build byte-identical commits: a create-only push of a commit
    the server already has is a silent no-op that both runs would read as "created"."""
    run, attempt = os.environ.get("GITHUB_RUN_ID"), os.environ.get("GITHUB_RUN_ATTEMPT", "1")
    return f"{run}.{attempt}-{uuid.uuid4().hex[:8]}" if run else uuid.uuid4().hex


def commit_file(branch: str, path: str, message: str, parent: str = "HEAD") -> str:
    """Commit the working copy of `path` on `parent` as `branch`, without touching index or checkout."""
    blob = git("hash-object", "-w", path)
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git("read-tree", parent, env=index)
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = git("write-tree", env=index)
    commit = git("commit-tree", tree, "-p", parent, "-m", message, env=identity())
    git("update-ref", f"refs/heads/{branch}", commit)
    return commit


def _auth(url: str, token: str | None) -> list[str]:
    """An https remote gets the token the way actions/checkout passes it: an extra header, never the URL."""
    if not (token and url.startswith("https://")):
        return []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return ["-c", f"http.extraheader=AUTHORIZATION: basic {basic}"]


def base_commit(base: str, push: bool, token: str | None) -> str:
    """The commit the snapshot goes on: the base branch as origin has it now, freshly fetched, whatever
    is checked out (a run dispatched from another branch, or the demo re-run on a feature branch, still
    proposes against the base). With --no-push and origin unreachable: the last fetched origin/<base>,
    said so. With no origin at all: the local <base> branch. Its data.dvc must be the checkout's: the
    snapshot extends the data the checkout holds."""
    origin = git("remote", "get-url", "origin", check=False)
    if origin:
        fetched = subprocess.run(
            [
                "git",
                *_auth(origin, token),
                "fetch",
                "-q",
                "origin",
                f"+refs/heads/{base}:refs/remotes/origin/{base}",
            ],
            text=True,
            capture_output=True,
        )
        parent = git("rev-parse", "--verify", "-q", f"refs/remotes/origin/{base}", check=False)
        if fetched.returncode != 0:
            if push or not parent:
                raise UserError(f"git fetch origin {base} failed: {fetched.stderr.strip()}")
            print(
                f"retrain-pr: could not fetch origin/{base} ({fetched.stderr.strip()}): building on the"
                f" last fetched origin/{base}"
            )
        where = f"origin/{base}"
    else:
        parent = git("rev-parse", "--verify", "-q", f"refs/heads/{base}", check=False)
        where = base
        if not parent:
            print(f"retrain-pr: no origin and no local branch {base}: building on HEAD")
            return git("rev-parse", "HEAD")
    if git("rev-parse", f"{parent}:{DATA_DVC}") != git("rev-parse", f"HEAD:{DATA_DVC}"):
        raise UserError(
            f"the checked-out {DATA_DVC} differs from {where}'s: run retrain-pr on {base}"
            f" (`git switch {base} && git pull`) so the snapshot extends the base's data"
        )
    return parent


def remote_tip(branch: str, auth: list[str]) -> str | None:
    out = git(*auth, "ls-remote", "origin", f"refs/heads/{branch}")
    return out.split()[0] if out else None


def push_branch(commit: str, branch: str, url: str, token: str | None) -> tuple[bool, bool]:
    """(created, pushed). Create the branch, or, if another run created it, move it to our commit.

    The create is the lock: `--force-with-lease=<ref>:` (empty expected value) succeeds only if the
    branch does not exist, atomically on the git server. The update leases the tip we saw, so two
    refreshes never overwrite each other blindly; the same tree as the tip is left alone."""
    auth = _auth(url, token)
    ref = f"refs/heads/{branch}"
    if _try_push(auth, f"--force-with-lease={ref}:", commit, ref):
        return True, True
    for _ in range(5):
        tip = remote_tip(branch, auth)
        if tip is None:  # no branch, yet the create failed: not a race but git itself (auth, network)
            _try_push(auth, f"--force-with-lease={ref}:", commit, ref, must=True)
            return True, True
        git(*auth, "fetch", "-q", "origin", f"+{ref}:refs/remotes/origin/{branch}", check=False)
        if _tree(tip) == _tree(commit):
            return False, False  # the other run pushed the same snapshot: nothing to refresh
        if _try_push(auth, f"--force-with-lease={ref}:{tip}", commit, ref):
            return False, True
    raise UserError(f"could not push {branch}: it kept changing under this run (another retrain-pr?)")


def _try_push(auth: list[str], lease: str, commit: str, ref: str, must: bool = False) -> bool:
    """True when the leased push went through; False when the lease did not hold (or raise, if `must`)."""
    proc = subprocess.run(
        ["git", *auth, "push", lease, "origin", f"{commit}:{ref}"], text=True, capture_output=True
    )
    if proc.returncode and must:
        raise UserError(f"git push origin {ref} failed: {proc.stderr.strip()}")
    return proc.returncode == 0


def _tree(rev: str) -> str | None:
    return git("rev-parse", "--verify", "-q", f"{rev}^{{tree}}", check=False) or None


def _body(
    summary: dict, snap: Snapshot, feedback: str, report_link: str | None, top: int, branch: str
) -> str:
    fb = snap.feedback
    balance = ", ".join(f"{k} {v}" for k, v in snap.class_balance.items())  # or the label's range
    dropped = ", ".join(f"`{c}`" for c in snap.dropped_columns)
    what = "label" if "mean" in snap.class_balance else "classes"
    return "\n".join(
        [
            MARKER,
            (
                "The model's performance on labelled production data fell below the champion's"
                if summary["decision"] == PERFORMANCE
                else "Production data drifted from the training data"
            )
            + ", so this PR proposes retraining on a new data snapshot. It changes only `data.dvc`;"
            " the PR workflow retrains and reports on it.",
            "",
            markdown(summary, report_link=report_link, top=top),
            "",
            "### New data snapshot",
            f"- `{snap.path}`: {snap.rows} rows = {snap.previous_rows} previous"
            f" + **{snap.new_rows} new labelled production rows** from `{feedback}` ({what}: {balance})",
            f"- Skipped: {snap.duplicates} feedback record(s) already in the data, {fb.malformed} malformed"
            " feedback line(s)",
            *(
                [
                    f"- Left out of the new snapshot: column(s) {dropped}"
                    " (not in the schema, so training never read them; the production records cannot fill"
                    " them, and a row with empty cells there would make the table inconsistent). The"
                    " previous data version keeps them."
                ]
                if snap.dropped_columns
                else []
            ),
            *(
                [
                    "- Not taken (only clean, served, non-contradictory rows are): "
                    + ", ".join(f"{n} {LEFT_OUT[k]}" for k, n in snap.left_out.items())
                ]
                if snap.left_out
                else []
            ),
            "- Validated with the training schema (`mlops validate`); pushed to the DVC remote.",
            "",
            "Review: `git fetch origin && git switch <this branch> && dvc pull && dvc repro`."
            f" Re-running the drift job updates this PR (branch `{branch}`) instead of opening another.",
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
    if summary["decision"] == "error":  # not even --force: a failed check has no rows to vouch for
        raise UserError(f"{path}: the drift check failed ({summary.get('error')}); no retraining PR")
    if summary["decision"] not in RETRAIN and not force:
        print(f"retrain-pr: the drift decision is {summary['decision']!r}: no retraining PR")
        if push and (github := GitHub.from_env()) is not None:
            _restate(github, f"{policy.branch_prefix}{policy.base}", policy.base, summary, report_link)
        return 0
    if git("status", "--porcelain", "--", DATA_DVC):
        raise UserError(f"{DATA_DVC} has uncommitted changes; the retraining branch is built on HEAD")
    branch = f"{policy.branch_prefix}{policy.base}"  # one fixed branch per base: the lock
    if git("branch", "--show-current", check=False) == branch:
        raise UserError(f"{branch} is checked out; run retrain-pr from {policy.base}")
    github = GitHub.from_env() if push else None
    parent = base_commit(policy.base, push, github.token if github else None)
    throwaway = remote.throwaway_remote() if push else None

    bootstrap(pull=True, push=False)  # the data data.dvc names, from the remote (or the bundled copy)
    snap = build(params.data, policy.feedback, served=served_ids(policy))
    if snap.new_rows == 0:
        return _nothing(
            f"{summary['decision']}, but no new labelled records at {policy.feedback} ({snap.duplicates}"
            " already in the data): nothing to retrain on yet, no PR"
        )
    try:
        dvc("commit", "--force", DATA_DVC)
        if push and not throwaway:
            pushed = dvc("push", DATA_DVC, check=False)
            if pushed.returncode != 0:
                raise UserError(f"dvc push failed, nothing proposed:\n{pushed.stderr.strip()}")
        message = (
            f"Retrain ({summary['decision']}): +{snap.new_rows} labelled production rows\n\n"
            + "\n".join(summary["reasons"])
            + f"\n\nRun-Id: {run_id()}"
        )
        commit = commit_file(branch, DATA_DVC, message, parent)
    finally:  # back to the checked-out version: the snapshot lives on in the DVC cache and the branch
        git("checkout", "HEAD", "--", DATA_DVC)
        dvc("checkout", "--force", DATA_DVC, check=False)
    if _tree(commit) == _tree(parent):
        return _nothing(f"the new snapshot equals {policy.base}'s data: an empty diff, no PR")
    print(
        f"retrain-pr: {snap.path} +{snap.new_rows} rows ({snap.rows} total), validated; commit {commit[:10]}"
        f" on branch {branch}"
    )
    if throwaway:
        _keep(throwaway, commit, snap, policy, branch)
    origin = git("remote", "get-url", "origin", check=False)
    if not push or not origin:
        why = "--no-push" if not push else "no git remote 'origin'"
        print(f"retrain-pr: {why}: branch {branch} is local only (`git switch {branch} && dvc checkout`)")
        set_outputs(branch=branch)
        return 0
    created, pushed = push_branch(commit, branch, origin, github.token if github else None)
    state = "created" if created else "refreshed" if pushed else "already held this snapshot"
    print(f"retrain-pr: {branch} on origin {state}; the data is in the DVC remote")
    set_outputs(branch=branch)
    if github is None:
        print(
            "retrain-pr: no GitHub repository/token (GITHUB_REPOSITORY, GH_TOKEN): open the PR from"
            f" {branch} yourself, or run this in the drift workflow"
        )
        return 0
    why = "performance regression" if summary["decision"] == PERFORMANCE else "data drift"
    title = f"Retrain: {why}, +{snap.new_rows} labelled production rows"
    body = _body(summary, snap, policy.feedback, report_link, policy.top_features, branch)
    action, pull = github.open_or_update(
        branch, policy.base, title, body, opened_by_us=created, wait=LOSER_WAIT
    )
    url = pull.html_url or ""
    print(f"retrain-pr: {action} PR #{pull.number} {url}")
    set_outputs(pr_number=str(pull.number), pr_url=url, action=action)
    step_summary(f"**Retraining PR:** {action} #{pull.number} {url} (branch `{branch}`)")
    return 0


def _keep(reason: str, commit: str, snap: Snapshot, policy: Policy, branch: str) -> None:
    """No remote outlives this runner: keep the snapshot for the workflow's artifact, push nothing, fail."""
    folder = Path(policy.report_dir) / remote.KEPT
    text = remote.instructions(reason, snap.new_rows, policy.base, branch)
    objects = remote.keep(git("show", f"{commit}:{DATA_DVC}"), folder, text + "\n")
    set_outputs(kept=str(folder))
    step_summary(text)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(
            f"::error title=No persistent DVC remote::{reason}: set {remote.REMOTE_ENV} (see the job summary)"
        )
    raise UserError(
        f"{reason}: refusing to push the new data snapshot where it would not outlive this runner (the PR"
        f" would name data that exists nowhere). No branch pushed, no PR. Set the repository variable"
        f" {remote.REMOTE_ENV} to a remote that outlives the runner (s3://, gs://, azure://, ssh://...:"
        f" `gh variable set {remote.REMOTE_ENV} --body s3://bucket/dvc`, write credentials in the `registry`"
        f" environment, docs/monitoring.md) and re-run the drift workflow. The snapshot"
        f" (+{snap.new_rows} rows: data.dvc and {objects} DVC object(s)) is kept in {folder}/ (the"
        f" workflow's artifact `{remote.KEPT}`; its README.md says how to propose it by hand)."
    )


LEFT_OUT = {
    "unknown_labels": "with a label that is no class",
    "not_served": "for requests the inference log never served",
    "conflicting": "older label(s) of a row labelled again differently (the latest by ts kept)",
}
STATUS = "<!-- mlops:retrain-status -->"  # the current-state block at the top of the PR body


def _restate(github: GitHub, branch: str, base: str, summary: dict, report_link: str | None) -> None:
    """An open retraining PR whose drift has subsided must not keep saying "Drift detected": its body
    gets the latest check's state on top (the new labelled rows in it stay worth reviewing)."""
    pull = github.pull_for(branch, base)
    if pull is None:
        return
    window = summary.get("window") or {}
    note = (
        f"{STATUS}\n> **Latest drift check: {summary['decision']}** (window {window.get('since')} to"
        f" {window.get('until')}; {(summary.get('rows') or {}).get('current', 0)} production rows)."
        " The drift that opened this PR is no longer seen; the labelled rows it adds are still new data:"
        " merge them if the retrained model is better, or close this PR."
        + (f" Reports: {report_link}" if report_link else "")
        + f"\n{STATUS}\n\n"
    )
    body = pull.body or ""
    if body.startswith(STATUS):
        body = body.split(STATUS, 2)[-1].lstrip("\n")
    github._call(lambda: pull.edit(body=note + body))
    print(f"retrain-pr: updated PR #{pull.number} with the latest state ({summary['decision']})")
    set_outputs(pr_number=str(pull.number), action="restated")


def _nothing(note: str) -> int:
    print(f"::warning::{note}" if os.environ.get("GITHUB_ACTIONS") else f"retrain-pr: {note}")
    step_summary(f"**Retraining PR:** {note}")
    return 0
