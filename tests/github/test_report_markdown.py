"""The PR report is already in the form CML's markdown writer gives it, so the comment GitHub receives
is `report.md` byte for byte (images aside). CML re-serializes every report it publishes (remark 13:
`*   ` bullets, `\\_` escapes, `***` rules); anything `mlops report` wrote otherwise would silently
differ between the uploaded artifact and the comment. This runs CML's own remark from the real CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from model.lock_check import message
from model.report import run
from tests.github.cml import real_cml
from tests.repo import ROOT, sh
from tests.review.synthetic import METRICS, write_pr_side

# CML's own step: remark().process(report), then its `\&x=` fix-up (cml/src/cml.js, commentCreate)
REMARK = """
const remark = require(process.argv[1] + '/remark');
const input = require('fs').readFileSync(0, 'utf-8');
remark().process(input).then((f) => process.stdout.write(String(f).replace(/\\\\&(.+)=/g, '&$1=')));
"""


def cml_markdown(text: str) -> str:
    """What CML 0.20.6 makes of `text` before posting it (with --publish, as pr.yml runs it)."""
    modules = real_cml().resolve().parents[3]  # node_modules/@dvcorg/cml/bin/cml.js -> node_modules
    proc = subprocess.run(
        ["node", "-e", REMARK, str(modules)], input=text, text=True, capture_output=True, check=True
    )
    return proc.stdout


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    write_pr_side(path)
    (path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())  # the lock check's fix names its outputs
    (path / ".gitignore").write_text("reports/\nartifacts/\nreport/\n")
    sh(["git", "init", "-q", "-b", "main"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-q", "-m", "main"], path)
    sh(["git", "checkout", "-q", "-b", "pr"], path)
    monkeypatch.chdir(path)
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    return path


def scenarios(repo: Path):
    """A passing change, a failing one with a warning, and the first model (no main metrics)."""
    yield (
        "change",
        lambda: write_pr_side(repo, {**METRICS, "accuracy": 0.97}, lambda p: p["train"].update(lr=0.01)),
    )
    yield "failure", lambda: write_pr_side(repo, {**METRICS, "accuracy": 0.90, "f1": 0.88, "roc_auc": 0.5})


def test_every_report_is_a_fixed_point_of_cmls_markdown_writer(repo):
    for name, setup in scenarios(repo):
        setup()
        run()
        text = (repo / "report" / "report.md").read_text()
        assert cml_markdown(text) == text, name
        with_fix = message(["dvc.lock", "eval/metrics.json"], ["train", "evaluate"], True, True) + "\n" + text
        assert cml_markdown(with_fix) == with_fix, f"{name} with the lock check's section"
    sh(["git", "checkout", "-q", "main"], repo)
    sh(["git", "rm", "-q", "-r", "--cached", "eval"], repo)
    sh(["git", "commit", "-q", "-m", "untrained"], repo)
    write_pr_side(repo)
    run()
    text = (repo / "report" / "report.md").read_text()
    assert "First model" in text and cml_markdown(text) == text
