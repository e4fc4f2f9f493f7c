"""The harness itself: the API test server, the recording `cml`, and the act stand-ins, on a tiny workflow."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.github.act import CML_BIN, pull_request_event, used_actions
from tests.repo import sh

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
      - uses: iterative/setup-cml@4a0e5e6a5b18ab0aa5e0e4e2d5d0c1d1c8a1d8e4 # v2.0.1
      - run: cml comment update --target=pr --watermark-title=smoke --no-publish report.md
        env:
          REPO_TOKEN: ${{ secrets.GITHUB_TOKEN }}
"""


def make_repo(path: Path) -> Path:
    path.mkdir()
    (path / ".github/workflows").mkdir(parents=True)
    (path / ".github/workflows/smoke.yml").write_text(WORKFLOW)
    (path / "input.txt").write_text("1\n")
    sh(["git", "init", "-q", "-b", "main"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-q", "-m", "init"], path)
    sh(["git", "remote", "add", "origin", "https://github.com/acme/model.git"], path)
    sh(["git", "update-ref", "refs/remotes/origin/main", "HEAD"], path)
    return path


def cml(server, cwd: Path, *args: str, event: dict | None = None) -> subprocess.CompletedProcess:
    env = {
        "GITHUB_SERVER_URL": server.url,
        "GITHUB_REPOSITORY": "acme/model",
        "GITHUB_TOKEN": "t",
        "GITHUB_ACTOR": "alice",
        "SSL_CERT_FILE": str(server.ca_bundle),
        "CML_STANDIN_LOG": str(cwd / "log"),
    }
    if event:
        (cwd / "event.json").write_text(json.dumps(event))
        env.update(GITHUB_EVENT_NAME="pull_request", GITHUB_EVENT_PATH=str(cwd / "event.json"))
    return sh([str(CML_BIN / "cml"), *args], cwd, **env)


def test_cml_comment_update_patches_its_own_comment(github_server, tmp_path):
    repo = make_repo(tmp_path / "repo")
    sha = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    github_server.add_pull("acme/model", "feature", head_sha=sha)
    event = {"pull_request": {"number": 1, "head": {"sha": sha}}}
    (repo / "other.md").write_text("someone else's comment")
    cml(github_server, repo, "comment", "create", "--target=pr", "other.md", event=event)
    for text in ("first", "second"):
        (repo / "report.md").write_text(f"# {text}\n![plot](plot.png)\n")
        (repo / "plot.png").write_bytes(b"\x89PNG fake")
        cml(
            github_server,
            repo,
            "comment",
            "update",
            "--target=pr",
            "--watermark-title=CML report",
            "--publish-url",
            f"{github_server.url}/assets",
            "report.md",
            event=event,
        )
    bodies = [c["body"] for c in github_server.comments("acme/model", 1)]
    assert len(bodies) == 2 and bodies[0].startswith("someone else's")
    assert bodies[1].startswith("# second") and "CML watermark CML report" in bodies[1]
    assert f"![plot]({github_server.url}/assets/" in bodies[1]  # published, link rewritten
    assert len(github_server.calls("PATCH", r"/repos/acme/model/issues/comments/\d+")) == 1
    assert github_server.calls("GET", "/users/alice")
    logged = [json.loads(line)["argv"] for line in (repo / "log").read_text().splitlines()]
    assert logged[-1][:3] == ["comment", "update", "--target=pr"]


def test_cml_comment_without_pr_fails_clearly(github_server, tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "r.md").write_text("x")
    sha = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    proc = subprocess.run(
        [str(CML_BIN / "cml"), "comment", "create", "--target=pr", "r.md"],
        cwd=repo,
        text=True,
        capture_output=True,
        env={
            "PATH": "/usr/bin:/bin",
            "GITHUB_SERVER_URL": github_server.url,
            "GITHUB_REPOSITORY": "acme/model",
            "GITHUB_TOKEN": "t",
            "GITHUB_SHA": sha,
            "SSL_CERT_FILE": str(github_server.ca_bundle),
        },
    )
    assert proc.returncode != 0 and "no open pull request" in proc.stderr
    assert not github_server.state.issue_comments


def test_cml_pr_create_pushes_and_is_idempotent(github_server, tmp_path):
    repo = make_repo(tmp_path / "repo")
    bare = tmp_path / "origin.git"
    sh(["git", "clone", "-q", "--bare", str(repo), str(bare)], tmp_path)
    sh(["git", "config", f"url.{bare}.insteadOf", "https://github.com/acme/model.git"], repo)
    (repo / "input.txt").write_text("2\n")
    args = ("pr", "create", "--branch=retrain", "--title=Retrain", "--body=drift", "input.txt")
    cml(github_server, repo, *args)
    cml(github_server, repo, *args)
    assert [(p["number"], p["head"]["ref"], p["title"]) for p in github_server.state.pulls] == [
        (1, "retrain", "Retrain")
    ]
    assert sh(["git", "show", "retrain:input.txt"], bare).stdout == "2\n"


def test_used_actions_reads_workflows(tmp_path):
    repo = make_repo(tmp_path / "repo")
    found = dict(used_actions(repo))
    assert found["actions/cache"] == "5a3ec84eff668545956fd18022155c47e93e2684"
    assert "iterative/setup-cml" in found


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
    assert first.cml_calls == [
        ["comment", "update", "--target=pr", "--watermark-title=smoke", "--no-publish", "report.md"]
    ]
    second = act.run(repo, "pull_request", event, workflow="smoke.yml", job="build")
    assert "hit=true" in second.output, second  # the cache stand-in persisted between runs
    [comment] = github_server.comments("acme/model", 1)
    assert comment["body"].startswith("report body")
    assert textwrap.dedent("") == ""
