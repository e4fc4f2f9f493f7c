"""monitoring/alerts.yml: valid rules, each unit-tested by promtool, on metrics the server really exposes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring/alerts.yml"
RULE_TESTS = ROOT / "monitoring/alerts.test.yml"
METRICS = ROOT / "serve/metrics.yaml"


def promtool() -> str:
    """promtool (apt package `prometheus`; GitHub's runner lacks it). Missing: skip, or fail with
    MLOPS_REQUIRE_TOOLS=1."""
    return shutil.which("promtool") or missing_tool("promtool", "apt-get install prometheus")


@pytest.mark.template
def test_promtool_checks_the_rules_and_passes_their_unit_tests():
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run(
        [tool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, cwd=RULES.parent
    )
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr


def test_every_alert_has_a_firing_case_and_a_quiet_case():
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert alerts == fired == quiet


def test_rules_use_only_metrics_the_server_exposes():
    """A renamed metric in serve/metrics.yaml must not leave a rule silently watching nothing."""
    declared = yaml.safe_load(METRICS.read_text())
    names = {
        m["name"]
        for section in ("ts_metrics", "model_metrics")
        for metrics in declared[section].values()
        for m in metrics
    }
    names |= {f"{n}_bucket" for n in names}
    exprs = " ".join(r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"])
    functions = {
        "sum",
        "rate",
        "increase",
        "clamp_min",
        "histogram_quantile",
        "vector",
        "by",
        "le",
        "or",
        "unless",
    }
    used = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\b\s*(?=[\[{)\s]|$)", exprs)) - functions - {"offset"}
    used = {u for u in used if not re.fullmatch(r"\d+[smhd]?", u)}
    assert used <= names, f"not exposed by TorchServe with serve/metrics.yaml: {sorted(used - names)}"
