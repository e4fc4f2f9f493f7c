""".github/workflows/pr.yml under act, on PR checkouts of the session's trained repository (main).

The comment is posted by the real CML CLI (setup-cml's stand-in puts it on PATH) against the GitHub API
test server; what reaches the server is compared with the report the train job uploaded."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from model.lock_check import TITLE as LOCK_TITLE
from tests.github.act import pr_checkout, pull_request_event
from tests.repo import sh

pytestmark = pytest.mark.slow
REPO = "acme/model"


def remote_files(remote: Path) -> list[Path]:
    return sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file())


def commit(repo: Path, message: str) -> None:
    sh(["git", "commit", "-q", "-am", message], repo)


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
    assert yaml.safe_load(path.read_text())[section][key] == value


def open_pr(github_server, repo: Path, number: int, fork_owner: str | None = None) -> dict:
    event = pull_request_event(repo, number=number, fork_owner=fork_owner)
    head = event["pull_request"]["head"]
    github_server.add_pull(
        REPO, head["ref"], head_sha=head["sha"], head_repo=head["repo"]["full_name"], number=number
    )
    return event


FAST_TESTS = "tests/test_action_pins.py tests/model/test_lock_check.py"


def variables(github_server, dvc_remote: Path | None, tests: str = FAST_TESTS) -> dict[str, str]:
    """Repository variables. PYTEST_ADDOPTS narrows the workflow's test job to a few quick files: it shows
    that the job runs pytest; the outer run (this one) runs every test once."""
    found = {
        "CML_PUBLISH_URL": f"{github_server.url}/assets",
        "PYTEST_ADDOPTS": f'-m "not slow" {tests}'.strip(),
    }
    if dvc_remote:
        found["DVC_REMOTE_URL"] = str(dvc_remote)
    return found


def reproduce_and_commit(repo: Path, message: str) -> str:
    """What the author runs locally (the fix the lock check prints): repro, commit the lock and metrics."""
    sh(["dvc", "pull"], repo)
    out = sh(["dvc", "repro"], repo).stdout
    sh(["git", "add", "dvc.lock", "eval"], repo)
    commit(repo, message)
    return out


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


def run_pr(act, github_server, repo: Path, event: dict, job: str, dvc_remote: Path | None):
    """pr.yml up to `job` (and the jobs it needs), with the report's unit tests as the test job."""
    return act.run(
        repo,
        "pull_request",
        event,
        workflow="pr.yml",
        job=job,
        variables=variables(github_server, dvc_remote),
    )


def test_param_change_without_lock_fails_then_the_printed_fix_passes(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """The author changes a param and pushes without running the pipeline. CI trains, uploads what it trained
    (never pushing to the DVC remote: read-only there), comments the metrics and fails: the branch's
    dvc.lock is not what was trained. The author runs the commands the comment prints (no retraining:
    restored from the run's artifact and its run-cache) and the next run is green."""
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="lower-lr")
    old_lr = yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"]
    set_param(repo, "train", "lr", old_lr / 2)
    commit(repo, "halve the learning rate")
    event = open_pr(github_server, repo, number=7)

    remote_before = remote_files(dvc_remote)
    first = act.run(
        repo,
        "pull_request",
        event,
        workflow="pr.yml",
        variables=variables(github_server, dvc_remote),
    )
    assert remote_files(dvc_remote) == remote_before  # a PR job never writes the remote
    assert first.returncode != 0, first
    assert first.jobs() == {
        "lint": "succeeded",
        "test": "succeeded",
        "train": "failed",
        "comment": "succeeded",
    }, first
    assert "Running stage 'train'" in first.output, first  # lr changed: CI trains
    body = the_comment(github_server, 7, first)
    assert body.startswith(f"## {LOCK_TITLE}\n"), body  # what the author sees first
    assert "`dvc.lock`" in body and "stages: `train`, `evaluate`" in body
    assert "does not match the params, code and data of this PR" in body
    assert "## Model report: ✅ all gates passed" in body  # the metrics are still reviewed
    assert re.search(r"\| accuracy \| 0\.\d{4}", body), body
    assert "Params diff (1 changed)" in body and f"`train.lr` | {old_lr} | {old_lr / 2} |" in body
    assert LOCK_TITLE in first.summary("train")
    assert not github_server.calls("POST", "/telemetry")  # the workflow turns CML's telemetry off
    fix = re.search(r"```bash\n(.*?)```", body, re.S)[1].splitlines()
    download = fix[1].split("#")[0].strip()
    assert re.fullmatch(
        r"gh run download \S+ --repo acme/model --name dvc-outputs --dir \.dvc/cache", download
    )
    assert fix[2].split("#")[0].strip() == "dvc repro --pull"

    # the printed fix, run by the author (git pull has nothing to bring: CI pushes no commits). `gh run
    # download` unzips the artifact into .dvc/cache: the harness's artifact store holds the same files.
    shutil.copytree(first.artifacts / "dvc-outputs", repo / ".dvc/cache", dirs_exist_ok=True)
    out = sh(["dvc", "repro", "--pull"], repo).stdout
    assert "Stage 'train' is cached - skipping run" in out and "Running stage 'train'" not in out, out
    sh(["git", "add", "dvc.lock", "eval"], repo)
    commit(repo, "dvc.lock of the run")
    event = pull_request_event(repo, number=7)
    github_server.state.pulls[-1]["head"]["sha"] = event["pull_request"]["head"]["sha"]
    second = run_pr(act, github_server, repo, event, "comment", dvc_remote)
    assert second.returncode == 0, second
    assert "Stage 'train' is cached - skipping run" in second.output, second
    assert "lock-check: dvc.lock and the git-tracked outputs match" in second.output
    body = the_comment(github_server, 7, second)  # one comment, updated in place
    assert body.startswith("## Model report: ✅ all gates passed") and LOCK_TITLE not in body
    assert len(github_server.calls("PATCH", rf"/repos/{REPO}/issues/comments/\d+")) == 1
    assert f'#{event["pull_request"]["head"]["sha"]} "CML watermark Model report")' in body


def test_readme_only_pr_restores_from_run_cache(trained_repo, dvc_remote, tmp_path, act, github_server):
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="docs")
    readme = repo / "README.md"
    readme.write_text((readme.read_text() if readme.exists() else "") + "\nA typo fixed.\n")
    sh(["git", "add", "README.md"], repo)
    commit(repo, "docs only")
    event = open_pr(github_server, repo, number=8)

    result = run_pr(act, github_server, repo, event, "train", dvc_remote)
    assert result.returncode == 0, result
    assert "Stage 'train' is cached - skipping run" in result.output, result
    assert "Running stage 'train'" not in result.output, result
    assert "Nothing changed" in result.summary("train"), result
    assert "lock-check: dvc.lock and the git-tracked outputs match" in result.output


def test_stale_lock_and_gate_failure_both_fail_the_check(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """The author trained 2 epochs and committed that lock, then set 1 epoch and pushed: the lock is stale.
    CI trains 1 epoch, the gate fails, and the comment says both, with by how much and the fix."""
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="one-epoch")
    set_param(repo, "train", "max_epochs", 2)
    reproduce_and_commit(repo, "train for two epochs")
    set_param(repo, "train", "max_epochs", 1)  # undertrained: accuracy falls far below main
    commit(repo, "train for one epoch")
    event = open_pr(github_server, repo, number=9)

    result = run_pr(act, github_server, repo, event, "comment", dvc_remote)
    assert result.returncode != 0, result
    assert result.jobs()["train"] == "failed" and result.jobs()["comment"] == "succeeded", result
    body = the_comment(github_server, 9, result)
    assert body.startswith(f"## {LOCK_TITLE}\n"), body
    assert "does not match the params, code and data of this PR" in body and "stages: `train`" in body
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
    sh(["git", "commit", "-q", "-m", "no metrics yet"], main)
    repo = pr_checkout(main, tmp_path / "repo", dvc_remote, branch="first-model")
    (repo / "NOTES.md").write_text("first model\n")
    sh(["git", "add", "NOTES.md"], repo)
    commit(repo, "first model")
    event = open_pr(github_server, repo, number=1)

    result = run_pr(act, github_server, repo, event, "comment", dvc_remote)
    assert result.jobs()["train"] == "failed" and result.jobs()["comment"] == "succeeded", result
    body = the_comment(github_server, 1, result)
    assert "**First model**" in body and "skipped: no main baseline" in body
    assert "| accuracy | — | 0." in body
    assert body.startswith(f"## {LOCK_TITLE}") and "`eval/metrics.json`" in body  # not committed yet


def test_fork_pr_without_secrets_trains_and_says_what_it_skipped(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """A fork: no secrets, no DVC remote, read-only token. It trains and reports in the job summary, and
    uploads what it trained like any PR run: the lock check's fix restores from that artifact."""
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="fork-change")
    set_param(repo, "train", "dropout", 0.2)
    commit(repo, "more dropout")
    event = open_pr(github_server, repo, number=11, fork_owner="outsider")

    first = run_pr(act, github_server, repo, event, "comment", None)
    assert first.returncode != 0, first
    assert first.jobs()["train"] == "failed" and "comment" not in first.jobs(), first
    summary = first.summary("train")
    assert "Model report: ✅" in summary and "fork PRs get a read-only token" in summary, summary
    assert "The DVC remote: none reachable" in summary, summary
    # even a fork's run hands over what it trained: the fix restores from its artifact
    assert LOCK_TITLE in summary and "--name dvc-outputs --dir .dvc/cache" in summary, summary
    assert (first.artifacts / "dvc-outputs" / "files" / "md5").is_dir()
    assert not github_server.state.issue_comments and not github_server.state.assets
    assert "Running stage 'train'" in first.output
