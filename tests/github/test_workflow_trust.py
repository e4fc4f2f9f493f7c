"""Credentials by trust level, read from the workflow files themselves (docs/security.md).

PR code runs in pr.yml's jobs, and a same-repo PR can edit its own copy of any workflow: so the only
credentials it may ever see are read-only ones, and everything that writes (DVC remote, MLflow registry,
image push, deploy) lives in a job bound to a GitHub environment whose deployment branches are main only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SECRET = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)")
# What a repository-level secret may be: readable by any same-repo PR, so read-only or harmless.
REPOSITORY_SECRETS = {"GITHUB_TOKEN", "MLOPS_ALERT_URLS"} | {
    f"DVC_READONLY_{name}"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING")
}
WRITE = (
    "MLFLOW_",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "DEPLOY_APP_PRIVATE_KEY",
)


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def secrets_of(job: dict, top: dict) -> set[str]:
    """Every secret a job can read: its own text plus the workflow-level env (which every job inherits)."""
    return set(SECRET.findall(yaml.safe_dump(job))) | set(SECRET.findall(yaml.safe_dump(top.get("env", {}))))


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def test_no_pr_job_can_read_a_registry_or_write_credential():
    pr = workflow("pr.yml")
    assert "pull_request_target" not in pr[True]  # yaml reads `on:` as True
    for name, job in pr["jobs"].items():
        found = secrets_of(job, pr)
        assert found <= REPOSITORY_SECRETS, f"pr.yml job {name} reads {sorted(found - REPOSITORY_SECRETS)}"
        assert not any(s.startswith(WRITE) for s in found), (name, found)
        assert "environment" not in job, name
        assert "dvc push" not in runs(job), f"pr.yml job {name} pushes to the DVC remote"
        assert "MLFLOW_" not in yaml.safe_dump(job.get("env", {})), name


def test_the_train_job_hands_its_outputs_over_as_an_artifact():
    train = workflow("pr.yml")["jobs"]["train"]
    assert "mlops outputs pack" in runs(train)
    uploads = [s["with"]["name"] for s in train["steps"] if "upload-artifact" in s.get("uses", "")]
    assert "dvc-outputs" in uploads
    assert train["permissions"] == {"contents": "read", "id-token": "write"}


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_write_credentials_live_only_in_environment_jobs(name):
    flow = workflow(name)
    for job_name, job in flow["jobs"].items():
        writes = {s for s in secrets_of(job, flow) if s not in REPOSITORY_SECRETS and s != "RETRAIN_PR_TOKEN"}
        if writes:
            assert job.get("environment") in ("registry", "production"), (name, job_name, writes)
        if "dvc push" in runs(job):
            assert job.get("environment") == "registry", (name, job_name)


def needs(job: dict) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def test_promote_registers_first_and_moves_the_alias_last():
    jobs = workflow("promote.yml")["jobs"]
    release, image, champion, deploy = (jobs[n] for n in ("release", "image", "champion", "deploy"))
    assert "mlops promote --candidate" in runs(release) and "mlops champion" not in runs(release)
    assert needs(image) == {"release"} and "mlops champion" not in runs(image)
    assert needs(champion) == {"release", "image"}
    assert "mlops champion --version" in runs(champion) and "--expect" in runs(champion)
    assert needs(deploy) == {"release", "image", "champion"}
    assert "mlops deploy stage" in runs(deploy) and "mlops deploy propose" in runs(deploy)
    assert runs(deploy).index("mlops deploy stage") < runs(deploy).index("mlops deploy propose --image")
    # the image is pushed before the alias moves, so no later failure (the GitOps deploy) is a reason
    # to move it back: nothing undoes it, and only the champion job ever touches the alias
    assert "mlops champion --undo" not in yaml.safe_dump(jobs)
    for name, job in jobs.items():
        if name != "champion":
            assert "mlops champion" not in runs(job) and "mlops rollback" not in runs(job), name
    fix = next(s for s in deploy["steps"] if s.get("if") == "${{ failure() }}")
    assert "nothing was undone" in fix["run"] and "GITHUB_STEP_SUMMARY" in fix["run"]


def test_staging_pushes_to_main_only_with_a_minted_app_token():
    """GITHUB_TOKEN cannot push past main's branch rules, and a stored App token expires in an hour."""
    deploy = workflow("promote.yml")["jobs"]["deploy"]
    assert deploy["permissions"] == {"contents": "write", "pull-requests": "write"}  # the API branches
    app = next(s for s in deploy["steps"] if "create-github-app-token" in s.get("uses", ""))
    sha = "1b10c78c7865c340bc4f6099eb2f838309f1e8c3"  # v3.1.1, checked against the upstream tag
    assert app["uses"] == f"actions/create-github-app-token@{sha}"
    assert app["if"] == "${{ vars.DEPLOY_APP_ID != '' }}"
    assert app["with"]["private-key"] == "${{ secrets.DEPLOY_APP_PRIVATE_KEY }}"
    stage = next(s for s in deploy["steps"] if "mlops deploy stage" in s.get("run", ""))
    assert stage["env"]["APP_TOKEN"] == "${{ steps.app.outputs.token }}"
    script = stage["run"]
    # no App: a PR from deploy/staging (before any push); with one: push, and rebase on a moved main
    assert script.index("mlops deploy propose --overlay staging") < script.index("git push origin HEAD:main")
    assert "git rebase origin/main" in script
    assert "DEPLOY_TOKEN" not in yaml.safe_dump(deploy)


def test_promote_releases_only_from_main():
    flow = workflow("promote.yml")
    assert flow["jobs"]["release"]["if"] == "github.ref == 'refs/heads/main'"
    # every other job depends on release, so a dispatch from a branch runs nothing
    for name, job in flow["jobs"].items():
        assert name == "release" or "release" in needs(job), name
    assert flow[True]["push"]["branches"] == ["main"]


def test_promote_concurrency_is_one_group_and_documents_the_pending_run_rule():
    text = (WORKFLOWS / "promote.yml").read_text()
    flow = yaml.safe_load(text)
    assert flow["concurrency"] == {"group": "promote", "cancel-in-progress": False}
    assert "queued runs go in merge order" not in text
    assert "ONE pending run per group" in text and "replaces (cancels) the waiting one" in text


def test_images_are_tagged_immutably_and_deployed_by_digest():
    image = workflow("promote.yml")["jobs"]["image"]
    script = runs(image)
    assert "mlops.cli image-tag" in script and "--refuse-existing" in script
    assert "model-v$VERSION" not in script and "GITHUB_SHA::7" not in script  # the old mutable tags
    assert script.index("--refuse-existing") < script.index('"$ENGINE" build')
    assert image["outputs"]["image"] == "${{ steps.push.outputs.image }}"
    assert 'echo "image=$IMAGE@$digest"' in script


def test_oidc_is_pinned_and_uses_a_role_from_a_variable():
    sha = "e6de054238d6b7531b4efff3b6587d9aade6a06c"  # v6.2.3, checked against the upstream tag
    for name in ("pr.yml", "promote.yml", "drift.yml"):
        text = (WORKFLOWS / name).read_text()
        assert f"aws-actions/configure-aws-credentials@{sha}  # v6.2.3" in text, name
    roles = [("promote.yml", "release", "AWS_ROLE_ARN"), ("promote.yml", "champion", "AWS_ROLE_ARN")]
    roles += [("drift.yml", "detect", "AWS_READ_ROLE_ARN"), ("drift.yml", "retrain-pr", "AWS_ROLE_ARN")]
    for name, job, role in roles:
        spec = workflow(name)["jobs"][job]
        assert spec["permissions"]["id-token"] == "write", (name, job)
        step = next(s for s in spec["steps"] if "configure-aws-credentials" in s.get("uses", ""))
        assert step["with"]["role-to-assume"] == f"${{{{ vars.{role} }}}}", (name, job)
        assert step["if"] == f"${{{{ vars.{role} != '' }}}}", (name, job)
