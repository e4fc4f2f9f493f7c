"""The lock loop on a real (tiny) DVC project: which stages a PR changed against main, `mlops repro --base`,
and the lock check that follows it (tests/model/lock_project.py builds the project)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from mlops.release.lock_check import TITLE, check, classify, repro
from tests.model import lock_project as lp


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return lp.make(tmp_path_factory.mktemp("lock") / "repo")


@pytest.fixture
def project(built, tmp_path, monkeypatch):
    root = tmp_path / "repo"
    shutil.copytree(built, root, symlinks=True)
    lp.chdir_env(monkeypatch, root)
    return root


def set_lr(root, lr: float) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": lr}}))


def test_a_docs_only_pr_on_a_fresh_fork_reproduces_nothing_and_passes(project, capsys, tmp_path, monkeypatch):
    (project / "README.md").write_text("project, better explained\n")
    lp.commit(project, "docs")
    lp.cold(project)  # no remote, no cache: nothing DVC-tracked is on this runner

    plan = classify("main")
    assert plan.unchanged == ["prepare", "train", "evaluate"] and plan.reproduce == {}
    assert repro("main") == 0
    out = capsys.readouterr().out
    assert "Stage 'train' is unchanged from main: not reproduced" in out
    assert not (project / "model").exists()  # nothing retrained
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert check(base="main") == 0
    assert output.read_text() == "lock=ok\n"


def test_a_params_pr_reproduces_what_the_change_affects_and_fails_until_adopted(
    project, tmp_path, monkeypatch, capsys
):
    set_lr(project, 0.2)
    lp.commit(project, "lr 0.2, lock not committed")
    lp.cold(project)

    plan = classify("main")
    assert plan.unchanged == ["prepare"]
    assert plan.reproduce == {
        "train": "params changed: train.lr",
        "evaluate": "it depends on stage 'train', which is reproduced",
    }
    assert repro("main") == 0  # prepare runs too: train needs its outputs, and this runner had none
    assert lp.lock(project)["train"]["params"]["params.yaml"]["train"]["lr"] == 0.2

    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/model")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "github_output"))
    report = tmp_path / "report.md"
    report.write_text("## Model report\n")
    assert check(report=report, pushed=True, base="main") == 1
    text = report.read_text()
    assert text.startswith(f"## {TITLE}\n") and text.endswith("## Model report\n")
    assert "```bash\nmlops adopt 4242 --repo octo/model\n```" in text  # the one command
    assert "(stages: `train`, `evaluate`)" in text and "not reproduced:** `prepare`" in text
    assert "`gh pr checkout <PR number> && mlops adopt 4242 --repo octo/model`" in text
    assert "lock bot" in text
    assert (tmp_path / "github_output").read_text() == "lock=stale\n"


def test_a_lock_committed_from_another_machine_is_reproduced_and_fails(project):
    """The author retrained on another CPU and committed that lock: CI's bytes differ, so it fails."""
    set_lr(project, 0.2)
    lp.run([lp.PY, "-m", "dvc", "repro"], project, MACHINE="laptop")
    lp.commit(project, "lr 0.2, trained on a laptop")
    committed = lp.lock(project)

    assert list(classify("main").reproduce) == ["train", "evaluate"]
    lp.cold(project)
    assert repro("main") == 0
    assert lp.lock(project)["train"]["outs"] != committed["train"]["outs"]
    assert check(base="main") == 1


def test_the_lock_of_ci_run_passes_once_committed(project):
    """After the fix the branch commits what CI produced: the next run restores it and passes."""
    set_lr(project, 0.2)
    lp.run([lp.PY, "-m", "dvc", "repro"], project)
    lp.commit(project, "lr 0.2 with CI's lock")

    assert list(classify("main").reproduce) == ["train", "evaluate"]
    assert repro("main") == 0
    assert check(base="main") == 0


def test_edited_lock_outputs_without_an_input_change_fail(project):
    """A lock that names other model bytes than its inputs give: reproduced, and the check fails."""
    edited = (project / "dvc.lock").read_text()
    digest = lp.lock(project)["train"]["outs"][0]["md5"]
    (project / "dvc.lock").write_text(edited.replace(digest, "0" * 32 + ".dir"))
    lp.commit(project, "a lock naming other model bytes")

    assert classify("main").reproduce["train"] == "its dvc.lock entry differs from main's"
    lp.cold(project)
    assert repro("main") == 0
    assert lp.lock(project)["train"]["outs"][0]["md5"] == digest
    assert check(base="main") == 1


def test_a_code_change_reproduces_its_stage_and_downstream(project):
    (project / "evaluate.py").write_text((project / "evaluate.py").read_text() + "# faster\n")
    lp.commit(project, "evaluate tweak")
    plan = classify("main")
    assert plan.unchanged == ["prepare", "train"]
    assert plan.reproduce == {"evaluate": "evaluate.py is modified"}


def test_an_unknown_base_is_an_error_not_a_full_retrain(project):
    from mlops.config.errors import UserError

    with pytest.raises(UserError, match="origin/main is not a commit in this clone: fetch it"):
        classify("origin/main")
