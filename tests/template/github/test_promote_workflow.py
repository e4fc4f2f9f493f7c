"""promote.yml under act: release (admit, register, gate), image (immutable tag, digest), champion, deploy
(staging: a commit on main with the App's token, else a PR; ONE production PR), in that order; a failure
before the champion job leaves the alias where it was, a failure of the deploy job moves nothing back;
a dispatch from a branch runs nothing. The registry is a host sqlite file (the
MLFLOW_TRACKING_URI secret), so the test reads the alias after the run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.repo import sh
from tests.template.container.podman import build_args, podman_env
from tests.template.github.act import pr_checkout, pull_request_event

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


def test_push_to_main_releases_in_order_and_a_failed_deploy_undoes_nothing(
    trained_repo, dvc_remote, tmp_path, act, github_server
):
    """Three releases of one model version: (1) the deploy App is half configured (no private key), so
    the deploy job fails after the alias moved: the release stands; (2) no App: staging and production
    are ONE PR each, main is never pushed; (3) the App: the staging commit is pushed to main, the
    production PR is updated (still one)."""
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
    origin_main = sh(["git", "rev-parse", "origin/main"], repo).stdout.strip()

    def release(event: dict, deploy: str = "succeeded", extra_vars=None, extra_secrets=None):
        result = act.run(
            repo,
            "push",
            event,
            workflow="promote.yml",
            secrets={**secrets, **(extra_secrets or {})},
            variables={**variables, **(extra_vars or {})},
            env=engine,
            timeout=1500,
        )
        assert (result.returncode == 0) == (deploy == "succeeded"), result
        assert result.jobs() == {
            "release": "succeeded",
            "image": "succeeded",
            "champion": "succeeded",
            "deploy": deploy,
        }, result
        return result

    def next_commit(line: str) -> dict:
        config = repo / "serve" / "config.properties"
        config.write_text(config.read_text() + f"\n# {line}\n")
        sh(["git", "commit", "-q", "-am", f"serve: {line}"], repo)
        return push_event(repo)

    def digest_of(result) -> str:
        return re.search(r"ghcr\.io/acme/model@(sha256:[0-9a-f]{64})", result.summary("image"))[1]

    # (1) DEPLOY_APP_ID without the DEPLOY_APP_PRIVATE_KEY secret: the token step fails
    first_event = push_event(repo)
    first = release(first_event, deploy="failed", extra_vars={"DEPLOY_APP_ID": "4242"})
    tag = f"model-v1-{first_event['after'][:7]}"
    assert f"push: podman push ghcr.io/acme/model:{tag}" in first.output
    digest = digest_of(first)
    image = f"ghcr.io/acme/model@{digest}"
    promote = first.summary("release")
    assert "**Candidate**: version 1 passed its gates" in promote
    assert "baseline is eval/metrics.json of the previous commit on main" in promote
    assert (first.artifacts / "model-store" / "breast-cancer.mar").exists()
    champion, tags = alias_and_version(db)
    assert champion == "1" and tags["image"] == image  # the release stands: nothing moved the alias back
    assert "release" not in tags  # (an undo tags the version "undone")
    log = first.output
    assert log.index(f"push: podman push ghcr.io/acme/model:{tag}") < log.index(
        "Promoted**: `champion` -> version 1"
    )
    fix = first.summary("deploy")
    assert "Deploy failed: nothing was undone" in fix and image in fix
    assert (
        "DEPLOY_APP_PRIVATE_KEY" in fix and "Allow GitHub Actions to create and approve pull requests" in fix
    )
    assert not github_server.state.pulls and "champion --undo" not in log
    sh(["git", "fetch", "-q", "origin"], repo)
    assert sh(["git", "rev-parse", "origin/main"], repo).stdout.strip() == origin_main

    # main's run saved .dvc/cache in main's Actions cache scope (for main's later runs; no PR run reads it)
    assert "Cache saved with key: dvc-" in first.output and "(scope refs/heads/main)" in first.output

    # (2) no App: a serving change, same model version, so a NEW immutable tag and digest; two PRs
    second_event = next_commit("tuned")
    second = release(second_event)
    tag2 = f"model-v1-{second_event['after'][:7]}"
    assert tag2 != tag and f"push: podman push ghcr.io/acme/model:{tag2}" in second.output
    assert "version 1 is already `champion`" in second.summary("release")
    digest2 = digest_of(second)
    image2 = f"ghcr.io/acme/model@{digest2}"
    assert digest2 != digest
    assert second.output.index("deploy propose: opened PR #1 from deploy/staging") < second.output.index(
        "deploy propose: opened PR #2 from deploy/production"
    )
    staging_pr, production_pr = sorted(
        (p for p in github_server.state.pulls if p["state"] == "open"), key=lambda p: p["number"]
    )
    assert staging_pr["head"]["ref"] == "deploy/staging" and image2 in staging_pr["body"]
    assert production_pr["head"]["ref"] == "deploy/production" and image2 in production_pr["body"]
    staged = github_server.file_at(REPO, "deploy/staging", STAGING).decode()
    assert digest2 in staged and 'mlops.ai/model-version: "1"' in staged
    assert github_server.state.refs[f"{REPO} refs/heads/main"] == server_main  # main: no API write
    sh(["git", "fetch", "-q", "origin"], repo)
    assert sh(["git", "rev-parse", "origin/main"], repo).stdout.strip() == origin_main  # nor a push

    # (3) the App (its token is minted in the job): staging is a commit on main, production's PR updated
    third_event = next_commit("tuned again")
    third = release(
        third_event, extra_vars={"DEPLOY_APP_ID": "4242"}, extra_secrets={"DEPLOY_APP_PRIVATE_KEY": "pem"}
    )
    digest3 = digest_of(third)
    image3 = f"ghcr.io/acme/model@{digest3}"
    assert digest3 not in (digest, digest2)
    assert "create-github-app-token (stand-in): installation token for App 4242" in third.output
    assert "staging: pushed to main" in third.output
    sh(["git", "fetch", "-q", "origin"], repo)
    staged = sh(["git", "show", f"origin/main:{STAGING}"], repo).stdout
    assert digest3 in staged and 'mlops.ai/model-version: "1"' in staged
    subject = sh(["git", "log", "-1", "--format=%s", "origin/main"], repo).stdout.strip()
    assert subject == f"deploy: staging -> model v1 ({image3})"
    assert "deploy propose: updated PR #2" in third.output
    production = github_server.file_at(REPO, "deploy/production", PRODUCTION).decode()
    assert digest3 in production and digest2 not in production  # the branch moved to the new digest
    pull = next(p for p in github_server.state.pulls if p["number"] == production_pr["number"])
    assert pull["state"] == "open" and image3 in pull["body"]
    assert len(github_server.calls("POST", rf"/repos/{REPO}/pulls")) == 2  # one per environment, ever
    for t in (tag, tag2, f"model-v1-{third_event['after'][:7]}"):
        sh(["podman", "rmi", "-f", f"ghcr.io/acme/model:{t}"], repo, check=False, **env)

    # a fork PR, with no secrets and no DVC remote, that changes no stage: nothing retrains
    sh(["git", "checkout", "-q", "-b", "fork-docs"], repo)
    (repo / "CONTRIBUTING.md").write_text("How to help.\n")
    sh(["git", "add", "CONTRIBUTING.md"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "docs"], repo)
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
    assert "Cache restored from key: dvc-" not in fork.output, fork  # a PR run takes no .dvc/cache
    assert "Stage 'train' is unchanged from origin/main: not reproduced" in fork.output, fork
    assert "Running stage 'train'" not in fork.output, fork
