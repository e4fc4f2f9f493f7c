"""template.yml under act, with the runner's PATH: the job's own apt install puts promtool on PATH, and
with MLOPS_REQUIRE_TOOLS=1 the promtool test runs and passes (it would fail, not skip, without it)."""

from __future__ import annotations

import re

import pytest

from tests.repo import copy_project, sh

pytestmark = [pytest.mark.slow, pytest.mark.template]


def test_template_workflow_installs_its_tools_and_runs_the_machinery_tests(act, dvc_remote, tmp_path):
    repo = copy_project(tmp_path / "repo", dvc_remote)
    sh(["git", "remote", "add", "origin", "https://github.com/acme/model.git"], repo)  # GITHUB_REPOSITORY
    narrowed = "-p no:cacheprovider -rs tests/serve/test_alerts.py"  # the promtool test, not the suite

    result = act.run(
        repo,
        "workflow_dispatch",
        {},
        workflow="template.yml",
        variables={"TEMPLATE_PYTEST_ADDOPTS": narrowed},
    )

    assert result.returncode == 0 and result.jobs() == {"machinery": "succeeded"}, result
    installed = next(line for line in result.output.splitlines() if "harness apt-get: now on PATH:" in line)
    assert " promtool " in f"{installed} ", result  # linked by the apt shim, not on the runner before
    assert "debootstrap" in installed, result
    assert "3 passed" in result.output and not re.search(r"\d+ skipped|SKIPPED", result.output), result
