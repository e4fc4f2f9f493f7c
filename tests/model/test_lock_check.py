"""`mlops lock-check`: a branch whose dvc.lock or metrics differ from what `dvc repro` produced fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from mlops.release.lock_check import TITLE, check, git_tracked_outputs
from tests.repo import sh

DVC_YAML = {
    "stages": {
        "train": {"cmd": "mlops train", "params": ["train"], "outs": ["artifacts/model"]},
        "evaluate": {
            "cmd": "mlops evaluate",
            "metrics": [{"eval/metrics.json": {"cache": False}}],
            "plots": [{"eval/plots/roc.csv": {"cache": False, "x": "fpr"}}, "eval/plots/cached.csv"],
        },
    }
}
LOCK = {"schema": "2.0", "stages": {"train": {"params": {"params.yaml": {"train": {"lr": 0.003}}}}}}


@pytest.fixture
def branch(tmp_path, monkeypatch) -> Path:
    """A committed PR branch: dvc.yaml, dvc.lock and the git-tracked outputs, as after a repro."""
    (tmp_path / "eval/plots").mkdir(parents=True)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    (tmp_path / "eval/metrics.json").write_text('{"accuracy": 0.95}\n')
    (tmp_path / "eval/plots/roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")
    sh(["git", "init", "-q", "-b", "feature"], tmp_path)
    sh(["git", "add", "-A"], tmp_path)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "trained"], tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_DIR", os.fspath(tmp_path / ".git"))
    return tmp_path


def test_git_tracked_outputs_are_the_cache_false_ones(branch):
    assert git_tracked_outputs() == ["eval/metrics.json", "eval/plots/roc.csv"]


def test_a_branch_holding_what_was_trained_passes(branch, capsys):
    assert check() == 0
    assert "match what the pipeline produced" in capsys.readouterr().out


def test_stale_lock_fails_with_the_fix_on_top_of_the_report(branch, tmp_path, capsys, monkeypatch):
    """The PR changed params but committed the lock of an earlier run: repro rewrote it."""
    for name in ("GITHUB_RUN_ID", "GITHUB_REPOSITORY", "GITHUB_EVENT_PATH"):  # as outside Actions
        monkeypatch.delenv(name, raising=False)
    lock = yaml.safe_load((branch / "dvc.lock").read_text())
    lock["stages"]["train"]["params"]["params.yaml"]["train"]["lr"] = 0.001
    (branch / "dvc.lock").write_text(yaml.safe_dump(lock))
    (branch / "eval/metrics.json").write_text('{"accuracy": 0.93}\n')
    report, summary = tmp_path / "report.md", tmp_path / "summary.md"
    report.write_text("## Model report: ✅ all gates passed\n")

    assert check(report=report, summary=summary, pushed=True) == 1
    text = report.read_text()
    assert text.startswith(f"## {TITLE}\n") and text.endswith("## Model report: ✅ all gates passed\n")
    assert "is not what the params, code and data of this PR produce" in text
    assert "`dvc.lock`, `eval/metrics.json` (stages: `train`)" in text
    assert "```bash\nmlops adopt <run id>\n```" in text  # one command: no gh, no dvc, no git add
    assert "nothing to adopt" not in text
    assert summary.read_text() == text.split("## Model report")[0]
    assert "::error title=dvc.lock::" in capsys.readouterr().out


def test_the_fix_names_the_run_and_the_repository_and_a_fork_gets_the_maintainer_line(
    branch, tmp_path, monkeypatch
):
    event = tmp_path / "event.json"
    event.write_text('{"pull_request": {"number": 7, "head": {"repo": {"full_name": "someone/model"}}}}')
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_RUN_ID", "99")
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/model")
    (branch / "eval/metrics.json").write_text('{"accuracy": 0.93}\n')
    summary = tmp_path / "summary.md"
    assert check(summary=summary, pushed=True) == 1
    text = summary.read_text()
    assert "```bash\nmlops adopt 99 --repo octo/model\n```" in text
    assert (
        "This is a fork PR: a maintainer can run `gh pr checkout 7 && mlops adopt 99 --repo octo/model`"
        in text
    )


def test_only_a_rewritten_but_equal_lock_passes(branch):
    """DVC may write the same entries again in another layout: nothing to commit, so no failure."""
    (branch / "dvc.lock").write_text(yaml.safe_dump(LOCK, default_flow_style=True))
    assert check() == 0


def test_missing_lock_and_new_outputs_fail_and_say_so(branch, tmp_path):
    """A first PR that never committed a lock: repro created it, and a new plot file."""
    sh(["git", "rm", "-q", "--cached", "dvc.lock"], branch)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "no lock"], branch)
    (branch / "eval/plots/roc.csv").unlink()
    report = tmp_path / "report.md"
    report.write_text("body\n")
    assert check(report=report, pushed=False) == 1
    text = report.read_text()
    assert "the branch has no `dvc.lock`" in text
    assert "`dvc.lock`, `eval/plots/roc.csv`" in text
    assert "uploaded no `dvc-outputs` artifact, so there is nothing to adopt yet" in text
