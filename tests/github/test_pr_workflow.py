""".github/workflows/pr.yml under act, on PR checkouts of the session's trained repository (main)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.github.act import pr_checkout, pull_request_event
from tests.repo import sh

pytestmark = pytest.mark.slow
REPO = "acme/model"


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


def variables(github_server, dvc_remote: Path | None, tests: str = "tests/review") -> dict[str, str]:
    """Repository variables. PYTEST_ADDOPTS narrows the workflow's test job: the first test runs every fast
    test under act; the others run the report's unit tests only, since this outer run covers the rest."""
    found = {
        "CML_PUBLISH_URL": f"{github_server.url}/assets",
        "PYTEST_ADDOPTS": f'-m "not slow" {tests}'.strip(),
    }
    if dvc_remote:
        found["DVC_REMOTE_URL"] = str(dvc_remote)
    return found


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


def test_param_change_trains_reports_and_updates_one_comment(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="lower-lr")
    old_lr = yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"]
    set_param(repo, "train", "lr", old_lr / 2)
    commit(repo, "halve the learning rate")
    event = open_pr(github_server, repo, number=7)

    first = act.run(
        repo,
        "pull_request",
        event,
        workflow="pr.yml",
        variables=variables(github_server, dvc_remote, tests=""),
    )
    assert first.returncode == 0, first
    assert first.jobs() == {
        "lint": "succeeded",
        "test": "succeeded",
        "train": "succeeded",
        "comment": "succeeded",
    }, first
    assert "Running stage 'train'" in first.output, first  # lr changed: it retrains
    [comment] = github_server.comments(REPO, 7)
    body = comment["body"]
    assert body.startswith("## Model report: ✅ all gates passed")
    assert re.search(r"\| accuracy \| 0\.\d{4} \| 0\.\d{4} \| ([+-]0\.\d{4}|0) \|", body), (
        body
    )  # main, PR, delta
    assert "Params diff (1 changed)" in body and f"| `train.lr` | {old_lr} | {old_lr / 2} |" in body
    assert "✅ | max regression roc_auc" in body and "![ROC curve](" in body
    assert "![ROC curve](roc.png)" not in body  # images were published (links rewritten)
    assert (first.artifacts / "model-report" / "roc.png").stat().st_size > 1000
    assert first.cml_calls[0][:3] == ["comment", "update", "--target=pr"]
    assert "--watermark-title=Model report" in first.cml_calls[0]

    second = run_pr(act, github_server, repo, event, "comment", dvc_remote)
    assert second.returncode == 0, second
    comments = github_server.comments(REPO, 7)
    assert [c["id"] for c in comments] == [comment["id"]]  # updated in place, not a second comment
    assert len(github_server.calls("PATCH", rf"/repos/{REPO}/issues/comments/{comment['id']}")) == 1
    assert "Stage 'train' is cached - skipping run" in second.output, second  # the run-cache pushed by run 1


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


def test_gate_failure_fails_the_check_and_says_why(trained_repo, dvc_remote, tmp_path, act, github_server):
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="one-epoch")
    set_param(repo, "train", "max_epochs", 1)  # undertrained: accuracy falls far below main
    commit(repo, "train for one epoch")
    event = open_pr(github_server, repo, number=9)

    result = run_pr(act, github_server, repo, event, "comment", dvc_remote)
    assert result.returncode != 0, result
    assert result.jobs()["train"] == "failed" and result.jobs()["comment"] == "succeeded", result
    [comment] = github_server.comments(REPO, 9)
    assert "❌" in comment["body"].splitlines()[0], comment["body"]
    failed = re.findall(r"^- ❌ \*\*(.+?)\*\*: (.+)$", comment["body"], re.M)
    assert failed, comment["body"]
    assert any("short by" in detail or "over by" in detail for _, detail in failed), failed  # by how much


def test_first_pr_without_metrics_on_main(trained_repo, dvc_remote, tmp_path, act, github_server):
    """main has the pipeline but was never trained: no eval/metrics.json to compare with."""
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
    assert result.returncode == 0, result
    [comment] = github_server.comments(REPO, 1)
    assert "**First model**" in comment["body"] and "skipped: no main baseline" in comment["body"]
    assert "| accuracy | — | 0." in comment["body"]


def test_fork_pr_without_secrets_trains_and_says_what_it_skipped(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """A fork: no secrets, no DVC remote, read-only token. The Actions cache still saves retraining."""
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="fork-change")
    set_param(repo, "train", "dropout", 0.2)
    commit(repo, "more dropout")
    event = open_pr(github_server, repo, number=11, fork_owner="outsider")

    first = run_pr(act, github_server, repo, event, "comment", None)
    assert first.returncode == 0, first
    assert first.jobs()["train"] == "succeeded" and "comment" not in first.jobs(), first
    summary = first.summary("train")
    assert "Model report: ✅" in summary and "fork PRs get a read-only token" in summary, summary
    assert "no reachable DVC remote" in summary, summary
    assert not github_server.state.issue_comments and not first.cml_calls
    assert "Running stage 'train'" in first.output

    again = run_pr(act, github_server, repo, event, "train", None)
    assert again.returncode == 0, again
    assert "Stage 'train' is cached - skipping run" in again.output, again  # from the Actions cache
