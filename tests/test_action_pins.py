"""The pin check of .github/ (pre-commit hook `action-pins`): it must fail on every kind of loose pin."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.action_pins import main, problems

ROOT = Path(__file__).resolve().parents[1]
SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"


def workflow(tmp_path: Path, uses: str) -> Path:
    path = tmp_path / "wf.yml"
    path.write_text(f"jobs:\n  a:\n    steps:\n      - uses: {uses}\n      - run: echo uses: x@y\n")
    return path


@pytest.mark.parametrize(
    "uses",
    [
        "actions/checkout@v4  # v4.2.2",  # a tag can be moved
        "actions/checkout@main",  # a branch, no comment
        f"actions/checkout@{SHA[:12]}  # v4.2.2",  # a short SHA
        f"actions/checkout@{SHA}",  # no version comment
        f"actions/checkout@{SHA}  # v4",  # not vX.Y.Z
        f"actions/checkout@{SHA}  # latest",
        f"octo/repo/.github/workflows/ci.yml@{SHA.upper()}  # v1.0.0",  # not lowercase hex
    ],
)
def test_loose_pins_are_refused(tmp_path, uses, capsys):
    path = workflow(tmp_path, uses)
    [problem] = problems(path)
    assert problem.startswith(f"{path}:4: ")
    assert main([str(path)]) == 1
    assert f"{path}:4:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "uses",
    [
        f"actions/checkout@{SHA}  # v4.2.2",
        f"actions/cache/save@{SHA} # v4.2.3",
        f"octo/repo/.github/workflows/ci.yml@{SHA}  # v1.0.0",
        "./.github/actions/setup  # local",
        "docker://alpine:3.20",
    ],
)
def test_exact_pins_local_actions_and_images_pass(tmp_path, uses):
    assert problems(workflow(tmp_path, uses)) == []


def test_the_projects_own_workflows_are_pinned():
    assert main([str(ROOT / ".github")]) == 0
