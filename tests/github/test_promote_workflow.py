"""promote.yml under act for a push to main: pull, dvc status, promote, archive, build, smoke test, push."""

from __future__ import annotations

import pytest

from tests.container.podman import build_args, podman_env
from tests.github.act import pr_checkout, pull_request_event
from tests.repo import sh

pytestmark = pytest.mark.slow


def push_event(repo) -> dict:
    head = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    before = sh(["git", "rev-parse", "HEAD^"], repo).stdout.strip()
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": head,
        "repository": {
            "full_name": "acme/model",
            "name": "model",
            "owner": {"login": "acme"},
            "default_branch": "main",
        },
        "head_commit": {"id": head},
        "pusher": {"name": "test"},
    }


def test_push_to_main_registers_archives_builds_and_would_push(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    env = podman_env()
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="scratch")
    sh(["git", "checkout", "-q", "main"], repo)
    event = push_event(repo)
    short = event["after"][:7]
    result = act.run(
        repo,
        "push",
        event,
        workflow="promote.yml",
        variables={
            "CONTAINER_ENGINE": "podman",
            "IMAGE_BUILD_ARGS": build_args(),
            "DVC_REMOTE_URL": str(dvc_remote),  # act does not copy the git-ignored .dvc/config.local
        },
        env={k: env[k] for k in ("CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF")},
        timeout=1500,
    )
    assert result.returncode == 0, result
    # act pads job ids to a common width in its log prefixes ("[promote/image  ]")
    assert {job.strip(): state for job, state in result.jobs().items()} == {
        "promote": "succeeded",
        "image": "succeeded",
    }

    promote = result.summary("promote")
    assert "**Promoted**: `champion` -> version 1" in promote
    assert "baseline is eval/metrics.json of the previous commit on main" in promote  # fresh sqlite registry
    assert (result.artifacts / "model-store" / "breast-cancer.mar").exists()

    image = result.summary()  # both jobs: the padded id of `image` varies
    assert "predicted 3 rows with model version 1" in image
    assert "push: podman push ghcr.io/acme/model:model-v1" in result.output
    assert f"push: podman push ghcr.io/acme/model:{short}" in result.output
    for tag in ("model-v1", short):
        sh(["podman", "image", "exists", f"ghcr.io/acme/model:{tag}"], repo, **env)
        sh(["podman", "rmi", "-f", f"ghcr.io/acme/model:{tag}"], repo, check=False, **env)

    # main's run saved .dvc/cache (with the run-cache) in main's Actions cache scope, the one scope every
    # PR may restore from: a fork PR, with no secrets and no DVC remote, restores instead of retraining.
    assert "Cache saved with key: dvc-" in result.output and "(scope refs/heads/main)" in result.output
    sh(["git", "checkout", "-q", "-b", "fork-docs"], repo)
    (repo / "CONTRIBUTING.md").write_text("How to help.\n")
    sh(["git", "add", "CONTRIBUTING.md"], repo)
    sh(["git", "commit", "-q", "-m", "docs"], repo)
    event = pull_request_event(repo, number=12, fork_owner="outsider")
    github_server.add_pull(
        "acme/model", "fork-docs", head_sha=event["pull_request"]["head"]["sha"], number=12
    )
    fork = act.run(
        repo,
        "pull_request",
        event,
        workflow="pr.yml",
        job="train",
        variables={"PYTEST_ADDOPTS": '-m "not slow" tests/test_action_pins.py'},
    )
    assert fork.returncode == 0, fork
    assert "(scope refs/heads/main)" in fork.output and "Cache restored from key: dvc-" in fork.output, fork
    assert "Stage 'train' is cached - skipping run" in fork.output, fork
    assert "Running stage 'train'" not in fork.output, fork
