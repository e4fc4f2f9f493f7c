"""The report is already in the form CML's markdown writer gives back, so the PR comment is report.md.

CML re-serializes the markdown with its own remark 13 when it publishes images; anything not in that
form (`-` bullets, `---`, a bare `[`) would come back changed. This runs that same remark, from the real
CML the workflow tests install (tests/standins/cml.py), on reports of every kind.
"""

from __future__ import annotations

import subprocess

import numpy as np

from tests.repo import ROOT, sh
from tests.report.synthetic import METRICS, report, write_pr_side
from tests.report.test_slices_baselines import predictions_csv, proba_for
from tests.standins.cml import real_cml

ROUND_TRIP = """
const remark = require('remark');
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', async () => {
  const out = await remark().process(input);
  process.stdout.write(out.toString().replace(/\\\\&(.+)=/g, '&$1='));
});
"""


def through_cml_remark(markdown: str) -> str:
    node_modules = real_cml().resolve().parents[3]  # node_modules/@dvcorg/cml/bin/cml.js
    return subprocess.run(
        ["node", "-e", ROUND_TRIP],
        input=markdown,
        text=True,
        capture_output=True,
        check=True,
        env={"NODE_PATH": str(node_modules), "PATH": "/usr/bin:/bin"},
    ).stdout


def test_reports_survive_cmls_markdown_writer_unchanged(repo):
    from mlops.report.render import run

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    groups = np.array(["a_1"] * 30 + ["b"] * 30)
    write_pr_side(repo, predictions=predictions_csv(y, proba_for(y, np.ones(60, dtype=bool)), groups))
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "main with predictions"], repo)
    sh(["git", "branch", "-f", "main"], repo)
    wrong = np.zeros(60, dtype=bool)
    wrong[30:45] = True
    cases = {
        "passing": ({**METRICS, "accuracy": 0.97}, np.zeros(60, dtype=bool), None),
        "failing, slice regressed, gates changed": (
            {**METRICS, "accuracy": 0.85},
            wrong,
            lambda p: p["gates"]["min"].update(accuracy=0.5),
        ),
    }
    for name, (metrics, misses, edit) in cases.items():
        proba = proba_for(y, ~misses)
        write_pr_side(repo, metrics, params_edit=edit, predictions=predictions_csv(y, proba, groups))
        (repo / "eval/plots/slices.csv").write_text(
            "slice,bin,rows,accuracy,accuracy_low,accuracy_high\ngrade,a_1,30,1.0,1.0,1.0\ngrade,b,30,0.5,0.3,0.7\n"
        )
        run()
        text = report(repo)
        assert through_cml_remark(text) == text, name


def test_regression_three_class_and_swap_reports_survive_cmls_markdown_writer(tmp_path, monkeypatch):
    from tests.report.test_tables import regression_report, swapped_report, three_class_report

    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    for make in (regression_report, swapped_report, three_class_report):
        project = tmp_path / make.__name__
        project.mkdir()
        monkeypatch.chdir(project)
        _, text = make(project)
        assert through_cml_remark(text) == text, make.__name__


def test_the_lock_checks_fix_survives_cmls_markdown_writer(tmp_path, monkeypatch):
    """`mlops lock-check` puts its section on top of report.md, which the comment must equal byte for byte."""
    from mlops.release.lock_check import message

    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())  # the fix names its outputs
    monkeypatch.chdir(tmp_path)
    for pushed in (True, False):
        for had_lock in (True, False):
            text = message(["dvc.lock", "eval/metrics.json"], ["train", "evaluate"], had_lock, pushed)
            assert through_cml_remark(text) == text
