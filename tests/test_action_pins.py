"""The pin check of .github/ (pre-commit hook `action-pins`): it must fail on every kind of loose pin, on a
version comment Dependabot would leave stale, and on pins in a directory Dependabot does not watch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mlops.github.pins import dependabot_directories, main, problems

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
        # Dependabot recognises a comment only when it ENDS with the pinned version: these go stale
        f"actions/checkout@{SHA}  # v4.2.2 pinned by hand",
        f"actions/checkout@{SHA}  # v4.2.2  # zizmor: ignore[cache-poisoning]",
        f"actions/checkout@{SHA}  # 4.2.2",  # the tag is v4.2.2: keep its spelling
        f"actions/checkout@{SHA}  # tag v4.2.2",
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


def repository(tmp_path: Path, dependabot: dict | None, action_pin: str = f"actions/cache@{SHA}  # v4.2.3"):
    """A repository with a workflow and a composite action, both pinning, and maybe a dependabot.yml."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "actions" / "setup").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text(
        f"jobs:\n  a:\n    steps:\n      - uses: actions/checkout@{SHA}  # v4.2.2\n"
    )
    (tmp_path / ".github" / "actions" / "setup" / "action.yml").write_text(
        f"runs:\n  using: composite\n  steps:\n    - uses: {action_pin}\n"
    )
    if dependabot is not None:
        (tmp_path / ".github" / "dependabot.yml").write_text(yaml.safe_dump(dependabot))
    return tmp_path / ".github"


def actions_entry(**where) -> dict:
    return {"version": 2, "updates": [{"package-ecosystem": "github-actions", "schedule": {}, **where}]}


@pytest.mark.parametrize(
    "where",
    [
        {"directories": ["/", "/.github/actions/setup"]},
        {"directories": ["/", "/.github/actions/*"]},  # Dependabot's directories take globs
    ],
)
def test_pins_in_every_watched_directory_pass(tmp_path, where):
    assert main([str(repository(tmp_path, actions_entry(**where)))]) == 0


def test_a_composite_action_dependabot_does_not_watch_is_refused(tmp_path, capsys):
    """`directory: /` covers .github/workflows only: a composite action's pins would never move."""
    github = repository(tmp_path, actions_entry(directory="/"))
    assert main([str(github)]) == 1
    err = capsys.readouterr().err
    assert "/.github/actions/setup is not in the github-actions `directories`" in err
    assert "ci.yml" not in err  # the workflows are covered by "/"


def test_pins_without_a_dependabot_config_are_refused(tmp_path, capsys):
    assert main([str(repository(tmp_path, None))]) == 1
    assert "no .github/dependabot.yml" in capsys.readouterr().err


def test_another_ecosystem_does_not_count(tmp_path):
    config = {"version": 2, "updates": [{"package-ecosystem": "pip", "directory": "/", "schedule": {}}]}
    github = repository(tmp_path, config)
    assert dependabot_directories(tmp_path) == []
    assert len(problems(github / "workflows" / "ci.yml")) == 1


def test_the_projects_dependabot_config():
    """Actions (workflows and the setup action), pip (the project and the image's lock) and npm (CML's
    lock), weekly and grouped; every pin covered; every tracked package.json watched."""
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    entries: dict[str, list[dict]] = {}
    for update in config["updates"]:
        entries.setdefault(update["package-ecosystem"], []).append(update)
    assert set(entries) >= {"github-actions", "pip"}
    for update in config["updates"]:
        assert update["schedule"]["interval"] == "weekly"
        assert any(g.get("patterns") == ["*"] for g in update["groups"].values())  # one PR, not one per dep

    def directories(ecosystem: str) -> list[str]:
        found = entries.get(ecosystem, [])
        return sorted(d for u in found for d in u.get("directories", [u.get("directory")]))

    assert dependabot_directories(ROOT) == ["/", "/.github/actions/setup"]
    assert "/" in directories("pip")
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "package.json", "**/package.json"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert directories("npm") == sorted("/" + str(Path(p).parent).strip(".") for p in tracked)
