"""The README's main job, `mlops demo`, runs the whole loop on a fresh copy (slow: about 1.5 min)."""

from __future__ import annotations

import re

import pytest

from tests.model.project_data import seed_remote
from tests.repo import copy_project, sh
from tests.schema import FEATURES

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_loop(tmp_path):
    repo = copy_project(tmp_path / "repo", tmp_path / "remote")
    seed_remote(repo)  # a forker's table cannot be recreated: the demo's `mlops data` pulls it

    out = sh(["mlops", "demo"], repo).stdout

    for step in (
        "$ dvc repro",
        "$ mlops report --base main",
        "$ mlops promote",
        "$ mlops archive",
        "$ mlops serve start",
        "$ mlops serve predict",
        "$ mlops simulate-traffic",
        "$ mlops drift",
        "$ mlops retrain-pr --no-push",
        "$ mlops serve stop",
    ):
        assert step in out
    assert "Promoted" in out
    # the shifted traffic drifts the inputs, and its labels show the harm: either decides a retraining
    # (performance, measured on labelled feedback, is named first when both hold: monitoring/drift.py)
    assert re.search(rf"drift: \d+ of {len(FEATURES)} monitored features drifted", out), out
    assert re.search(r"^decision: (drift|performance)$", out, re.M), out
    assert (repo / "reports/pr/report.md").exists() and (repo / "reports/drift/report.html").exists()
    branch = sh(["git", "branch", "--list", "retrain/*", "--format=%(refname:short)"], repo).stdout.split()
    assert len(branch) == 1 and f"retrain branch  {branch[0]}" in out
    # The branch proposes new data (a new data.dvc); the checkout itself stays on main's data.
    assert sh(["git", "diff", "--name-only", "main", branch[0]], repo).stdout.split() == ["data.dvc"]
    assert sh(["git", "branch", "--show-current"], repo).stdout.strip() == "main"
    assert sh(["mlops", "serve", "status"], repo, check=False).returncode != 0  # the server was stopped
