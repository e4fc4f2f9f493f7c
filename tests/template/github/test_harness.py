"""The harness itself: the API test server with the real CML CLI, and the act stand-ins (a tiny workflow)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from tests.repo import sh
from tests.standins.cml import real_cml
from tests.template.github.act import pull_request_event, used_actions

WORKFLOW = """\
name: smoke
on: pull_request
permissions:
  contents: read
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0
        with:
          python-version: "3.11"
      - uses: actions/cache@5a3ec84eff668545956fd18022155c47e93e2684 # v4.2.3
        id: cache
        with:
          path: saved
          key: smoke-${{ hashFiles('input.txt') }}
      - run: |
          echo "hit=${{ steps.cache.outputs.cache-hit }}"
          test -f saved/x || { mkdir -p saved; date > saved/x; }
          python -c "import yaml, sys; print('python', sys.prefix)"
          echo "## smoke summary" >> "$GITHUB_STEP_SUMMARY"
          echo "report body" > report.md
      - uses: actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02 # v4.6.2
        with:
          name: out
          path: report.md
  comment:
    needs: build
    runs-on: ubuntu-latest
    permissions:
      pull-requests: write
    steps:
      - uses: actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093 # v4.3.0
        with:
          name: out
      - uses: iterative/setup-cml@f12ea7685438c1fc438d50f77519b3860cf5fa98 # v2.0.1
        with:
          version: v0.20.6
      - run: >-
          cml comment update --driver=github --repo="$GITHUB_SERVER_URL/$GITHUB_REPOSITORY"
          --target=pr --watermark-title=smoke --no-publish report.md
        env:
          REPO_TOKEN: ${{ secrets.GITHUB_TOKEN }}
          ITERATIVE_DO_NOT_TRACK: "1"
"""


def make_repo(path: Path) -> Path:
    path.mkdir()
    (path / ".github/workflows").mkdir(parents=True)
    (path / ".github/workflows/smoke.yml").write_text(WORKFLOW)
    (path / "input.txt").write_text("1\n")
    sh(["git", "init", "-q", "-b", "main"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "init"], path)
    sh(["git", "remote", "add", "origin", "https://github.com/acme/model.git"], path)
    sh(["git", "update-ref", "refs/remotes/origin/main", "HEAD"], path)
    return path


def cml(server, cwd: Path, *args: str, event: dict | None = None, check: bool = True, **extra: str):
    """The real CML CLI against the test server, as the PR workflow's comment step runs it."""
    env = {
        "GITHUB_SERVER_URL": server.url,
        "GITHUB_REPOSITORY": "acme/model",
        "GITHUB_ACTOR": "alice",
        "REPO_TOKEN": "t",
        "NODE_EXTRA_CA_CERTS": str(server.ca_bundle),
        "ITERATIVE_DO_NOT_TRACK": "1",
        "HOME": str(cwd.parent / "home"),
        "CI": "true",
        **extra,
    }
    if event:
        (cwd / "event.json").write_text(json.dumps(event))
        env.update(GITHUB_EVENT_NAME="pull_request", GITHUB_EVENT_PATH=str(cwd / "event.json"))
    argv = [str(real_cml()), *args, "--driver=github", f"--repo={server.url}/acme/model"]
    return sh(argv, cwd, check=check, **env)


def pr_event(sha: str, number: int = 1) -> dict:
    return {"pull_request": {"number": number, "head": {"sha": sha}}}


def test_cml_comment_update_patches_its_own_comment(github_server, tmp_path):
    repo = make_repo(tmp_path / "repo")
    sha = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    github_server.add_pull("acme/model", "feature", head_sha=sha)
    (repo / "other.md").write_text("someone else's comment")
    cml(github_server, repo, "comment", "create", "--target=pr", "other.md", event=pr_event(sha))
    plot = (Path(__file__).parents[3] / "docs/images/report/roc.png").read_bytes()  # a real PNG
    for text in ("first", "second"):
        (repo / "report.md").write_text(f"# {text}\n\n![plot](plot.png)\n")
        (repo / "plot.png").write_bytes(plot)
        cml(
            github_server,
            repo,
            "comment",
            "update",
            "--target=pr",
            "--watermark-title=CML report",
            f"--publish-url={github_server.url}/assets",
            "report.md",
            event=pr_event(sha),
        )
    bodies = [c["body"] for c in github_server.comments("acme/model", 1)]
    assert len(bodies) == 2 and bodies[0].startswith("someone else's")
    assert f'#{sha} "CML watermark CML report")' in bodies[1]  # the watermark names the head commit
    assert github_server.unpublished(bodies[1]) == "# second\n\n![plot](plot.png)\n"
    [first, second] = github_server.state.assets.values()  # published on each update, link rewritten
    assert first.data == second.data == plot and second.filename == "plot.png"
    assert second.content_type == "image/png"
    assert len(github_server.calls("PATCH", r"/repos/acme/model/issues/comments/\d+")) == 1
    assert not github_server.calls("POST", "/telemetry")


def test_cml_finds_its_comment_among_many_on_the_first_page(github_server, tmp_path):
    """CML 0.20 lists a PR's comments without paging: its own comment must be on the first page (30), as
    the first CI run's comment is. A long discussion after it does not make a second comment."""
    repo = make_repo(tmp_path / "repo")
    sha = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    github_server.add_pull("acme/model", "feature", head_sha=sha)
    (repo / "report.md").write_text("report\n")
    args = ("comment", "update", "--target=pr", "--watermark-title=Model report", "--no-publish", "report.md")
    cml(github_server, repo, *args, event=pr_event(sha))
    for n in range(45):
        github_server.add_comment("acme/model", 1, f"review note {n}")
    [listing] = github_server.calls("GET", "/repos/acme/model/issues/1/comments")
    cml(github_server, repo, *args, event=pr_event(sha))
    assert len(github_server.comments("acme/model", 1)) == 46  # patched, not posted
    assert len(github_server.calls("PATCH", r"/repos/acme/model/issues/comments/\d+")) == 1
    assert listing.query == {}  # the first page only: the server pages like GitHub (30 by default)


def test_the_server_pages_lists_like_github(github_server):
    import urllib.request

    for n in range(35):
        github_server.add_pull("acme/model", f"b{n}")
    context = ssl.create_default_context(cafile=str(github_server.ca_bundle))
    with urllib.request.urlopen(f"{github_server.api_url}/repos/acme/model/pulls", context=context) as r:
        first, link = json.load(r), r.headers["Link"]
    assert len(first) == 30 and 'rel="next"' in link and "page=2" in link
    with urllib.request.urlopen(
        f"{github_server.api_url}/repos/acme/model/pulls?page=2", context=context
    ) as r:
        assert [p["head"]["ref"] for p in json.load(r)] == [f"b{n}" for n in range(30, 35)]


def test_real_cml_rejects_commit_sha_with_target(github_server, tmp_path):
    """What the old recording stand-in accepted and the real CLI refuses: the bug of the first PR loop."""
    repo = make_repo(tmp_path / "repo")
    sha = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    (repo / "r.md").write_text("x")
    proc = cml(
        github_server, repo, "comment", "update", "--target=pr", f"--commit-sha={sha}", "r.md", check=False
    )
    assert proc.returncode != 0 and "mutually exclusive" in proc.stderr
    assert not github_server.state.requests


def test_cml_comment_without_pr_fails_clearly(github_server, tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "r.md").write_text("x")
    sha = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    proc = cml(
        github_server,
        repo,
        "comment",
        "create",
        "--target=pr",
        "--no-publish",
        "r.md",
        check=False,
        GITHUB_SHA=sha,
    )  # a push, not a PR event: CML looks for the PR of the commit
    assert proc.returncode != 0 and f'PR for commit sha \\"{sha}\\" not found' in proc.stderr
    assert not github_server.state.issue_comments


def test_used_actions_reads_workflows(tmp_path):
    repo = make_repo(tmp_path / "repo")
    found = dict(used_actions(repo))
    assert found["actions/cache"] == "5a3ec84eff668545956fd18022155c47e93e2684"
    assert found["iterative/setup-cml"] == "f12ea7685438c1fc438d50f77519b3860cf5fa98"


@pytest.mark.slow
def test_act_runs_a_workflow_with_the_standins(act, github_server, tmp_path):
    repo = make_repo(tmp_path / "repo")
    event = pull_request_event(repo, number=1)
    github_server.add_pull("acme/model", "main", head_sha=event["pull_request"]["head"]["sha"])
    first = act.run(repo, "pull_request", event, workflow="smoke.yml")
    assert first.returncode == 0, first
    assert first.jobs() == {"build": "succeeded", "comment": "succeeded"}, first
    assert "hit=false" in first.output and "smoke summary" in first.summary("build")
    assert (first.artifacts / "out" / "report.md").read_text() == "report body\n"
    assert len(github_server.calls("POST", "/repos/acme/model/issues/1/comments")) == 1  # by the real CML
    second = act.run(repo, "pull_request", event, workflow="smoke.yml", job="build")
    assert "hit=true" in second.output, second  # the cache stand-in persisted between runs
    [comment] = github_server.comments("acme/model", 1)
    assert github_server.unpublished(comment["body"]) == "report body\n"


@pytest.mark.slow
def test_setup_cml_standin_refuses_an_unpinned_cml(act, github_server, tmp_path):
    """The real setup-cml installs the latest CML unless `version` is given; the workflows pin it."""
    repo = make_repo(tmp_path / "repo")
    workflow = repo / ".github/workflows/smoke.yml"
    workflow.write_text(workflow.read_text().replace("version: v0.20.6", "version: latest"))
    sh(["git", "commit", "-q", "-am", "unpinned"], repo)
    event = pull_request_event(repo, number=1)
    result = act.run(repo, "pull_request", event, workflow="smoke.yml")
    assert result.returncode != 0 and "pin the version the harness has: v0.20.6" in result.output, result
    assert not github_server.state.issue_comments
