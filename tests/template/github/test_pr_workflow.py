""".github/workflows/pr.yml under act, on PR checkouts of the session's trained repository (main).

The comment is posted by the real CML CLI (setup-cml's stand-in puts it on PATH) against the GitHub API
test server; what reaches the server is compared with the report the train job uploaded.

"A fresh fork" below is a repository as a forker has it on day one: no DVC remote (no DVC_REMOTE_URL,
and the clone's local remote removed), a new Actions state (no cache), no secrets but the job token, and
no repository variables but the ones the harness itself needs: CML_PUBLISH_URL (CML's images go to the
test server instead of CML's public host), PIP_EXTRA_INDEX_URL (this machine's package index; the
harness adds it) and PYTEST_ADDOPTS, which narrows the NESTED test job to one quick file because this
outer pytest run already runs every test once.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from mlops.release.lock_check import TITLE as LOCK_TITLE
from tests.repo import sh
from tests.template.github.act import pr_checkout, pull_request_event

pytestmark = pytest.mark.slow
REPO = "acme/model"
ALL_GREEN = {name: "succeeded" for name in ("lint", "test", "train", "comment", "check")}
ADOPT = re.compile(r"^\s*(mlops adopt (\d+) --repo acme/model)\s*$", re.M)


def remote_files(remote: Path) -> list[Path]:
    return sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file())


def commit(repo: Path, message: str) -> None:
    sh(["git", "commit", "-q", "-am", message], repo)


def _find(node, key: str):
    """The first `key` in a section, nested blocks included (train.optimizer.lr), as set_param edits it."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        for child in node.values():
            found = _find(child, key)
            if found is not None:
                return found
    return None


def set_param(repo: Path, section: str, key: str, value) -> None:
    """Edit one value in params.yaml in place (keeps the comments, as a person's edit would)."""
    path = repo / "params.yaml"
    text = path.read_text()
    block = re.search(rf"^{section}:\n(?:[ #].*\n|\n)*", text, re.M)
    assert block, section
    edited = re.sub(
        rf"^(\s+{key}:\s*)[^#\n]*?(\s*(#.*)?)$", rf"\g<1>{value}\g<2>", block[0], count=1, flags=re.M
    )
    path.write_text(text.replace(block[0], edited))
    assert _find(yaml.safe_load(path.read_text())[section], key) == value


def fresh_fork(trained_repo: Path, dst: Path, dvc_remote: Path, branch: str) -> Path:
    """A PR checkout with no DVC remote at all (the clone's local one removed; the template's default,
    a plain directory, does not exist on a runner), pushed to origin as a PR's branch is."""
    repo = pr_checkout(trained_repo, dst, dvc_remote, branch=branch)
    (repo / ".dvc" / "config.local").unlink()
    return repo


def open_pr(github_server, repo: Path, number: int, fork_owner: str | None = None) -> dict:
    event = pull_request_event(repo, number=number, fork_owner=fork_owner)
    head = event["pull_request"]["head"]
    github_server.add_pull(
        REPO, head["ref"], head_sha=head["sha"], head_repo=head["repo"]["full_name"], number=number
    )
    return event


def new_head(github_server, repo: Path, number: int) -> dict:
    """The `synchronize` of a push to the PR's branch: same PR, new head sha."""
    event = pull_request_event(repo, number=number)
    event["action"] = "synchronize"
    pull = next(p for p in github_server.state.pulls if p["number"] == number)
    pull["head"]["sha"] = event["pull_request"]["head"]["sha"]
    return event


FAST_TESTS = "tests/test_action_pins.py"


def variables(github_server, dvc_remote: Path | None = None, **more: str) -> dict[str, str]:
    """Repository variables: what the harness needs (see the module docstring), plus `more`."""
    found = {"CML_PUBLISH_URL": f"{github_server.url}/assets", "PYTEST_ADDOPTS": FAST_TESTS, **more}
    if dvc_remote:
        found["DVC_REMOTE_URL"] = str(dvc_remote)
    return found


def the_comment(github_server, number: int, result) -> str:
    """The one comment on PR `number`, checked to be exactly the uploaded report with its images published."""
    [comment] = github_server.comments(REPO, number)
    body = comment["body"]
    report = (result.artifacts / "model-report" / "report.md").read_text()
    assert github_server.unpublished(body) == report  # every byte of report.md, links rewritten
    for asset in github_server.state.assets.values():
        assert asset.data == (result.artifacts / "model-report" / asset.filename).read_bytes()
    assert "](roc.png)" not in body and "![ROC curve](https://" in body
    return body


def artifact_zip(folder: Path) -> bytes:
    """An artifact as GitHub serves it: a zip of the uploaded folder's contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def pr(act, github_server, repo: Path, event: dict, job: str | None = None, **kwargs):
    return act.run(repo, "pull_request", event, workflow="pr.yml", job=job, **kwargs)


def test_docs_only_pr_on_a_fresh_fork_is_green_with_no_manual_step(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """No remote, no cache, no secrets: nothing the pipeline reads changed, so nothing is reproduced (every
    stage is unchanged from main) and the branch's lock is main's: every job green, the comment posted."""
    repo = fresh_fork(trained_repo, tmp_path / "repo", dvc_remote, branch="docs")
    (repo / "README.md").write_text((repo / "README.md").read_text() + "\nA typo fixed.\n")
    commit(repo, "docs only")
    event = open_pr(github_server, repo, number=8)

    result = pr(act, github_server, repo, event, variables=variables(github_server))
    assert result.returncode == 0, result
    assert result.jobs() == ALL_GREEN, result
    assert "Running stage 'train'" not in result.output, result
    assert "Stage 'train' is unchanged from origin/main: not reproduced" in result.output, result
    assert "No DVC remote" in result.output
    body = the_comment(github_server, 8, result)
    assert body.startswith("## Model report: ✅") and LOCK_TITLE not in body, body
    assert "Nothing changed" in body


def test_params_pr_on_a_fresh_fork_gets_one_command_and_no_cache_of_an_earlier_commit(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """The author halves train.lr, retrains on their own machine, commits that lock and pushes. CI (no
    remote, no cache) trains, and its model is not the author's: the run is red and the comment starts
    with ONE command, `mlops adopt <run id> --repo acme/model`. The author runs exactly that line, which
    restores what CI trained without retraining.

    Then the force-push attack on the PR's cache scope: what the branch had so far is an earlier commit
    whose (edited) workflow saved an entry in the PR's Actions cache scope under the restore-key prefix
    `dvc-Linux-`, holding a model whose bytes its code never produced and a lock naming them; the branch
    is force-pushed to one clean-looking commit (the lr change, that lock, its metrics). The final run
    must not restore that entry: it trains, its model is the honest one, and the check is red.

    "Another machine": on this one machine training is deterministic (nothing run-specific sits in the
    DVC-tracked outputs), so a real local retrain gives CI's bytes. The test does retrain locally (the
    author's real step) and then gives the model folder in the committed lock an md5 that CI cannot
    reproduce, which is all that a retrain on another CPU changes as CI sees it: CI never sees the
    author's cache (no remote), only the committed lock. A different torch thread count was not used:
    whether it changes the bytes of this small model is not guaranteed, so the test could pass vacuously.
    """
    repo = fresh_fork(trained_repo, tmp_path / "repo", dvc_remote, branch="lower-lr")
    old_lr = yaml.safe_load((repo / "params.yaml").read_text())["train"]["optimizer"]["lr"]
    set_param(repo, "train", "lr", old_lr / 2)
    sh(["mlops", "data", "--no-push"], repo)  # no remote: the deterministic bootstrap
    sh(["dvc", "repro"], repo)
    lock = (repo / "dvc.lock").read_text()
    model_md5 = yaml.safe_load(lock)["stages"]["train"]["outs"][0]["md5"]
    assert model_md5.endswith(".dir"), model_md5
    elsewhere = "0123456789abcdef0123456789abcdef.dir"  # the model another CPU made
    (repo / "dvc.lock").write_text(lock.replace(model_md5, elsewhere))
    sh(["git", "add", "dvc.lock", "eval", "params.yaml"], repo)
    commit(repo, "halve the learning rate (trained on my machine)")
    sh(["git", "push", "-q", "-u", "origin", "lower-lr"], repo)
    event = open_pr(github_server, repo, number=7)

    first = pr(act, github_server, repo, event, variables=variables(github_server))
    assert first.returncode != 0, first
    assert first.jobs() == {**ALL_GREEN, "train": "failed", "check": "failed"}, first
    assert "Running stage 'train'" in first.output, first  # lr changed: CI trains
    body = the_comment(github_server, 7, first)
    assert body.startswith(f"## {LOCK_TITLE}\n"), body  # what the author sees first
    assert "## Model report: ✅ all gates passed" in body  # the metrics are still reviewed
    assert "Params diff (1 changed)" in body and f"`train.optimizer.lr` | {old_lr} | {old_lr / 2} |" in body
    assert not github_server.calls("POST", "/telemetry")  # the workflow turns CML's telemetry off
    [(line, run_id)] = ADOPT.findall(body)  # ONE command, with the run id filled in
    assert line in first.summary("train")

    # GitHub keeps the run and its artifact; the author runs the printed line in their clone
    head = event["pull_request"]["head"]["sha"]
    outputs = first.artifacts / "dvc-outputs"
    ci_lock = (outputs / "branch" / "dvc.lock").read_text()
    assert elsewhere not in ci_lock
    github_server.add_run(
        REPO, head, {"dvc-outputs": artifact_zip(outputs)}, conclusion="failure", run_id=int(run_id)
    )
    api = {"GITHUB_API_URL": github_server.api_url, "GH_TOKEN": "author-token"}
    ca = str(github_server.ca_bundle)
    out = sh(shlex.split(line), repo, **api, REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca)
    assert "Running stage" not in out.stdout + out.stderr  # restored, not retrained
    assert (repo / "dvc.lock").read_text() == ci_lock
    assert sh(["git", "status", "--porcelain"], repo).stdout == ""
    subject = sh(["git", "log", "-1", "--format=%s"], repo).stdout
    assert run_id in subject, subject
    bare = tmp_path / "repo-origin.git"
    pushed = sh(["git", "rev-parse", "lower-lr"], bare).stdout
    assert pushed == sh(["git", "rev-parse", "HEAD"], repo).stdout  # adopt pushed it

    # the attacker's earlier commit: planted model bytes (one file more in the model folder), a lock
    # and metrics consistent with them, and the whole .dvc/cache saved in the PR's scope
    honest = yaml.safe_load(ci_lock)["stages"]["train"]["outs"][0]["md5"]
    (repo / "artifacts" / "model" / "planted.bin").write_bytes(b"not what the code trained\n")
    sh(["dvc", "commit", "-f", "train"], repo)
    sh(["dvc", "repro"], repo)  # evaluate follows the planted model: the lock is consistent
    planted = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]["outs"][0]["md5"]
    assert planted != honest
    scope = act.state / "cache" / quote("refs/pull/7/merge", safe="")
    assert scope.is_dir()  # the scope the runs of PR 7 save in (the lint job's pre-commit cache is there)
    shutil.copytree(repo / ".dvc" / "cache", scope / "dvc-Linux-planted" / "0")
    sh(["git", "add", "dvc.lock", "eval", "params.yaml"], repo)
    sh(["git", "reset", "-q", "--soft", "origin/main"], repo)  # one commit on main: the clean-looking diff
    sh(["git", "commit", "-q", "-m", "halve the learning rate"], repo)
    sh(["git", "push", "-q", "-f", "origin", "lower-lr"], repo)
    forced = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()

    second = pr(
        act, github_server, repo, new_head(github_server, repo, 7), variables=variables(github_server)
    )
    assert "Cache restored from key: dvc-" not in second.output, second  # no .dvc/cache from any scope
    assert "Running stage 'train'" in second.output, second  # trained, not "cached - skipping run"
    assert second.jobs() == {**ALL_GREEN, "train": "failed", "check": "failed"}, second
    trained = (second.artifacts / "dvc-outputs" / "branch" / "dvc.lock").read_text()
    assert yaml.safe_load(trained)["stages"]["train"]["outs"][0]["md5"] == honest  # not the planted bytes
    body = the_comment(github_server, 7, second)  # one comment, updated in place
    assert body.startswith(f"## {LOCK_TITLE}\n"), body
    assert len(github_server.calls("PATCH", rf"/repos/{REPO}/issues/comments/\d+")) == 1
    assert f'#{forced} "CML watermark Model report")' in body


def test_same_repo_pr_with_the_lock_bot_needs_zero_commands(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """A fresh fork whose owner configured the lock bot App (LOCK_BOT_APP_ID + LOCK_BOT_APP_PRIVATE_KEY):
    the author pushes a params change and nothing else. The first run is red on the lock and the bot
    pushes "dvc.lock and metrics of run 1" onto the branch; the run for that commit is green."""
    repo = fresh_fork(trained_repo, tmp_path / "repo", dvc_remote, branch="more-dropout")
    set_param(repo, "train", "dropout", 0.2)
    commit(repo, "more dropout")
    sh(["git", "push", "-q", "-u", "origin", "more-dropout"], repo)
    event = open_pr(github_server, repo, number=5)
    bot = {
        "variables": variables(github_server, LOCK_BOT_APP_ID="4242"),
        "secrets": {"LOCK_BOT_APP_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----test"},
    }

    first = pr(act, github_server, repo, event, **bot)
    assert first.jobs() == {**ALL_GREEN, "train": "failed", "check": "failed", "lock-bot": "succeeded"}, first
    bare = tmp_path / "repo-origin.git"
    log = sh(["git", "log", "-2", "--format=%H %s", "more-dropout"], bare).stdout.splitlines()
    assert log[0].split(" ", 1)[1] == "dvc.lock and metrics of run 1", log
    assert log[1].split(" ", 1)[0] == event["pull_request"]["head"]["sha"]  # on top of what was trained
    changed = sh(["git", "show", "--name-only", "--format=", "more-dropout"], bare).stdout.split()
    assert "dvc.lock" in changed and "eval/metrics.json" in changed, changed
    assert all(p == "dvc.lock" or p.startswith("eval/") for p in changed), changed
    bot_lock = sh(["git", "show", "more-dropout:dvc.lock"], bare).stdout
    assert bot_lock == (first.artifacts / "dvc-outputs" / "branch" / "dvc.lock").read_text()

    sh(["git", "pull", "-q", "--ff-only"], repo)  # the bot's push starts the next run (an App token's does)
    second = pr(act, github_server, repo, new_head(github_server, repo, 5), **bot)
    assert second.returncode == 0, second
    assert second.jobs() == ALL_GREEN, second  # no lock-bot job: the lock is ok
    # trained again (no run of a PR feeds a later one) and, deterministic, to the bytes the bot committed
    assert "Running stage 'train'" in second.output, second
    body = the_comment(github_server, 5, second)
    assert body.startswith("## Model report: ✅") and LOCK_TITLE not in body, body


def test_stale_lock_and_gate_failure_both_fail_the_check(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """With a DVC remote: the author trained 2 epochs and committed that lock, then set 1 epoch and pushed:
    the lock is stale. CI trains 1 epoch, the gate fails, and the comment says both, with by how much and
    the one fix."""
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="one-epoch")
    set_param(repo, "train", "max_epochs", 2)
    sh(["dvc", "pull"], repo)
    sh(["dvc", "repro"], repo)
    sh(["git", "add", "dvc.lock", "eval"], repo)
    commit(repo, "train for two epochs")
    set_param(repo, "train", "max_epochs", 1)  # undertrained: accuracy falls far below main
    commit(repo, "train for one epoch")
    event = open_pr(github_server, repo, number=9)

    remote_before = remote_files(dvc_remote)
    result = pr(act, github_server, repo, event, "comment", variables=variables(github_server, dvc_remote))
    assert remote_files(dvc_remote) == remote_before  # a PR job never writes the remote
    assert result.returncode != 0, result
    assert result.jobs() == {"train": "failed", "comment": "succeeded"}, result
    body = the_comment(github_server, 9, result)
    assert body.startswith(f"## {LOCK_TITLE}\n"), body
    assert len(ADOPT.findall(body)) == 1, body
    report = body[body.index("## Model report") :]
    assert "❌" in report.splitlines()[0], report
    failed = re.findall(r"^\*   ❌ \*\*(.+?)\*\*: (.+)$", report, re.M)
    assert failed, report
    assert any("short by" in detail or "over by" in detail for _, detail in failed), failed  # by how much


def test_first_pr_without_metrics_on_main(trained_repo, dvc_remote, tmp_path, act, github_server):
    """main has the pipeline but was never trained: no eval/metrics.json to compare with. The PR that
    adds the first model must commit its metrics, and the check says so."""
    main = tmp_path / "untrained"
    sh(["git", "clone", "-q", str(trained_repo), str(main)], tmp_path)
    sh(["git", "rm", "-q", "-r", "--cached", "eval"], main)
    (main / "eval").rename(tmp_path / "eval-removed")
    sh(["git", "commit", "-q", "--allow-empty", "-m", "no metrics yet"], main)
    repo = pr_checkout(main, tmp_path / "repo", dvc_remote, branch="first-model")
    (repo / "NOTES.md").write_text("first model\n")
    sh(["git", "add", "NOTES.md"], repo)
    commit(repo, "first model")
    event = open_pr(github_server, repo, number=1)

    result = pr(act, github_server, repo, event, "comment", variables=variables(github_server, dvc_remote))
    assert result.jobs() == {"train": "failed", "comment": "succeeded"}, result
    body = the_comment(github_server, 1, result)
    assert "**First model**" in body and "skipped: no main baseline" in body
    assert "| accuracy | — | 0." in body
    assert body.startswith(f"## {LOCK_TITLE}") and "`eval/metrics.json`" in body  # not committed yet


def test_fork_pr_without_secrets_trains_and_says_what_it_skipped(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """An outside contributor's fork: no secrets, no DVC remote, read-only token, no comment and no lock
    bot (even where the base repository configured one). It trains and reports in the job summary, with
    the author's one command and the maintainer's one-liner, and uploads what it trained."""
    repo = fresh_fork(trained_repo, tmp_path / "repo", dvc_remote, branch="fork-change")
    set_param(repo, "train", "dropout", 0.2)
    commit(repo, "more dropout")
    event = open_pr(github_server, repo, number=11, fork_owner="outsider")

    first = pr(
        act, github_server, repo, event, "lock-bot", variables=variables(github_server, LOCK_BOT_APP_ID="1")
    )
    assert first.returncode != 0, first
    assert first.jobs() == {"train": "failed"}, first  # lock-bot skipped on a fork
    summary = first.summary("train")
    assert "Model report: ✅" in summary and "fork PRs get a read-only token" in summary, summary
    assert "The DVC remote: none reachable" in summary, summary
    assert LOCK_TITLE in summary and re.search(r"mlops adopt \d+ --repo acme/model", summary), summary
    assert (first.artifacts / "dvc-outputs" / "files" / "md5").is_dir()
    assert (first.artifacts / "dvc-outputs" / "branch" / "dvc.lock").is_file()
    assert not github_server.state.issue_comments and not github_server.state.assets
    assert "Running stage 'train'" in first.output
