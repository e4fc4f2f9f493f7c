"""`mlops deploy`: stage and canary rewrite the release files (and the result still renders and
validates), propose makes exactly one PR through the GitHub API, rollback is a git revert."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest

from mlops.cli import main
from mlops.release import delivery, proposal
from tests.standins.github_api import FakeGitHub, make_certificate
from tests.template.deploy.conftest import ROOT, render, validate

REPO = "acme/model-repo"
IMAGE_A = "ghcr.io/acme/model-repo@sha256:" + "a" * 64
IMAGE_B = "ghcr.io/acme/model-repo@sha256:" + "b" * 64
STAGING, PRODUCTION = delivery.release_file("staging"), delivery.release_file("production")


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A copy of deploy/ in a fresh git repository, as the working directory."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "deploy")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "deploy: initial")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def git(root, *args) -> str:
    env_args = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
    return subprocess.run(
        ["git", "-C", str(root), *env_args, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def image_of(root, overlay: str) -> str:
    docs = render(root / "deploy" / "overlays" / overlay)
    for doc in docs:
        validate(doc)
    (doc,) = [d for d in docs if d["kind"] in ("InferenceService", "Deployment")]
    spec = doc["spec"]["predictor"] if doc["kind"] == "InferenceService" else doc["spec"]["template"]["spec"]
    return spec["containers"][0]["image"], doc


# -- stage ---------------------------------------------------------------------------------------------
def test_stage_writes_the_digest_and_version_and_prints_the_path(checkout, capsys):
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "7"]) == 0
    assert capsys.readouterr().out.splitlines() == [STAGING]
    for overlay in ("staging", "plain-staging"):
        image, doc = image_of(checkout, overlay)
        assert image == IMAGE_A
        assert doc["metadata"]["annotations"]["mlops.ai/model-version"] == "7"
    assert image_of(checkout, "production")[0] != IMAGE_A  # production untouched
    diff = git(checkout, "diff", "--numstat")
    assert diff.split() == ["3", "3", STAGING]  # newName, digest, version: nothing else
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "7"]) == 0
    again = capsys.readouterr()
    assert again.out == "" and "nothing changed" in again.err


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/acme/model-repo:model-v7-abc1234",  # a tag
        "ghcr.io/acme/model-repo@sha256:" + "a" * 63,  # short digest
        "ghcr.io/acme/model-repo:v7@sha256:" + "a" * 64,  # tag and digest
        "ghcr.io/acme/model-repo@sha256:" + "A" * 64,  # upper case
        "model-repo@sha256:" + "a" * 64,  # no registry/owner
    ],
)
def test_stage_refuses_an_image_not_by_digest(checkout, capsys, image):
    before = (checkout / STAGING).read_text()
    assert main(["deploy", "stage", "--image", image, "--version", "7"]) == 1
    assert "by digest" in capsys.readouterr().err
    assert (checkout / STAGING).read_text() == before


def test_stage_refuses_a_file_whose_layout_changed(checkout, capsys):
    text = (checkout / STAGING).read_text()
    (checkout / STAGING).write_text(text.replace("    digest:", "    # digest:"))
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "7"]) == 1
    assert "digest" in capsys.readouterr().err


# -- canary --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("percent", [10, 100, 0])
def test_canary_sets_the_share(checkout, capsys, percent):
    assert main(["deploy", "canary", "--percent", str(percent)]) == 0
    assert capsys.readouterr().out == ("" if percent == 100 else f"{PRODUCTION}\n")  # 100: the default
    rendered = render(checkout / "deploy" / "overlays" / "production")
    (doc,) = [d for d in rendered if d["kind"] == "InferenceService"]  # the gate's ConfigMap comes along
    validate(doc)
    assert doc["spec"]["predictor"]["canaryTrafficPercent"] == percent
    assert render(checkout / "deploy" / "overlays" / "plain-production")  # plain still renders


def test_canary_refuses_out_of_range(checkout, capsys):
    assert main(["deploy", "canary", "--percent", "101"]) == 1
    assert "between 0 and 100" in capsys.readouterr().err


# -- rollback ------------------------------------------------------------------------------------------
def deploy_commit(root, image: str, version: str) -> str:
    text = (root / PRODUCTION).read_text()
    new = delivery.rewrite(text, PRODUCTION, image=delivery.Image.parse(image), version=version, canary=10)
    (root / PRODUCTION).write_text(new)
    git(root, "commit", "-q", "-am", f"deploy: production to {version}")
    return git(root, "rev-parse", "HEAD")


def test_rollback_prints_then_applies_the_revert(checkout, capsys):
    deploy_commit(checkout, IMAGE_A, "1")
    second = deploy_commit(checkout, IMAGE_B, "2")
    (checkout / "unrelated.txt").write_text("x")
    git(checkout, "add", "unrelated.txt")
    git(checkout, "commit", "-q", "--allow-empty", "-m", "unrelated")
    assert main(["deploy", "rollback"]) == 0
    out = capsys.readouterr().out
    assert f"git revert --no-edit {second}" in out
    assert image_of(checkout, "production")[0] == IMAGE_B  # printing changes nothing
    assert main(["deploy", "rollback", "--apply"]) == 0
    assert image_of(checkout, "production")[0] == IMAGE_A
    assert git(checkout, "log", "-1", "--format=%s") == 'Revert "deploy: production to 2"'
    assert git(checkout, "status", "--porcelain") == ""


def test_rollback_after_canary_steps_restores_the_previous_image(checkout):
    deploy_commit(checkout, IMAGE_A, "1")
    second = deploy_commit(checkout, IMAGE_B, "2")
    main(["deploy", "canary", "--percent", "0"])  # abort: traffic pinned to the previous revision
    git(checkout, "commit", "-q", "-am", "deploy: canary 0")
    assert main(["deploy", "rollback", "--apply"]) == 0
    image, doc = image_of(checkout, "production")
    assert image == IMAGE_A
    assert doc["spec"]["predictor"]["canaryTrafficPercent"] == 10  # as it was before version 2
    assert second in git(checkout, "log", "-1", "--format=%b")


def test_rollback_with_nothing_to_revert(checkout, capsys):
    assert main(["deploy", "rollback", "--overlay", "staging"]) == 1
    assert "no earlier deployment" in capsys.readouterr().err


# -- propose against the GitHub API test server ---------------------------------------------------------
@pytest.fixture
def github(tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # no release record, no params: no champion here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with FakeGitHub(*make_certificate(tmp_path_factory.mktemp("tls"))) as server:
        files = {p: (ROOT / p).read_bytes() for p in (STAGING, PRODUCTION)}
        server.add_branch(REPO, "main", files)
        monkeypatch.setenv("GITHUB_API_URL", server.api_url)
        monkeypatch.setenv("GITHUB_TOKEN", "test-token")
        monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_bundle))
        monkeypatch.delenv("GH_TOKEN", raising=False)
        yield server


def open_pulls(server):
    return [p for p in server.state.pulls if p["repo"] == REPO and p["state"] == "open"]


def test_propose_opens_one_pr_then_updates_it(github, capsys):
    main_before = github.state.refs[f"{REPO} refs/heads/main"]
    assert main(["deploy", "propose", "--image", IMAGE_A, "--version", "1"]) == 0
    assert "opened PR #1" in capsys.readouterr().out
    (pull,) = open_pulls(github)
    assert pull["head"]["ref"] == "deploy/production" and pull["base"]["ref"] == "main"
    assert "version 1" in pull["title"] and IMAGE_A in pull["body"]
    assert "Merging this PR is the approval" in pull["body"]
    assert "mlops deploy canary --percent 100" in pull["body"]
    assert "mlops deploy rollback" in pull["body"]
    assert "skips staging" in pull["body"]  # staging never ran it
    release = delivery.read(github.file_at(REPO, "deploy/production", PRODUCTION).decode())
    assert (str(release.image), release.version, release.canary) == (IMAGE_A, "1", 10)
    assert github.file_at(REPO, "main", PRODUCTION) == (ROOT / PRODUCTION).read_bytes()  # main untouched
    assert github.state.refs[f"{REPO} refs/heads/main"] == main_before

    # main moves on (the staging commit of the next promotion), then the next proposal
    staged = delivery.rewrite(
        (ROOT / STAGING).read_text(), STAGING, image=delivery.Image.parse(IMAGE_B), version="2"
    )
    files = {STAGING: staged.encode(), PRODUCTION: (ROOT / PRODUCTION).read_bytes()}
    with github.lock:
        new_main = github._commit(files, [main_before], "deploy: staging to 2")
        github.state.refs[f"{REPO} refs/heads/main"] = new_main
    assert main(["deploy", "propose", "--image", IMAGE_B, "--version", "2"]) == 0
    assert "updated PR #1" in capsys.readouterr().out
    (pull,) = open_pulls(github)  # never a second one
    assert IMAGE_B in pull["body"] and IMAGE_A not in pull["body"] and "version 2" in pull["title"]
    assert "✅ runs this digest" in pull["body"]
    tip = github.state.refs[f"{REPO} refs/heads/deploy/production"]
    assert github.state.commits[tip]["parents"] == [new_main]  # main + exactly one commit
    release = delivery.read(github.file_at(REPO, "deploy/production", PRODUCTION).decode())
    assert (str(release.image), release.version) == (IMAGE_B, "2")
    assert len(github.calls("POST", rf"/repos/{REPO}/pulls")) == 1


def test_propose_staging_is_its_own_pr_beside_production(github, capsys):
    """No App may push to main: staging goes through a PR from deploy/staging, production keeps its own."""
    main_before = github.state.refs[f"{REPO} refs/heads/main"]
    assert main(["deploy", "propose", "--overlay", "staging", "--image", IMAGE_A, "--version", "1"]) == 0
    assert "opened PR #1 from deploy/staging" in capsys.readouterr().out
    assert main(["deploy", "propose", "--image", IMAGE_A, "--version", "1"]) == 0
    assert "from deploy/production" in capsys.readouterr().out
    staging, production = sorted(open_pulls(github), key=lambda p: p["number"])
    assert staging["head"]["ref"] == "deploy/staging" and "to staging" in staging["title"]
    assert IMAGE_A in staging["body"] and "Staging without an App" in staging["body"]
    assert production["head"]["ref"] == "deploy/production"
    release = delivery.read(github.file_at(REPO, "deploy/staging", STAGING).decode())
    assert (str(release.image), release.version, release.canary) == (IMAGE_A, "1", None)
    assert github.file_at(REPO, "deploy/staging", PRODUCTION) == (ROOT / PRODUCTION).read_bytes()
    assert github.state.refs[f"{REPO} refs/heads/main"] == main_before  # main untouched

    assert main(["deploy", "propose", "--overlay", "staging", "--image", IMAGE_B, "--version", "2"]) == 0
    assert "updated PR #1 from deploy/staging" in capsys.readouterr().out
    assert len(open_pulls(github)) == 2  # still one per environment
    release = delivery.read(github.file_at(REPO, "deploy/staging", STAGING).decode())
    assert (str(release.image), release.version) == (IMAGE_B, "2")


def test_propose_racing_runs_make_one_pr(github):
    """Two release runs at once: one PR. The older version loses when the newer one was there first."""
    errors: list[BaseException] = []

    def run(image, version):
        try:
            proposal.propose(image, version)
        except BaseException as err:  # reported below, in the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(img, v)) for img, v in ((IMAGE_A, "1"), (IMAGE_B, "2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all("would move backwards" in str(err) for err in errors), errors
    (pull,) = open_pulls(github)
    release = delivery.read(github.file_at(REPO, "deploy/production", PRODUCTION).decode())
    assert str(release.image) in pull["body"]  # the PR describes what its branch holds
    if errors:
        assert release.version == "2"


def test_propose_refuses_a_tag_before_any_request(github, capsys):
    assert main(["deploy", "propose", "--image", "ghcr.io/acme/model-repo:latest", "--version", "1"]) == 1
    assert "by digest" in capsys.readouterr().err
    assert github.state.requests == [] and open_pulls(github) == []


def test_propose_nothing_to_do_when_production_runs_it(github, capsys):
    text = delivery.rewrite(
        (ROOT / PRODUCTION).read_text(), PRODUCTION, image=delivery.Image.parse(IMAGE_A), version="1"
    )
    github.add_branch(REPO, "main", {STAGING: (ROOT / STAGING).read_bytes(), PRODUCTION: text.encode()})
    assert main(["deploy", "propose", "--image", IMAGE_A, "--version", "1"]) == 0
    assert "no PR" in capsys.readouterr().out
    assert open_pulls(github) == []


def test_propose_without_credentials(monkeypatch, capsys):
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["deploy", "propose", "--image", IMAGE_A, "--version", "1"]) == 1
    assert "GITHUB_TOKEN" in capsys.readouterr().err


def test_the_test_server_refuses_what_github_refuses(github):
    """The refs and contents endpoints propose relies on answer mistakes as github.com does."""
    from github import Auth, Github, GithubException

    client = Github(
        auth=Auth.Token("t"),
        base_url=github.api_url,
        verify=str(github.ca_bundle),
        retry=None,
        seconds_between_writes=None,  # PyGithub's default spaces writes 1 s apart
    )
    repo = client.get_repo(REPO, lazy=True)
    main_sha = repo.get_git_ref("heads/main").object.sha
    current = repo.get_contents(PRODUCTION, ref="main")

    def status(call) -> int:
        with pytest.raises(GithubException) as err:
            call()
        return err.value.status

    assert status(lambda: repo.create_git_ref("refs/heads/main", main_sha)) == 422  # exists
    assert status(lambda: repo.create_git_ref("refs/heads/x", "f" * 40)) == 422  # no such commit
    assert status(lambda: repo.get_git_ref("heads/nope").object) == 404
    assert status(lambda: repo.update_file(PRODUCTION, "m", "x", "0" * 40, branch="main")) == 409  # stale
    assert status(lambda: repo.update_file(PRODUCTION, "m", "x", current.sha, branch="nope")) == 404
    assert github.state.refs[f"{REPO} refs/heads/main"] == main_sha  # nothing moved
    repo.update_file(PRODUCTION, "m", "x", current.sha, branch="main")  # right sha: one commit
    tip = github.state.refs[f"{REPO} refs/heads/main"]
    assert github.state.commits[tip]["parents"] == [main_sha]
    ref = repo.get_git_ref("heads/main")
    assert ref.object.sha == tip
    assert status(lambda: ref.edit(main_sha)) == 422  # back to the parent: not a fast forward
    ref.edit(main_sha, force=True)
    assert github.state.refs[f"{REPO} refs/heads/main"] == main_sha
