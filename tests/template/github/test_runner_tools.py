"""Jobs under act see GitHub's ubuntu-24.04 runner, not this machine: its tools, plus what a job installs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.template.github.act import pull_request_event
from tests.template.github.runner import TOOLS_FILE, closure, make_runner_path, parse_apt_args, runner_tools
from tests.template.github.test_harness import make_repo

# A job that uses promtool, which the runner lacks. The broken copy drops the install step.
WORKFLOW = """\
name: rules
on: pull_request
permissions:
  contents: read
jobs:
  promtool:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - name: Install promtool
        run: sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus
      - run: promtool --version
"""
INSTALL_STEP = re.compile(r"      - name: Install promtool\n        run: .*\n")


def test_the_list_names_its_source_and_the_runners_tools():
    header = TOOLS_FILE.read_text().split("\n## ", 1)[0]
    assert "actions/runner-images" in header and "images/ubuntu/Ubuntu2404-Readme.md" in header
    assert re.search(r"commit[\s#]+[0-9a-f]{40}", header)
    names = runner_tools()
    assert len(names) == len(set(names)), "a name is listed twice"
    present = "bash sh git gh jq zstd node npm python3 pip shellcheck podman buildah skopeo sudo apt-get curl"
    for name in [*present.split(), "unzip", "java", "psql", "tar", "make", "gcc", "docker", "kubectl"]:
        assert name in names
    for name in ("promtool", "debootstrap", "wrk", "act", "postgres", "initdb", "pg_ctl", "hadolint"):
        assert name not in names, f"{name}: the runner does not have it"


def test_only_listed_tools_are_linked(tmp_path):
    system = tmp_path / "usr-bin"
    system.mkdir()
    for name in ("jq", "promtool"):
        (system / name).write_text("#!/bin/sh\necho hi\n")
        (system / name).chmod(0o755)
    bin_dir = tmp_path / "path"
    lacking = make_runner_path(bin_dir, (str(system),), tools=["jq", "gh", "promtool-not-listed", "sudo"])
    assert (bin_dir / "jq").resolve() == system / "jq"
    assert not (bin_dir / "promtool").exists()
    assert lacking == ["gh", "promtool-not-listed"]  # sudo is the harness's shim, never a host link
    assert {"sudo", "apt-get", "apt"} <= {p.name for p in bin_dir.iterdir()}


def test_sudo_shim_keeps_path_and_apt_refuses_other_commands(tmp_path):
    bin_dir = tmp_path / "path"
    make_runner_path(bin_dir, tools=["env", "sh", "id"])
    env = {"PATH": str(bin_dir)}
    seen = subprocess.run(["sudo", "-E", "sh", "-c", 'echo "$PATH"'], env=env, capture_output=True, text=True,
                          executable=bin_dir / "sudo")  # fmt: skip
    assert seen.stdout.strip() == str(bin_dir)
    removed = subprocess.run(
        [bin_dir / "apt-get", "remove", "-y", "jq"], env=env, capture_output=True, text=True
    )
    assert removed.returncode == 100 and "only `update` and `install" in removed.stdout


def test_apt_arguments_and_dependency_closure():
    assert parse_apt_args(
        ["-y", "-o", "Dpkg::Use-Pty=0", "install", "--no-install-recommends", "a=1.2", "b/noble"]
    ) == (
        "install",
        ["a", "b"],
    )
    assert parse_apt_args(["-qq", "update"]) == ("update", [])
    depends = {"prometheus": [["adduser"], ["libc6"]], "adduser": [["passwd"]], "passwd": [], "libc6": []}
    provides = {"virtual": "prometheus"}
    assert closure(["virtual"], depends, provides) == {"prometheus", "adduser", "passwd", "libc6"}
    assert closure(["not-installed"], depends, provides) == set()


@pytest.mark.slow
def test_a_job_using_a_tool_the_runner_lacks_fails_unless_it_installs_it(act, tmp_path):
    """The broken copy (no install step) fails as on GitHub; the job's own apt-get install fixes it."""
    repo = make_repo(tmp_path / "repo")
    workflows = repo / ".github/workflows"
    (workflows / "smoke.yml").unlink()
    (workflows / "rules.yml").write_text(WORKFLOW)
    broken = INSTALL_STEP.sub("", WORKFLOW)
    assert "apt-get" not in broken
    (workflows / "broken.yml").write_text(broken)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "rules"], cwd=repo, check=True)
    event = pull_request_event(repo)

    result = act.run(repo, "pull_request", event, workflow="broken.yml")
    assert result.returncode != 0 and result.jobs() == {"promtool": "failed"}, result
    assert "promtool: command not found" in result.output, result

    result = act.run(repo, "pull_request", event, workflow="rules.yml")
    assert result.returncode == 0 and result.jobs() == {"promtool": "succeeded"}, result
    assert "harness apt-get: now on PATH:" in result.output and "promtool, version" in result.output, result
    assert Path(tmp_path / "act-run-2/path/promtool").is_symlink()
