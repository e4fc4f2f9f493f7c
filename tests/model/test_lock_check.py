"""`mlops lock-check`: a branch whose dvc.lock or metrics differ from what `dvc repro` produced fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from model.lock_check import TITLE, check, git_tracked_outputs
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
    sh(["git", "commit", "-q", "-m", "trained"], tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_DIR", os.fspath(tmp_path / ".git"))
    return tmp_path


def test_git_tracked_outputs_are_the_cache_false_ones(branch):
    assert git_tracked_outputs() == ["eval/metrics.json", "eval/plots/roc.csv"]


def test_a_branch_holding_what_was_trained_passes(branch, capsys):
    assert check() == 0
    assert "match what the pipeline produced" in capsys.readouterr().out


def test_stale_lock_fails_with_the_fix_on_top_of_the_report(branch, tmp_path, capsys):
    """The PR changed params but committed the lock of an earlier run: repro rewrote it."""
    lock = yaml.safe_load((branch / "dvc.lock").read_text())
    lock["stages"]["train"]["params"]["params.yaml"]["train"]["lr"] = 0.001
    (branch / "dvc.lock").write_text(yaml.safe_dump(lock))
    (branch / "eval/metrics.json").write_text('{"accuracy": 0.93}\n')
    report, summary = tmp_path / "report.md", tmp_path / "summary.md"
    report.write_text("## Model report: ✅ all gates passed\n")

    assert check(report=report, summary=summary, pushed=True) == 1
    text = report.read_text()
    assert text.startswith(f"## {TITLE}\n") and text.endswith("## Model report: ✅ all gates passed\n")
    assert "does not match the params, code and data of this PR" in text
    assert "`dvc.lock`, `eval/metrics.json` (stages: `train`)" in text
    assert "--name dvc-outputs --dir .dvc/cache" in text and "git add dvc.lock eval\n" in text  # restore
    assert summary.read_text() == text.split("## Model report")[0]
    assert "::error title=dvc.lock::" in capsys.readouterr().out


def test_missing_lock_and_new_outputs_fail_and_say_so(branch, tmp_path):
    """A first PR that never committed a lock: repro created it, and a new plot file."""
    sh(["git", "rm", "-q", "--cached", "dvc.lock"], branch)
    sh(["git", "commit", "-q", "-m", "no lock"], branch)
    (branch / "eval/plots/roc.csv").unlink()
    report = tmp_path / "report.md"
    report.write_text("body\n")
    assert check(report=report, pushed=False) == 1
    text = report.read_text()
    assert "the branch has no `dvc.lock`" in text
    assert "`dvc.lock`, `eval/plots/roc.csv`" in text
    assert "dvc repro  " in text and "dvc-outputs" not in text  # nothing was uploaded: train
