"""drift.yml under act, against the GitHub API test server, a local bare git remote and the DVC remote.

One repository, three scheduled runs: drifted inputs open exactly one retraining PR (and alert the
webhook in the MLOPS_ALERT_URLS secret); more labels and a re-run update that PR; an undrifted window opens
nothing. Then the retraining branch is trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.monitoring import logs
from tests.monitoring.conftest import Webhook
from tests.repo import clone, sh
from tests.template.github.act import pr_checkout


def production(trained: Path, prod: Path, name: str, rows: int, seed: int, sd: float) -> None:
    """Traffic in prod/NAME/logs, its labels in prod/NAME/feedback (the repository variables point there)."""
    folder = prod / name
    logs.production(
        trained / "artifacts/prepared",
        folder / "logs" / "model-host-1.jsonl",
        folder / "feedback" / "labels.jsonl",
        rows,
        seed,
        sd,
    )


def md5(text: str) -> str:
    return yaml.safe_load(text)["outs"][0]["md5"]


@pytest.mark.slow
def test_drift_workflow_opens_then_updates_one_pr_and_the_branch_trains(
    trained_repo, dvc_remote, tmp_path, act, github_server, monkeypatch
):
    monkeypatch.chdir(trained_repo)  # the log helpers read params.yaml from the cwd
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="ops")
    bare = tmp_path / "repo-origin.git"
    prod = tmp_path / "prod"
    production(trained_repo, prod, "drifted", 150, seed=1, sd=1.0)

    hook = Webhook()  # the alert receiver, on 127.0.0.1 like act's runner

    def run(name: str, secrets: dict | None = None):
        where = {
            "INFERENCE_LOG_URI": str(prod / name / "logs"),
            "FEEDBACK_URI": str(prod / "drifted" / "feedback"),
            "DVC_REMOTE_URL": str(dvc_remote),
        }
        return act.run(
            repo,
            "workflow_dispatch",
            {"inputs": {"window": "30d"}},
            workflow="drift.yml",
            variables=where,
            secrets=secrets,
        )

    try:
        first = run("drifted", {"MLOPS_ALERT_URLS": hook.url})
    finally:
        hook.close()
    assert first.returncode == 0, first
    assert first.jobs() == {"detect": "succeeded", "retrain-pr": "succeeded"}
    (alert,) = hook.received
    assert alert["title"] == "mlops drift: drift" and "/actions/runs/" in alert["message"]
    (pull,) = github_server.state.pulls
    branch = pull["head"]["ref"]
    assert branch == "retrain/main" and pull["state"] == "open"
    assert "Drift detected" in pull["body"] and "**150 new labelled production rows**" in pull["body"]
    assert sh(["git", "diff", "--name-only", "main", branch], bare).stdout.split() == ["data.dvc"]
    new_md5 = md5(sh(["git", "show", f"{branch}:data.dvc"], bare).stdout)
    assert (
        dvc_remote / "files" / "md5" / new_md5[:2] / new_md5[2:]
    ).exists()  # the new data is in the remote
    summary = json.loads((first.artifacts / "drift-report" / "summary.json").read_text())
    assert summary["decision"] == "drift" and (first.artifacts / "drift-report" / "report.html").exists()
    assert "Drift detected" in first.summary("detect")
    assert "RETRAIN_PR_TOKEN" in first.summary("retrain-pr")  # GITHUB_TOKEN fallback is called out

    production(
        trained_repo, prod, "drifted", 60, seed=2, sd=1.0
    )  # more traffic and labels; the next scheduled run
    second = run("drifted")
    assert second.returncode == 0, second
    assert len(github_server.state.pulls) == 1, "a second PR was opened"
    assert len(github_server.calls("PATCH", r"/repos/acme/model/pulls/\d+")) == 1
    assert "**210 new labelled production rows**" in github_server.state.pulls[0]["body"]
    updated_md5 = md5(sh(["git", "show", f"{branch}:data.dvc"], bare).stdout)
    assert updated_md5 != new_md5

    production(trained_repo, prod, "calm", 150, seed=3, sd=0.0)
    third = run("calm")
    assert third.returncode == 0, third
    assert third.jobs() == {"detect": "succeeded", "restate-pr": "succeeded"}  # retrain-pr skipped
    assert len(github_server.calls("POST", r"/repos/acme/model/pulls")) == 1
    assert len(github_server.calls("PATCH", r"/repos/acme/model/pulls/\d+")) == 2  # the body restated
    assert "Latest drift check: no_drift" in github_server.state.pulls[0]["body"]

    # the retraining branch validates and trains on the new snapshot
    work = clone(bare, tmp_path / "review", dvc_remote)
    sh(["git", "switch", "-q", branch], work)
    sh(["dvc", "pull", "data.dvc"], work)
    assert "Running stage 'train'" in sh(["dvc", "repro"], work).stdout  # trained, not restored from cache
    validation = json.loads((work / "reports/validation.json").read_text())
    assert validation["ok"] and validation["rows"] == 569 + 210
    prepared = sum(
        len(pd.read_parquet(work / f"artifacts/prepared/{s}.parquet")) for s in ("train", "val", "test")
    )
    assert prepared == 779 and (work / "eval/metrics.json").exists()


@pytest.mark.slow
def test_without_a_dvc_remote_the_run_refuses_and_keeps_the_snapshot(
    trained_repo, dvc_remote, tmp_path, act, github_server, monkeypatch
):
    """A fork with no DVC_REMOTE_URL: its default remote is a folder on the runner. retrain-pr pushes
    nothing and fails naming DVC_REMOTE_URL; the snapshot is the artifact, and its README brings it back."""
    monkeypatch.chdir(trained_repo)
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="ops")
    (repo / ".dvc" / "config.local").unlink()  # a fork's checkout: only the template's ../../dvc-storage
    bare = tmp_path / "repo-origin.git"
    prod = tmp_path / "prod"
    # rows of its own: the first test pushes its snapshot to the same session remote
    production(trained_repo, prod, "drifted", 150, seed=5, sd=1.0)
    where = {"INFERENCE_LOG_URI": str(prod / "drifted/logs"), "FEEDBACK_URI": str(prod / "drifted/feedback")}
    result = act.run(
        repo, "workflow_dispatch", {"inputs": {"window": "30d"}}, workflow="drift.yml", variables=where
    )
    assert result.returncode != 0, result
    assert result.jobs() == {"detect": "succeeded", "retrain-pr": "failed"}, result
    assert "is a local directory" in result.output and "DVC_REMOTE_URL is not set" in result.output
    assert "refusing to push the new data snapshot" in result.output
    summary = result.summary("retrain-pr")
    assert (
        "kept as the artifact `retrain-snapshot`" in summary and "gh variable set DVC_REMOTE_URL" in summary
    )
    assert github_server.state.pulls == [] and sh(["git", "branch", "--list", "retrain/*"], bare).stdout == ""

    kept = result.artifacts / "retrain-snapshot"
    new_md5 = md5((kept / "data.dvc").read_text())
    assert (kept / "files/md5" / new_md5[:2] / new_md5[2:]).exists()
    assert not (dvc_remote / "files/md5" / new_md5[:2] / new_md5[2:]).exists()
    # nothing lost: the README's commands (after the download) propose it from a maintainer's clone
    sh(["git", "symbolic-ref", "HEAD", "refs/heads/main"], bare)
    store = tmp_path / "store"
    work = clone(bare, tmp_path / "maintainer", store)
    sh(["cp", "-a", str(kept), str(work / "retrain-snapshot")], tmp_path)
    commands = (kept / "README.md").read_text().split("```bash\n")[1].split("```")[0].splitlines()
    assert commands[0].startswith("gh run download ") and commands[0].endswith(
        " -n retrain-snapshot -D retrain-snapshot"
    )
    for command in commands[1:]:
        sh(command, work)
    assert (store / "files/md5" / new_md5[:2] / new_md5[2:]).exists()
    validation = sh(["mlops", "validate"], work).stdout
    assert "719 rows" in validation, validation
