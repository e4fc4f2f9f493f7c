"""Small things a reviewer reads: signs that match the verdict, a baseline warning judged by an interval,
sparse reliability bins merged, and data changes not called code."""

from __future__ import annotations

import numpy as np
import yaml

from mlops.report.calibration import reliability_table
from mlops.report.render import run
from mlops.report.sections import _signed, baseline_warning
from mlops.report.side import Side, changed_deps
from tests.repo import sh
from tests.report.synthetic import report, write_pr_side


def side(metrics: dict) -> Side:
    return Side("this PR", None, "", metrics, {}, None, {})


def test_a_change_never_shows_a_sign_its_verdict_contradicts():
    assert _signed(0.0) == "0"
    assert _signed(0.00004).startswith("+4") and float(_signed(0.00004)) > 0  # not "+0.000"
    assert _signed(-0.0123) == "-0.012"


def test_the_baseline_warning_follows_the_paired_interval_not_the_point_estimates():
    settings = {"baseline": {"metric": "roc_auc", "margin": 0.0}, "confidence": 0.95}
    lr = {"roc_auc": 0.9954}
    within = {
        "roc_auc": 0.9921,
        "baseline": {
            "logistic_regression": {**lr, "delta_interval": {"roc_auc": {"low": -0.012, "high": 0.006}}}
        },
    }
    assert baseline_warning(side(within), settings) is None  # main's own model: 0.9921 vs 0.9954, noise
    worse = {
        "roc_auc": 0.95,
        "baseline": {
            "logistic_regression": {**lr, "delta_interval": {"roc_auc": {"low": -0.07, "high": -0.02}}}
        },
    }
    text = baseline_warning(side(worse), settings)
    assert (
        text.startswith("*   ⚠️ **Does not beat the logistic regression**") and "95% CI -0.070…-0.020" in text
    )
    old = {"roc_auc": 0.9921, "baseline": {"logistic_regression": lr}}  # from before intervals: points
    assert "no interval" in baseline_warning(side(old), settings)


def test_reliability_bins_of_one_or_two_rows_are_merged():
    rng = np.random.default_rng(0)
    p = rng.beta(0.3, 0.3, 114)  # most rows near 0 or 1, a few in between: the 114-row zig-zag
    y = (rng.random(114) < p).astype(np.int64)
    table = reliability_table(y, np.column_stack([1 - p, p]))
    assert table["rows"].sum() == 114 and (table["rows"] >= 5).all()
    assert len(reliability_table(y, np.column_stack([1 - p, p]), min_rows=1)) == 10  # unmerged: every bin


def test_a_data_change_is_listed_as_data_not_as_code(repo):
    def lock(md5: str) -> str:
        deps = [{"path": "data", "md5": md5}, {"path": "model/validate.py", "md5": "x"}]
        return yaml.safe_dump({"stages": {"validate": {"deps": deps}}})

    (repo / "dvc.lock").write_text(lock("a"))
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "lock"], repo)
    sh(["git", "branch", "-f", "main"], repo)
    write_pr_side(repo, data_md5="def456.dir")
    (repo / "dvc.lock").write_text(lock("b"))
    assert changed_deps(yaml.safe_load(lock("a")), yaml.safe_load(lock("b"))) == ["data"]
    run()
    text = report(repo)
    assert "**Changed vs `main`:** no params; **data**; no code." in text
