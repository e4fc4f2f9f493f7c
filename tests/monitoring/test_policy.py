"""The policy in params.yaml, its overrides, and where the GitHub API is: cheap checks, no Evidently."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlops.config.errors import UserError
from mlops.config.params import load_params
from mlops.github.client import GitHub
from monitoring.policy import load_policy, parse_window
from tests.monitoring.logs import edit_params
from tests.repo import ROOT
from tests.schema import numeric


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        (None, None),
        ("all", None),
    ],
)
def test_windows(text, expected):
    assert parse_window(text) == expected


def test_a_bad_window_is_a_clear_error():
    with pytest.raises(UserError, match="'7 days' is not a duration like 30m, 12h, 7d or 2w"):
        parse_window("7 days")


def test_defaults_from_params_yaml(monkeypatch):
    for name in ("MLOPS_INFERENCE_LOG_DIR", "MLOPS_FEEDBACK"):
        monkeypatch.delenv(name, raising=False)
    params = load_params(ROOT / "params.yaml")
    policy = load_policy(params)
    assert policy.columns == params.data.feature_names and policy.window == timedelta(days=7)
    assert policy.inference_log == params.serve.inference_log_dir
    assert policy.stattest == {"numerical": "ks", "categorical": "two_sample_chi2"}  # both are samples
    assert policy.retrain_on == ("features", "performance")
    assert policy.performance.label_horizon == timedelta(days=14) and policy.missing_increase == 0.05
    assert (policy.drift_share, policy.min_rows, policy.branch_prefix) == (0.5, 100, "retrain/")


def test_overrides_cli_then_env_then_params(monkeypatch):
    params = load_params(ROOT / "params.yaml")
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", "s3://bucket/logs")
    monkeypatch.setenv("MLOPS_FEEDBACK", "s3://bucket/labels")
    assert load_policy(params).inference_log == "s3://bucket/logs"
    assert load_policy(params).feedback == "s3://bucket/labels"
    chosen = load_policy(params, window="1h", inference_log="here", feedback="there")
    assert (chosen.inference_log, chosen.feedback, chosen.window) == ("here", "there", timedelta(hours=1))


def test_policy_errors_name_the_key(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    bad = tmp_path / "params.yaml"
    column = numeric(0)

    def edited(key: str, value) -> None:
        bad.write_text(text)
        edit_params({key: value}, bad)

    edited("monitoring.columns", [column, "no_such_feature"])
    with pytest.raises(UserError, match=r"monitoring\.columns: no_such_feature not in data\.features"):
        load_policy(load_params(bad))
    edited("monitoring.retrain_on", lambda checks: ["weather", *checks])
    with pytest.raises(UserError, match="unknown check weather"):
        load_policy(load_params(bad))
    edited("monitoring.critical", [column, "no_such_feature"])
    with pytest.raises(UserError, match=r"monitoring\.critical: no_such_feature not among the monitored"):
        load_policy(load_params(bad))
    edited("monitoring.weights", {column: -1})
    with pytest.raises(UserError, match=rf"monitoring\.weights: weights must be >= 0, got {column}=-1"):
        load_policy(load_params(bad))
    edited("monitoring.performance.metrics", ["accuracy", "precision"])
    with pytest.raises(UserError, match=r"performance\.metrics: precision not in gates\.max_regression"):
        load_policy(load_params(bad))


def test_performance_rule_takes_its_metrics_from_the_gates(monkeypatch):
    params = load_params(ROOT / "params.yaml")
    rule = load_policy(params).performance
    gated = params.gates.max_regression
    assert (
        rule.metrics == {m: v for m, v in gated.items() if m != "brier"} and "brier" in gated
    )  # not computed
    assert (rule.min_rows, rule.baseline, rule.confidence) == (50, "eval/metrics.json", 0.95)
    assert load_policy(params).staleness == timedelta(days=2)


def test_github_api_location(monkeypatch):
    for name in ("GITHUB_API_URL", "GH_HOST", "GH_TOKEN", "GITHUB_TOKEN", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    assert GitHub.from_env() is None  # no repository/token: retrain-pr stays local
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/model")
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    assert GitHub.from_env().api == "https://api.github.com"
    monkeypatch.setenv("GH_HOST", "127.0.0.1:8443")
    assert GitHub.from_env().api == "https://127.0.0.1:8443/api/v3"
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example/api/v3/")
    assert GitHub.from_env().api == "https://ghe.example/api/v3"
