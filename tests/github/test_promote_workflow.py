"""promote.yml under act: release (admit, register, gate), image (immutable tag, digest), champion, deploy
(staging commit, ONE production PR), in that order; a failure before the champion job leaves the alias
where it was; a dispatch from a branch runs nothing. The registry is a host sqlite file (the
MLFLOW_TRACKING_URI secret), so the test reads the alias after the run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.container.podman import build_args, podman_env
from tests.github.act import pr_checkout, pull_request_event
from tests.repo import sh

pytestmark = pytest.mark.slow
REPO = "acme/model"
STAGING = "deploy/release/staging/kustomization.yaml"
PRODUCTION = "deploy/release/production/kustomization.yaml"
MODEL = "breast-cancer-classifier"


def push_event(repo: Path, ref: str = "refs/heads/main") -> dict:
    head = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    before = sh(["git", "rev-parse", "HEAD^"], repo).stdout.strip()
    return {
        "ref": ref,
        "before": before,
        "after": head,
        "repository": {
            "full_name": REPO,
            "name": "model",
            "owner": {"login": "acme"},
            "default_branch": "main",
        },
        "head_commit": {"id": head},
        "pusher": {"name": "test"},
    }


def registry(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The MLFLOW_TRACKING_URI secret: a sqlite registry on the host, which outlives the run."""
    db = tmp_path / "registry" / "mlflow.db"
    db.parent.mkdir(exist_ok=True)
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}, db


def alias_and_version(db: Path, version: str = "1") -> tuple[str | None, dict]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    try:
        champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    except MlflowException:
        champion = None
    return champion, client.get_model_version(MODEL, version).tags


def main_checkout(trained_repo, dvc_remote, tmp_path) -> Path:
    repo = pr_checkout(trained_repo, tmp_path / "repo", dvc_remote, branch="scratch")
    sh(["git", "checkout", "-q", "main"], repo)
    return repo


def test_dispatch_from_a_branch_runs_nothing(trained_repo, dvc_remote, tmp_path, act, github_server):
    repo = main_checkout(trained_repo, dvc_remote, tmp_path)
    secrets, db = registry(tmp_path)
    event = {**push_event(repo, "refs/heads/unreviewed"), "inputs": {}}
    result = act.run(
        repo,
        "workflow_dispatch",
        event,
        workflow="promote.yml",
        secrets=secrets,
        variables={"DVC_REMOTE_URL": str(dvc_remote)},
    )
    assert result.returncode == 0, result
    assert result.jobs() == {}, result  # release is skipped, and every other job needs it
    assert "mlops promote" not in result.output and "mlops champion" not in result.output
    assert not db.exists()  # the registry was never opened


def test_a_failed_image_job_leaves_the_alias_where_it_was(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """The model is registered and passes its gates, then the image build fails: no champion moves."""
    repo = main_checkout(trained_repo, dvc_remote, tmp_path)
    secrets, db = registry(tmp_path)
    result = act.run(
        repo,
        "push",
        push_event(repo),
        workflow="promote.yml",
        secrets=secrets,
        variables={"CONTAINER_ENGINE": "false", "DVC_REMOTE_URL": str(dvc_remote)},  # `false build` fails
        timeout=1200,
    )
    assert result.returncode != 0, result
    assert result.jobs() == {"release": "succeeded", "image": "failed"}, result
    assert "**Candidate**: version 1 passed its gates; `champion` stays at no version" in result.summary(
        "release"
    )
    champion, tags = alias_and_version(db)
    assert tags["gates"] == "passed" and "image" not in tags
    assert champion is None  # before the fix the promote job had already moved it to version 1


def seed_server_main(github_server, repo: Path, parent: str | None = None) -> str:
    """The API test server's view of main: the release files as the repository has them."""
    files = {p: (repo / p).read_bytes() for p in (STAGING, PRODUCTION)}
    with github_server.lock:
        sha = github_server._commit(files, [parent] if parent else [], "main")
        github_server.state.refs[f"{REPO} refs/heads/main"] = sha
    return sha


def test_push_to_main_releases_in_order_then_the_next_release_updates_the_one_deploy_pr(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    env = podman_env()
    repo = main_checkout(trained_repo, dvc_remote, tmp_path)
    secrets, db = registry(tmp_path)
    server_main = seed_server_main(github_server, repo)
    variables = {
        "CONTAINER_ENGINE": "podman",
        "IMAGE_BUILD_ARGS": build_args(),
        "DVC_REMOTE_URL": str(dvc_remote),  # act does not copy the git-ignored .dvc/config.local
    }
    engine = {k: env[k] for k in ("CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF")}

    def release(event: dict):
        result = act.run(
            repo,
            "push",
            event,
            workflow="promote.yml",
            secrets=secrets,
            variables=variables,
            env=engine,
            timeout=1500,
        )
        assert result.returncode == 0, result
        assert result.jobs() == {
            "release": "succeeded",
            "image": "succeeded",
            "champion": "succeeded",
            "deploy": "succeeded",
        }, result
        return result

    first_event = push_event(repo)
    first = release(first_event)
    tag = f"model-v1-{first_event['after'][:7]}"
    assert f"push: podman push ghcr.io/acme/model:{tag}" in first.output
    digest = re.search(r"ghcr\.io/acme/model@(sha256:[0-9a-f]{64})", first.summary())[1]
    image = f"ghcr.io/acme/model@{digest}"
    promote = first.summary("release")
    assert "**Candidate**: version 1 passed its gates" in promote
    assert "baseline is eval/metrics.json of the previous commit on main" in promote
    assert (first.artifacts / "model-store" / "breast-cancer.mar").exists()
    champion, tags = alias_and_version(db)
    assert champion == "1" and tags["image"] == image  # the alias moved after the push, with the digest
    # order: the alias moved after the image was pushed, the deploy after the alias
    log = first.output
    assert log.index(f"push: podman push ghcr.io/acme/model:{tag}") < log.index(
        "Promoted**: `champion` -> version 1"
    )
    assert log.index("Promoted**: `champion` -> version 1") < log.index("deploy propose: opened PR")

    # staging: one commit on main naming the digest; production: ONE PR from deploy/production
    sh(["git", "fetch", "-q", "origin"], repo)
    staged = sh(["git", "show", f"origin/main:{STAGING}"], repo).stdout
    assert digest in staged and 'mlops.ai/model-version: "1"' in staged
    subject = sh(["git", "log", "-1", "--format=%s", "origin/main"], repo).stdout.strip()
    assert subject == f"deploy: staging -> model v1 ({image})"
    (pull,) = [p for p in github_server.state.pulls if p["state"] == "open"]
    assert pull["head"]["ref"] == "deploy/production" and image in pull["body"]

    # main's run saved .dvc/cache in main's Actions cache scope, the one every PR may restore from
    assert "Cache saved with key: dvc-" in first.output and "(scope refs/heads/main)" in first.output

    # the next release: a serving change, same model version, so a NEW immutable tag and digest
    sh(["git", "merge", "-q", "--ff-only", "origin/main"], repo)  # the staging commit
    seed_server_main(github_server, repo, parent=server_main)
    config = repo / "serve" / "config.properties"
    config.write_text(config.read_text() + "\n# tuned\n")
    sh(["git", "commit", "-q", "-am", "serve: a comment"], repo)
    second_event = push_event(repo)
    second = release(second_event)
    tag2 = f"model-v1-{second_event['after'][:7]}"
    assert tag2 != tag and f"push: podman push ghcr.io/acme/model:{tag2}" in second.output
    assert "version 1 is already `champion`" in second.summary("release")
    digest2 = re.search(r"ghcr\.io/acme/model@(sha256:[0-9a-f]{64})", second.summary())[1]
    assert digest2 != digest
    (pull2,) = [p for p in github_server.state.pulls if p["state"] == "open"]  # still ONE PR
    assert pull2["number"] == pull["number"] and digest2 in pull2["body"]
    production = github_server.file_at(REPO, "deploy/production", PRODUCTION).decode()
    assert digest2 in production and digest not in production  # the branch moved to the new digest
    assert "deploy propose: updated PR" in second.output
    assert len(github_server.calls("POST", rf"/repos/{REPO}/pulls")) == 1
    for t in (tag, tag2):
        sh(["podman", "rmi", "-f", f"ghcr.io/acme/model:{t}"], repo, check=False, **env)

    # a fork PR, with no secrets and no DVC remote, restores from main's cache scope instead of retraining
    sh(["git", "checkout", "-q", "-b", "fork-docs"], repo)
    (repo / "CONTRIBUTING.md").write_text("How to help.\n")
    sh(["git", "add", "CONTRIBUTING.md"], repo)
    sh(["git", "commit", "-q", "-m", "docs"], repo)
    event = pull_request_event(repo, number=12, fork_owner="outsider")
    github_server.add_pull(REPO, "fork-docs", head_sha=event["pull_request"]["head"]["sha"], number=12)
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
