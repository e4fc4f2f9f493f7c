"""Credentials by trust level, read from the workflow files themselves (docs/security.md).

PR code runs in pr.yml's jobs, and a same-repo PR can edit its own copy of any workflow: so the only
credentials it may ever see are read-only ones, and everything that writes (DVC remote, MLflow registry,
image push, deploy) lives in a job bound to a GitHub environment whose deployment branches are main only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.repo import sh

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / ".github" / "workflows"
SECRET = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)")
# What a repository-level secret may be: readable by any same-repo PR, so read-only or harmless.
REPOSITORY_SECRETS = {"GITHUB_TOKEN"} | {
    f"DVC_READONLY_{name}"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING")
}
# The lock bot's App key: a repository secret, since PR branches must reach it. Whoever can push a branch
# here can read it from their copy of pr.yml, and already holds what the App may do (contents: write, no
# ruleset bypass). It may appear only in pr.yml's lock-bot job, in the step that mints the token.
LOCK_BOT_SECRET = "LOCK_BOT_APP_PRIVATE_KEY"
WRITE = (
    "MLFLOW_",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "DEPLOY_APP_PRIVATE_KEY",
    "RETRAIN_",  # the retraining App's key, or its fallback PAT: they push branches and open PRs
    "MLOPS_ALERT_URLS",  # webhook URLs are credentials: whoever has one can post as the alerts
)
# Environments whose deployment branches are main only (docs/security.md, "Settings"): GitHub matches
# the rule against the run's GITHUB_REF, refs/pull/N/merge for a pull_request run, which never matches.
MAIN_ONLY = {"registry", "production", "monitoring"}


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
        found = secrets_of(job, pr) - ({LOCK_BOT_SECRET} if name == "lock-bot" else set())
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
    pack = next(s for s in train["steps"] if "mlops outputs pack" in s.get("run", ""))
    assert pack["run"].strip() == 'mlops outputs pack --dir "$RUNNER_TEMP/dvc-outputs"'


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_write_credentials_live_only_in_environment_jobs(name):
    flow = workflow(name)
    for job_name, job in flow["jobs"].items():
        allowed = REPOSITORY_SECRETS | ({LOCK_BOT_SECRET} if job_name == "lock-bot" else set())
        writes = {s for s in secrets_of(job, flow) if s not in allowed}
        if writes:
            assert job.get("environment") in MAIN_ONLY, (name, job_name, writes)
        # whatever can write the DVC remote or push an image runs behind a main-only environment:
        # `dvc push`, or `mlops retrain-pr` with a token that may push (it pushes the new data snapshot)
        permissions = job.get("permissions") or {}
        pushes_data = "mlops retrain-pr" in runs(job) and permissions.get("contents") == "write"
        if "dvc push" in runs(job) or pushes_data:
            assert job.get("environment") == "registry", (name, job_name)
        if permissions.get("packages") == "write":
            assert job.get("environment") == "production", (name, job_name)


SECRET_TEST = re.compile(r"secrets\.[A-Za-z_][A-Za-z0-9_]*\s*[!=]=\s*''")


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_secrets_are_set_only_on_the_steps_that_use_them(name):
    """Never in a workflow's or job's env (every step, pip install included, would see them), never on a
    step that installs dependencies; a job-level `secrets.X != ''` (a boolean, not the value) is fine."""
    flow = workflow(name)
    assert not SECRET.search(yaml.safe_dump(flow.get("env", {}))), f"{name}: a secret in the workflow's env"
    for job_name, job in flow["jobs"].items():
        for key, value in (job.get("env") or {}).items():
            assert not SECRET.search(SECRET_TEST.sub("", str(value))), (name, job_name, key)
        for step in job.get("steps", []):
            installs = step.get("uses", "").startswith("./.github/actions/setup") or re.search(
                r"\b(pip|npm|uv) (install|ci)\b|make (install|cml)", step.get("run", "")
            )
            if installs:
                assert not SECRET.search(yaml.safe_dump(step)), (name, job_name, step.get("name"))


def cache_steps(job: dict) -> list[dict]:
    return [s for s in job.get("steps", []) if s.get("uses", "").startswith("actions/cache")]


def test_no_pr_run_restores_a_dvc_cache_from_the_actions_cache():
    """GitHub searches a run's own cache scope first, and every run of a PR shares refs/pull/N/merge:
    an earlier (force-pushed-away) commit of the PR can save any key there. So no job that a PR
    triggers may take .dvc/cache (objects or run-cache) from the Actions cache."""
    for path in sorted(WORKFLOWS.glob("*.yml")):
        flow = workflow(path.name)
        if not {"pull_request", "pull_request_target"} & set(flow[True]):
            continue
        for job_name, job in flow["jobs"].items():
            for step in cache_steps(job):
                assert ".dvc" not in str(step["with"]["path"]), (path.name, job_name)


def test_promote_restores_only_main_s_cache_scope():
    """promote.yml runs on push to main (and dispatch, whose jobs all need `release`, which runs on main
    only): a run on refs/heads/main reads main's scope only, which no PR run can write."""
    flow = workflow("promote.yml")
    assert set(flow[True]) == {"push", "workflow_dispatch"}
    assert flow["jobs"]["release"]["if"] == "github.ref == 'refs/heads/main'"
    for job_name, job in flow["jobs"].items():
        if cache_steps(job):
            assert job_name == "release" or "release" in needs(job), job_name


def test_drift_mints_an_app_token_and_keeps_its_credentials_behind_main_only_environments():
    jobs = workflow("drift.yml")["jobs"]
    detect, retrain, restate = jobs["detect"], jobs["retrain-pr"], jobs["restate-pr"]
    assert detect["environment"] == "monitoring" and retrain["environment"] == "registry"
    alert = [s for s in detect["steps"] if "MLOPS_ALERT_URLS" in yaml.safe_dump(s)]
    assert [s.get("id") for s in alert] == ["drift"]  # the one step that alerts
    app = next(s for s in retrain["steps"] if "create-github-app-token" in s.get("uses", ""))
    sha = "1b10c78c7865c340bc4f6099eb2f838309f1e8c3"  # v3.1.1, checked against the upstream tag
    assert app["uses"] == f"actions/create-github-app-token@{sha}"
    assert app["if"] == "${{ vars.RETRAIN_APP_ID != '' }}"
    assert app["with"]["private-key"] == "${{ secrets.RETRAIN_APP_PRIVATE_KEY }}"
    opens = next(s for s in retrain["steps"] if "mlops retrain-pr" in s.get("run", ""))
    fallbacks = "steps.app.outputs.token || secrets.RETRAIN_PR_TOKEN || github.token"  # the PAT: a fallback
    assert opens["env"]["GH_TOKEN"] == f"${{{{ {fallbacks} }}}}"
    assert "secrets." not in yaml.safe_dump(restate)  # editing a body: the job token
    assert restate["permissions"] == {"contents": "read", "pull-requests": "write"}


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
    assert script.index("--refuse-existing") < script.index("mlops.cli image-build")
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


# --- pr.yml: the comment first, one check, the lock bot ------------------------------------------------


def test_lint_test_and_train_run_side_by_side_and_the_comment_needs_training_only():
    jobs = workflow("pr.yml")["jobs"]
    for name in ("lint", "test", "train"):
        assert not needs(jobs[name]), f"{name} waits for {needs(jobs[name])}"
    assert needs(jobs["comment"]) == {"train"}
    assert needs(jobs["lock-bot"]) == {"train"}
    assert 'python -m pytest -m "not slow and not template"' in runs(jobs["test"])
    assert jobs["test"]["steps"][-1]["env"] == {"PYTEST_ADDOPTS": "${{ vars.PYTEST_ADDOPTS }}"}


def test_the_check_job_is_green_only_when_lint_test_and_train_succeeded(tmp_path):
    """The one status for main's branch rule: it runs even when a job it needs failed, and then fails."""
    check = workflow("pr.yml")["jobs"]["check"]
    assert needs(check) == {"lint", "test", "train"}
    assert check["if"] == "${{ always() }}" and check["permissions"] == {}
    [step] = check["steps"]
    assert step["env"] == {n.upper(): f"${{{{ needs.{n}.result }}}}" for n in ("lint", "test", "train")}

    def verdict(**results: str) -> int:
        env = {"LINT": "success", "TEST": "success", "TRAIN": "success", **results}
        return subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True).returncode

    assert verdict() == 0
    for job in ("LINT", "TEST", "TRAIN"):
        for result in ("failure", "cancelled", "skipped"):
            assert verdict(**{job: result}) != 0, (job, result)


def test_the_train_job_reproduces_against_the_base_and_exposes_the_lock_verdict():
    train = workflow("pr.yml")["jobs"]["train"]
    script = runs(train)
    assert "dvc repro" not in script.replace("dvc repro --pull", "")  # mlops repro decides what runs
    assert 'mlops repro --base "origin/${BASE_REF}" --pull' in script
    assert 'mlops repro --base "origin/${BASE_REF}"' in script
    lock = next(s for s in train["steps"] if s.get("id") == "lock")
    assert 'mlops lock-check --base "origin/${BASE_REF}"' in lock["run"]
    assert train["outputs"]["lock"] == "${{ steps.lock.outputs.lock }}"
    head = train["steps"][1]  # right after the checkout: what is trained is the commit the lock goes back to
    assert head["run"] == 'git checkout -q --detach "$HEAD_SHA"'
    assert head["env"] == {"HEAD_SHA": "${{ github.event.pull_request.head.sha }}"}


def test_every_pr_job_keeps_credentials_out_of_git_and_untrusted_values_out_of_scripts():
    text = (WORKFLOWS / "pr.yml").read_text()
    flow = yaml.safe_load(text)
    assert flow["permissions"] == {"contents": "read"}
    assert flow["concurrency"] == {
        "group": "pr-${{ github.event.pull_request.number }}",
        "cancel-in-progress": True,
    }
    for name, job in flow["jobs"].items():
        for step in job.get("steps", []):
            if "actions/checkout" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False, name
            assert "${{" not in step.get("run", ""), f"{name}: a value reaches a script other than by env"
    pins = re.findall(r"uses: ([\w.-]+/[\w./-]+)@(\S+)(.*)", text)
    assert pins
    for action, ref, rest in pins:
        assert re.fullmatch(r"[0-9a-f]{40}", ref) and re.search(r"# v\d+\.\d+\.\d+", rest), action


def test_the_lock_bot_runs_no_pr_code_and_pushes_only_with_the_minted_app_token():
    bot = workflow("pr.yml")["jobs"]["lock-bot"]
    condition = " ".join(bot["if"].split())
    assert "needs.train.outputs.lock == 'stale'" in condition
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert "vars.LOCK_BOT_APP_ID != ''" in condition
    assert bot["permissions"] == {"contents": "read"}
    steps = bot["steps"]
    app = steps[0]
    sha = "1b10c78c7865c340bc4f6099eb2f838309f1e8c3"  # v3.1.1, as promote.yml's deploy job
    assert app["uses"] == f"actions/create-github-app-token@{sha}"
    assert app["with"] == {
        "app-id": "${{ vars.LOCK_BOT_APP_ID }}",
        "private-key": f"${{{{ secrets.{LOCK_BOT_SECRET} }}}}",
        "permission-contents": "write",
    }
    for step in steps[1:]:  # the key stays in the step that mints the token
        assert LOCK_BOT_SECRET not in yaml.safe_dump(step)
        assert not step.get("uses", "").startswith("./"), "a local action is the PR's code"
    script = runs(bot)
    for pr_code in ("mlops", "make", "pip", "python", "dvc ", "./", "npm", "bash "):
        assert pr_code not in script, f"the lock bot runs {pr_code!r}, i.e. code of the PR"
    commit = steps[-1]
    assert commit["env"]["APP_TOKEN"] == "${{ steps.app.outputs.token }}"
    assert commit["env"]["HEAD_REF"] == "${{ github.head_ref }}"
    assert 'git push origin "HEAD:refs/heads/$HEAD_REF"' in commit["run"]
    assert 'x-access-token:%s\' "$APP_TOKEN"' in commit["run"]
    assert "GITHUB_TOKEN" not in yaml.safe_dump(bot) and "github.token" not in yaml.safe_dump(bot)


def bot_step(work: Path, src: Path, head_sha: str, run_id: str, tmp: Path) -> subprocess.CompletedProcess:
    """pr.yml's lock-bot commit step, run by bash as the runner runs it (`bash -eo pipefail`)."""
    step = workflow("pr.yml")["jobs"]["lock-bot"]["steps"][-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {
        "APP_TOKEN": "app-token",
        "SERVER": "https://github.example",
        "HEAD_REF": "feature",
        "HEAD_SHA": head_sha,
        "RUN_ID": run_id,
        "SRC": str(src),
        "GITHUB_STEP_SUMMARY": str(tmp / "summary.md"),
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=work,
        env=env,
        text=True,
        capture_output=True,
    )


def run_lock_bot(tmp_path: Path, branch_files: dict[str, str], link: str | None = None):
    """The lock-bot step on a checkout of a PR branch whose origin is a local bare repository;
    `branch_files` is the artifact's branch/ folder. Returns (process, origin's log of the branch, ...)."""
    origin, work, src = tmp_path / "origin.git", tmp_path / "work", tmp_path / "dvc-outputs" / "branch"
    seed = tmp_path / "seed"
    for rel in ("dvc.lock", ".gitignore", "reports/.gitignore", "artifacts/.gitignore", "eval/metrics.json"):
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, seed / rel)
    sh(["git", "init", "-q", "-b", "feature"], seed)
    sh(["git", "add", "-A"], seed)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "change train.lr"], seed)
    sh(["git", "clone", "-q", "--bare", str(seed), str(origin)], tmp_path)
    sh(["git", "clone", "-q", str(origin), str(work)], tmp_path)
    for rel, text in branch_files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    if link:
        (src / link).parent.mkdir(parents=True, exist_ok=True)
        (src / link).symlink_to("/etc/passwd")
    head = sh(["git", "rev-parse", "HEAD"], work).stdout.strip()
    proc = bot_step(work, src, head, "42", tmp_path)
    log = sh(["git", "log", "--format=%s", "feature"], origin).stdout.splitlines()
    return proc, log, origin, work


def test_the_lock_bot_commits_dvc_lock_and_the_git_tracked_outputs_to_the_pr_branch(tmp_path):
    lock = (ROOT / "dvc.lock").read_text() + "# trained by run 42\n"
    proc, log, origin, work = run_lock_bot(
        tmp_path, {"dvc.lock": lock, "eval/metrics.json": "{}\n", "eval/plots/roc.csv": "fpr,tpr\n"}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert log == ["dvc.lock and metrics of run 42", "change train.lr"]
    changed = sh(["git", "show", "--name-only", "--format=", "feature"], origin).stdout.split()
    assert sorted(changed) == ["dvc.lock", "eval/metrics.json", "eval/plots/roc.csv"]
    assert sh(["git", "show", "feature:dvc.lock"], origin).stdout == lock
    header = sh(["git", "config", "http.https://github.example/.extraheader"], work).stdout
    assert header.startswith("AUTHORIZATION: basic ")  # the App token, as promote.yml's deploy job


@pytest.mark.parametrize(
    "extra",
    [
        {".github/workflows/pr.yml": "on: push\n"},  # CI files
        {"model/train.py": "import os\n"},  # a dependency of the lock, i.e. code: not an output
        {"artifacts/model/model.pt": "weights"},  # a DVC-cached output (git-ignored)
        {"eval/../model/train.py": "x"},
    ],
    ids=["workflow", "code", "cached-output", "dotdot"],
)
def test_the_lock_bot_refuses_anything_but_the_lock_and_its_git_tracked_outputs(tmp_path, extra):
    lock = (ROOT / "dvc.lock").read_text()
    proc, log, _, _ = run_lock_bot(tmp_path, {"dvc.lock": lock + "#\n", **extra})
    assert proc.returncode != 0 and "refused" in proc.stdout, proc.stdout + proc.stderr
    assert log == ["change train.lr"]  # nothing pushed


def test_the_lock_bot_refuses_links(tmp_path):
    lock = (ROOT / "dvc.lock").read_text()
    proc, log, _, _ = run_lock_bot(tmp_path, {"dvc.lock": lock + "#\n"}, link="eval/metrics.json")
    assert proc.returncode != 0 and "link" in proc.stdout and log == ["change train.lr"]


def test_the_lock_bot_does_not_commit_twice_when_its_own_commit_is_stale(tmp_path):
    """The run on the bot's commit trained differently again: no loop of bot commits, the comment's fix."""
    lock = (ROOT / "dvc.lock").read_text()
    proc, _, origin, work = run_lock_bot(tmp_path, {"dvc.lock": lock + "# run 42\n"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bot_commit = sh(["git", "rev-parse", "feature"], origin).stdout.strip()  # the next run's head
    src = tmp_path / "dvc-outputs" / "branch"
    (src / "dvc.lock").write_text(lock + "# run 43, trained differently\n")
    proc = bot_step(work, src, bot_commit, "43", tmp_path)
    assert proc.returncode != 0 and "lock bot's own commit" in proc.stdout, proc.stdout + proc.stderr
    assert sh(["git", "rev-parse", "feature"], origin).stdout.strip() == bot_commit


def test_the_lock_bot_leaves_a_branch_that_moved_since_the_run(tmp_path):
    """The author pushed again while the run trained: that push's own run checks the lock."""
    lock = (ROOT / "dvc.lock").read_text()
    proc, log, origin, work = run_lock_bot(tmp_path, {"dvc.lock": lock + "# run 42\n"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trained = sh(["git", "rev-parse", "feature~1"], origin).stdout.strip()  # an older run trained this one
    proc = bot_step(work, tmp_path / "dvc-outputs" / "branch", trained, "41", tmp_path)
    assert proc.returncode == 0 and "moved since this run started" in proc.stdout, proc.stdout + proc.stderr
    assert sh(["git", "log", "--format=%s", "feature"], origin).stdout.splitlines() == log
