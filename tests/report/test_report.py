"""`mlops report` on small synthetic repositories: main committed, the PR in the working tree."""

from __future__ import annotations

import pytest

from mlops.config.errors import UserError
from mlops.report.compare import Comparison
from mlops.report.render import run
from mlops.report.sections import metric_rows
from mlops.report.side import Side
from tests.repo import ROOT, sh
from tests.report.synthetic import METRICS, report, write_pr_side


def side(metrics: dict) -> Side:
    return Side("main", "main", "0" * 40, metrics, {}, None, {})


def test_without_intervals_the_markers_respect_lower_is_better():
    """No per-row predictions on main: the point comparison stays, labelled as having no interval."""
    rows = "\n".join(
        metric_rows(
            side({"accuracy": 0.9, "log_loss": 0.2, "f1": 0.9}),
            side({"accuracy": 0.8, "log_loss": 0.1, "f1": 0.9}),
            Comparison(None),
        )
    )
    assert "| ▼ **worse** <sub>(no interval)</sub> | accuracy | 0.9000 | 0.8000 | -0.1000 |" in rows
    assert "| ▼ better <sub>(no interval)</sub> | log_loss | 0.2000 | 0.1000 | -0.1000 |" in rows
    assert "| = | f1 | 0.9000 | 0.9000 | 0 |" in rows


def test_param_change_report(repo):
    better = {**METRICS, "accuracy": 0.97, "log_loss": 0.10}
    write_pr_side(repo, better, params_edit=lambda p: p["train"]["optimizer"].update(lr=0.01))
    assert run() == 0
    text = report(repo)
    assert text.splitlines()[0] == "## Model report: ✅ all gates passed"
    assert "| ▲ better <sub>(no interval)</sub> | accuracy | 0.9600 | 0.9700 | +0.0100 |" in text
    assert "| ▼ better <sub>(no interval)</sub> | log_loss | 0.1200 | 0.1000 | -0.0200 |" in text
    assert "`main` and this PR have no per-row predictions" in text  # both predate eval/predictions.csv
    assert (
        "<details><summary>Params diff (1 changed)</summary>" in text
        and "| `train.optimizer.lr` | 0.003 | 0.01 |" in text
    )
    assert "**Changed vs `main`:** params `train.optimizer.lr`; no data; no code." in text
    assert "| rows | 569 | 569 |" in text and "benign 357 (62.7%)" in text
    assert "MLflow run `r123`" in text and "data md5 `abc123.dir`" in text
    assert text.rstrip().splitlines()[-1].startswith("<sub>Provisional: ")  # the release job re-measures
    for png in ("confusion", "roc", "pr", "training"):
        assert (repo / "reports" / "pr" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"]({png}.png)" in text
    summary = (repo / "reports" / "pr" / "summary.md").read_text()
    assert "![" not in summary and "| accuracy |" in summary


def test_gate_failure_exits_1_and_says_by_how_much(repo):
    write_pr_side(repo, {**METRICS, "accuracy": 0.90, "f1": 0.88})
    assert run() == 1
    text = report(repo)
    assert text.splitlines()[0] == "## Model report: ❌ 3 of 8 gates failed"
    assert "*   ❌ **min f1**: 0.8800 >= 0.9 (short by 0.0200)" in text
    assert (
        "*   ❌ **max regression accuracy**: 0.9000 vs main 0.9600: drop 0.0600, allowed 0.02 "
        "(over by 0.0400); no paired interval: threshold only" in text
    )
    assert "| ▼ **worse** <sub>(no interval)</sub> | accuracy | 0.9600 | 0.9000 | -0.0600 |" in text
    assert "<details open><summary>Gates: 5 of 8 passed" in text  # failed gates unfold


def test_first_pr_has_no_baseline(repo):
    sh(["git", "checkout", "-q", "main"], repo)
    sh(["git", "rm", "-q", "-r", "eval"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "untrained"], repo)
    sh(["git", "checkout", "-q", "pr"], repo)
    sh(["git", "reset", "-q", "--hard", "main"], repo)
    write_pr_side(repo)
    assert run() == 0
    text = report(repo)
    assert "**First model**" in text and "skipped: no main baseline" in text
    assert "| new | accuracy | — | 0.9600 | |" in text


def test_nothing_changed(repo):
    assert run() == 0
    text = report(repo)
    assert "**Nothing changed**" in text and "No params differ from `main`." in text
    assert "**Changed vs `main`:** no params; no data; no code." in text
    assert "MLflow run `r123` (exp @ `sqlite:///mlflow.db`)" in text  # the lineage still links the run


def test_data_and_gate_changes_are_flagged(repo):
    write_pr_side(repo, params_edit=lambda p: p["gates"]["min"].update(accuracy=0.5), data_md5="def456.dir")
    assert run() == 0
    text = report(repo)
    assert "`def456.dir` (**changed**)" in text and "**data**" in text
    assert "| rows | unknown | 569 |" in text  # main's data is in no DVC cache here: said, not guessed
    assert "This PR changes the gates themselves" in text


def test_missing_base_or_metrics_are_user_errors(repo):
    with pytest.raises(UserError, match="base revision 'origin/main' not found"):
        run(base_rev="origin/main")
    (repo / "eval/metrics.json").unlink()
    with pytest.raises(UserError, match="run the pipeline first"):
        run()


def test_cli_help_lists_report():
    proc = sh(["mlops", "report", "--help"], ROOT)
    text = " ".join(proc.stdout.split())  # argparse wraps at the terminal's width
    assert "--base" in text and "exit status is then 1" in text


def test_class_weights_below_the_majority_model_are_called_out(repo):
    """A weighted model less accurate than predicting the majority class: the report says what it costs."""
    weighted = {**METRICS, "accuracy": 0.83, "baseline": {"majority_class": {"accuracy": 0.88}}}
    write_pr_side(repo, weighted, params_edit=lambda p: p["train"].update(class_weights="auto"))
    run()
    assert "**Class weights cost accuracy**: with `train.class_weights: auto` accuracy 0.8300" in report(repo)
    write_pr_side(repo, weighted)  # the same numbers unweighted: nothing to blame on the weights
    run()
    assert "Class weights cost accuracy" not in report(repo)
