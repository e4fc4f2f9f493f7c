"""`mlops retrain-pr` against the GitHub API test server, a local bare git remote and a DVC remote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.github.server import FakeGitHub, make_certificate
from tests.monitoring import logs
from tests.repo import copy_project, sh


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def github(tls):
    with FakeGitHub(*tls) as server:
        yield server


def project(tmp: Path) -> tuple[Path, Path, Path]:
    """(repo, bare origin, DVC remote): main holds the bundled data and its prepared split."""
    remote, bare = tmp / "dvc-remote", tmp / "origin.git"
    repo = copy_project(tmp / "repo", remote)
    sh(["mlops", "data"], repo)
    sh(["dvc", "repro", "prepare"], repo)
    sh("git add -A && git commit -q --allow-empty -m prepared", repo)
    sh(["git", "init", "-q", "--bare", str(bare)], tmp)
    sh(["git", "remote", "add", "origin", str(bare)], repo)
    sh(["git", "push", "-q", "origin", "main"], repo)
    return repo, bare, remote


def data_md5(text: str) -> str:
    return yaml.safe_load(text)["outs"][0]["md5"]


def in_remote(remote: Path, md5: str) -> bool:
    return (remote / "files" / "md5" / md5[:2] / md5[2:]).exists()


def production(repo: Path, rows: int, seed: int, sd: float) -> None:
    """Traffic and labels where params.yaml looks: logs/inference and feedback."""
    logs.production(
        repo / "artifacts/prepared",
        repo / "logs/inference" / f"log-{seed}.jsonl",
        repo / "feedback" / f"labels-{seed}.jsonl",
        rows,
        seed,
        sd,
    )


@pytest.mark.slow
def test_opens_one_pr_then_updates_it(tmp_path, github, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the helpers read params.yaml from the cwd
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, bare, remote = project(tmp_path)
    api = {
        "GITHUB_REPOSITORY": "acme/model",
        "GH_TOKEN": "t0ken",
        "GITHUB_API_URL": github.api_url,
        "SSL_CERT_FILE": str(github.ca_bundle),
    }
    main_dvc = (repo / "data.dvc").read_text()

    production(repo, 150, seed=1, sd=1.0)
    assert "decision: drift" in sh(["mlops", "drift"], repo).stdout
    out = sh(["mlops", "retrain-pr", "--report-link", "https://ci.example/run/1"], repo, **api).stdout
    assert "opened PR #1" in out
    (pull,) = github.state.pulls
    branch = pull["head"]["ref"]
    assert branch.startswith("retrain/drift-") and pull["base"]["ref"] == "main"
    body = pull["body"]
    assert "### Drift check: **Drift detected**" in body and re.search(r"\| `\w+` \| K-S p_value \| ", body)
    assert (
        "569 previous + **150 new labelled production rows**" in body and "https://ci.example/run/1" in body
    )
    assert sh(["git", "diff", "--name-only", "main", branch], bare).stdout.split() == ["data.dvc"]
    first = sh(["git", "show", f"{branch}:data.dvc"], bare).stdout
    assert data_md5(first) != data_md5(main_dvc) and in_remote(remote, data_md5(first))
    # the checkout is as it was: main's data.dvc and main's data
    assert (repo / "data.dvc").read_text() == main_dvc
    assert sh(["git", "status", "--porcelain", "--", "data.dvc", "data"], repo).stdout == ""
    assert "up to date" in sh(["dvc", "status", "data.dvc"], repo).stdout

    production(repo, 50, seed=2, sd=1.0)  # more labels arrived; the job runs again
    sh(["mlops", "drift"], repo)
    out = sh(["mlops", "retrain-pr"], repo, **api).stdout
    assert "updated PR #1" in out
    assert len(github.state.pulls) == 1 and len(github.calls("POST", r"/repos/acme/model/pulls")) == 1
    assert len(github.calls("PATCH", r"/repos/acme/model/pulls/1")) == 1
    assert "569 previous + **200 new labelled production rows**" in github.state.pulls[0]["body"]
    second = sh(["git", "show", f"{branch}:data.dvc"], bare).stdout
    assert data_md5(second) not in (data_md5(first), data_md5(main_dvc)) and in_remote(
        remote, data_md5(second)
    )
    assert sh(["git", "rev-list", "--count", f"main..{branch}"], bare).stdout.strip() == "1"  # force-updated


@pytest.mark.slow
def test_no_new_labels_means_no_pr(tmp_path, github, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, bare, _ = project(tmp_path)
    production(repo, 150, seed=1, sd=1.0)
    for path in (repo / "feedback").iterdir():
        path.unlink()
    sh(["mlops", "drift"], repo)
    out = sh(
        ["mlops", "retrain-pr"],
        repo,
        GITHUB_REPOSITORY="acme/model",
        GH_TOKEN="t",
        GITHUB_API_URL=github.api_url,
        SSL_CERT_FILE=str(github.ca_bundle),
    ).stdout
    assert "nothing to retrain on yet, no PR" in out
    assert github.state.pulls == [] and sh(["git", "branch", "--list", "retrain/*"], bare).stdout == ""
