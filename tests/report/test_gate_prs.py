"""Two PRs a contributor makes, through the real pipeline on the bundled data (`dvc repro` + `mlops report`
against main): a learning rate 30x too small must fail the check and say what got worse in the
headline; a PR that changes only the seed (another split, another init) must pass."""

from __future__ import annotations

import pytest

from tests.repo import clone, sh

pytestmark = pytest.mark.slow


def pr_report(trained_repo, dvc_remote, path, old: str, new: str):
    repo = clone(trained_repo, path, dvc_remote)
    sh(["dvc", "pull", "-q"], repo)
    params = (repo / "params.yaml").read_text()
    assert old in params
    (repo / "params.yaml").write_text(params.replace(old, new, 1))
    sh(["dvc", "repro", "-q"], repo)
    proc = sh(["mlops", "report", "--base", "main"], repo, check=False)
    return proc.returncode, (repo / "reports/pr/report.md").read_text()


def test_a_learning_rate_30x_too_small_fails_and_the_headline_says_what_got_worse(
    trained_repo, dvc_remote, tmp_path
):
    code, text = pr_report(trained_repo, dvc_remote, tmp_path / "lr", "  lr: 0.003", "  lr: 0.0001")
    lines = text.splitlines()
    assert code == 1, text
    assert lines[0].startswith("## Model report: ❌")
    assert lines[2].startswith("**Worse beyond noise:**") and "log_loss +" in lines[2], lines[:4]
    assert "*   ❌ **max regression log_loss**: " in text and "beyond noise" in text


def test_a_seed_only_pr_passes(trained_repo, dvc_remote, tmp_path):
    code, text = pr_report(trained_repo, dvc_remote, tmp_path / "seed", "seed: 42", "seed: 43")
    assert code == 0, text
    assert text.splitlines()[0].startswith("## Model report: ✅ all gates passed")
    assert "Δ unpaired: the test rows differ" in text
