"""`mlops retrain-pr` against the GitHub API test server, a local bare git remote and a DVC remote."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring import logs
from tests.repo import clone, copy_project, env, sh
from tests.schema import SPEC, raw_table, write_data


@pytest.fixture
def github(github_server):
    return github_server


def api_env(github) -> dict[str, str]:
    """The API server; outside GitHub Actions even when the suite runs in it (a local remote is fine)."""
    return {
        "GITHUB_ACTIONS": "",
        "GITHUB_OUTPUT": "",
        "GITHUB_STEP_SUMMARY": "",
        "GITHUB_REPOSITORY": "acme/model",
        "GH_TOKEN": "t0ken",
        "GITHUB_API_URL": github.api_url,
        "SSL_CERT_FILE": str(github.ca_bundle),
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Built once per module: a folder with repo/ (main holds the project's table, in its DVC remote too,
    and its prepared split), its bare origin.git and its dvc-remote/. Each test gets a copy from `project`."""
    tmp = tmp_path_factory.mktemp("prepared")
    remote, bare = tmp / "dvc-remote", tmp / "origin.git"
    repo = copy_project(tmp / "repo", remote)
    write_data(repo)  # what `mlops data` pulls, for any table (it can recreate only the bundled one)
    sh("dvc commit -q -f data.dvc && dvc push -q data.dvc", repo)
    sh(["dvc", "repro", "prepare"], repo)
    sh("git add -A && git commit -q --allow-empty -m prepared", repo)
    sh(["git", "init", "-q", "--bare", str(bare)], tmp)
    sh(["git", "remote", "add", "origin", str(bare)], repo)
    sh(["git", "push", "-q", "origin", "main"], repo)
    return tmp


def project(tmp: Path, prepared: Path) -> tuple[Path, Path, Path]:
    """(repo, bare origin, DVC remote): this test's own copy of `prepared`, its paths rewired."""
    for name in ("repo", "origin.git", "dvc-remote"):
        shutil.copytree(prepared / name, tmp / name, symlinks=True)
    repo, bare, remote = tmp / "repo", tmp / "origin.git", tmp / "dvc-remote"
    sh(["git", "remote", "set-url", "origin", str(bare)], repo)
    sh(["dvc", "remote", "add", "--local", "-f", "-d", "local", str(remote)], repo)
    return repo, bare, remote


@pytest.fixture(scope="module")
def drifted(prepared, tmp_path_factory) -> Path:
    """`prepared` after drift: 150 shifted rows with their labels (seed 1) in logs/ and feedback/, and
    `mlops drift`'s decision in reports/drift. Built once; the tests that start there copy it."""
    tmp = tmp_path_factory.mktemp("drifted")
    repo, _, _ = project(tmp, prepared)
    cwd = Path.cwd()
    os.chdir(repo)  # the helpers read params.yaml from the cwd
    try:
        production(repo, 150, seed=1, sd=1.0)
    finally:
        os.chdir(cwd)
    assert "decision: drift" in sh(["mlops", "drift"], repo).stdout
    return tmp


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
def test_opens_one_pr_then_updates_it(tmp_path, github, monkeypatch, drifted):
    monkeypatch.chdir(tmp_path)  # the helpers read params.yaml from the cwd
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, bare, remote = project(tmp_path, drifted)  # 150 drifted rows with labels: decision drift
    api = api_env(github)
    main_dvc = (repo / "data.dvc").read_text()

    out = sh(["mlops", "retrain-pr", "--report-link", "https://ci.example/run/1"], repo, **api).stdout
    assert "opened PR #1" in out
    (pull,) = github.state.pulls
    branch = pull["head"]["ref"]
    assert branch == "retrain/main" and pull["base"]["ref"] == "main"
    body = pull["body"]
    assert "### Drift check: **Drift detected**" in body and re.search(r"\| `\w+` \| K-S p_value \| ", body)
    previous = len(raw_table())
    assert f"{previous} previous + **150 new labelled production rows**" in body
    assert "https://ci.example/run/1" in body
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
    assert f"{previous} previous + **200 new labelled production rows**" in github.state.pulls[0]["body"]
    second = sh(["git", "show", f"{branch}:data.dvc"], bare).stdout
    assert data_md5(second) not in (data_md5(first), data_md5(main_dvc)) and in_remote(
        remote, data_md5(second)
    )
    assert sh(["git", "rev-list", "--count", f"main..{branch}"], bare).stdout.strip() == "1"  # force-updated


@pytest.mark.slow
def test_no_new_labels_means_no_pr(tmp_path, github, monkeypatch, prepared):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, bare, _ = project(tmp_path, prepared)
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


def two_clones(tmp_path: Path, repo: Path, bare: Path, remote: Path) -> list[Path]:
    """Two clones of one origin, each with the drift summary and the labels the drift job left in `repo`."""
    sh(["git", "symbolic-ref", "HEAD", "refs/heads/main"], bare)  # clones check out main
    clones = []
    for name in ("runner-a", "runner-b"):
        work = clone(bare, tmp_path / name, remote)
        shutil.copytree(repo / "feedback", work / "feedback")
        (work / "reports/drift").mkdir(parents=True)
        shutil.copy(repo / "reports/drift/summary.json", work / "reports/drift/summary.json")
        clones.append(work)
    return clones


@pytest.mark.slow
def test_two_concurrent_runs_from_two_clones_open_exactly_one_pr_every_round(
    tmp_path, github, monkeypatch, drifted
):
    """Both runs start together; the branch create is the lock: one opens, the other updates. Four
    rounds, two per start order (each round is ~15 s of CPU): a lock that let both runs open a PR in
    half the races fails here with probability 1 - 0.5**4 = 94%, and one that always does, at once."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, bare, remote = project(tmp_path, drifted)
    clones = two_clones(tmp_path, repo, bare, remote)
    for round_ in range(4):
        runs = [
            subprocess.Popen(
                ["mlops", "retrain-pr"],
                cwd=work,
                env=env(**api_env(github)),
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for work in (clones if round_ % 2 else clones[::-1])
        ]
        outs = [run.communicate(timeout=300)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outs
        assert len(github.state.pulls) == 1, f"round {round_}: {len(github.state.pulls)} PRs\n" + "\n".join(
            outs
        )
        assert sorted(re.search(r"(opened|updated) PR #1", out)[1] for out in outs) == [
            "opened",
            "updated",
        ], outs
        # the server decided: each run's commit is unique, so only one create can succeed
        assert sorted(re.search(r"retrain/main on origin (\w+)", out)[1] for out in outs) == [
            "already",
            "created",
        ], outs
        assert sh(["git", "diff", "--name-only", "main", "retrain/main"], bare).stdout.split() == ["data.dvc"]
        # the next round starts from scratch: the PR merged or closed and its branch deleted
        github.state.pulls.clear()
        sh(["git", "update-ref", "-d", "refs/heads/retrain/main"], bare)
    assert len(github.calls("POST", r"/repos/acme/model/pulls")) >= 4


@pytest.mark.slow
def test_label_flips_open_a_performance_pr(tmp_path, github, monkeypatch, prepared):
    """Inputs unchanged, 30% of the labels flipped: the performance rule alone proposes retraining."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, _, _ = project(tmp_path, prepared)
    production(repo, 200, seed=4, sd=0.0)
    (labels,) = (repo / "feedback").iterdir()
    records = [json.loads(line) for line in labels.read_text().splitlines()]
    for record in records[::3]:  # a third of the labels: the world changed what the inputs mean
        record["label"] = logs.other_class(record["label"])
    labels.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = sh(["mlops", "drift"], repo).stdout
    assert "decision: performance" in out
    out = sh(["mlops", "retrain-pr"], repo, **api_env(github)).stdout
    assert "opened PR #1" in out
    (pull,) = github.state.pulls
    assert pull["title"].startswith("Retrain: performance regression, +200 labelled production rows")
    assert "### Drift check: **Performance regressed**" in pull["body"]
    assert "| accuracy |" in pull["body"]


@pytest.mark.slow
def test_a_second_run_in_one_checkout_updates_and_merged_data_opens_nothing(
    tmp_path, github, monkeypatch, drifted
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, _, _ = project(tmp_path, drifted)
    assert "opened PR #1" in sh(["mlops", "retrain-pr"], repo, **api_env(github)).stdout
    out = sh(["mlops", "retrain-pr"], repo, **api_env(github)).stdout
    assert "already held this snapshot" in out and "updated PR #1" in out
    assert len(github.state.pulls) == 1

    # main now holds the snapshot (the PR merged): the same labels again would be an empty diff
    sh(["git", "merge", "-q", "--ff-only", "retrain/main"], repo)
    sh(["git", "push", "-q", "origin", "main"], repo)
    github.state.pulls.clear()
    out = sh(["mlops", "retrain-pr"], repo, **api_env(github)).stdout
    assert "no new labelled records" in out and github.state.pulls == []


@pytest.mark.slow
def test_a_run_from_another_branch_proposes_against_the_base(tmp_path, github, monkeypatch, drifted):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, bare, _ = project(tmp_path, drifted)
    sh("git switch -q -c feature && echo note > NOTE.md && git add NOTE.md && git commit -q -m note", repo)
    assert "opened PR #1" in sh(["mlops", "retrain-pr"], repo, **api_env(github)).stdout
    assert (
        sh(["git", "rev-parse", "retrain/main^"], bare).stdout
        == sh(["git", "rev-parse", "main"], bare).stdout
    )
    assert sh(["git", "diff", "--name-only", "main", "retrain/main"], bare).stdout.split() == ["data.dvc"]

    sh("git switch -q -c other-data && echo '# edited' >> data.dvc && git commit -q -am data", repo)
    failed = sh(["mlops", "retrain-pr"], repo, check=False, **api_env(github))
    assert failed.returncode == 1 and "differs from origin/main's: run retrain-pr on main" in failed.stderr


@pytest.mark.slow
def test_no_push_on_a_feature_branch_builds_on_a_freshly_fetched_origin_base(tmp_path, monkeypatch, drifted):
    """The demo's `--no-push` on a feature branch, while origin/main moved on since the last fetch."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, bare, remote = project(tmp_path, drifted)
    sh(["git", "symbolic-ref", "HEAD", "refs/heads/main"], bare)  # clones check out main
    other = clone(bare, tmp_path / "colleague", remote)  # origin's main gains a commit this clone never saw
    sh("echo docs > DOCS.md && git add DOCS.md && git commit -q -m docs", other)
    sh(["git", "push", "-q", "origin", "main"], other)
    fresh = sh(["git", "rev-parse", "main"], bare).stdout.strip()
    sh("git switch -q -c feature && echo note > NOTE.md && git add NOTE.md && git commit -q -m note", repo)
    feature = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    stale = sh(["git", "rev-parse", "origin/main"], repo).stdout.strip()
    assert len({fresh, feature, stale}) == 3

    out = sh(["mlops", "retrain-pr", "--no-push"], repo).stdout
    assert "branch retrain/main is local only" in out
    assert sh(["git", "rev-parse", "retrain/main^"], repo).stdout.strip() == fresh
    assert sh(["git", "diff", "--name-only", fresh, "retrain/main"], repo).stdout.split() == ["data.dvc"]
    assert sh(["git", "rev-parse", "HEAD"], repo).stdout.strip() == feature  # checkout untouched
    assert sh(["git", "branch", "--list", "retrain/*"], bare).stdout == ""  # nothing pushed


@pytest.mark.slow
def test_in_github_actions_a_local_remote_is_refused_and_the_snapshot_kept(
    tmp_path, github, monkeypatch, drifted
):
    """A fork without DVC_REMOTE_URL: the default remote is a folder on the runner. Nothing is pushed
    there, no branch, no PR, a non-zero exit naming DVC_REMOTE_URL; the snapshot is kept, and the
    README's commands bring it back in another clone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    repo, bare, remote = project(tmp_path, drifted)
    page, outputs = tmp_path / "step-summary.md", tmp_path / "github-output"
    runner = {
        **api_env(github),
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_STEP_SUMMARY": str(page),
        "GITHUB_OUTPUT": str(outputs),
    }
    before = sorted(p.relative_to(remote) for p in remote.rglob("*"))
    failed = sh(["mlops", "retrain-pr"], repo, check=False, **runner)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert (
        f"the DVC remote 'local' is a local directory ({remote}) and DVC_REMOTE_URL is not set"
        in failed.stderr
    )
    assert "gh variable set DVC_REMOTE_URL --body s3://bucket/dvc" in failed.stderr
    assert "::error title=No persistent DVC remote::" in failed.stdout
    assert sorted(p.relative_to(remote) for p in remote.rglob("*")) == before  # nothing pushed there
    assert github.state.pulls == [] and sh(["git", "branch", "--list", "retrain/*"], bare).stdout == ""
    summary = page.read_text()
    assert "kept as the artifact `retrain-snapshot`" in summary and "gh run download 4242" in summary
    kept = repo / "reports/drift/retrain-snapshot"
    assert f"kept={Path('reports/drift/retrain-snapshot')}" in outputs.read_text()
    snapshot = (kept / "data.dvc").read_text()
    md5 = data_md5(snapshot)
    assert (
        md5 != data_md5((repo / "data.dvc").read_text()) and (kept / "files/md5" / md5[:2] / md5[2:]).exists()
    )
    assert (kept / "README.md").read_text().strip() == summary.strip()

    # the README's commands (all but the download), in a fresh clone whose persistent remote is `store`
    store = tmp_path / "store"
    sh(["git", "symbolic-ref", "HEAD", "refs/heads/main"], bare)  # clones check out main
    work = clone(bare, tmp_path / "maintainer", store)
    shutil.copytree(kept, work / "retrain-snapshot")
    readme = (kept / "README.md").read_text()
    commands = readme.split("```bash\n")[1].split("```")[0].splitlines()
    assert commands[0] == "gh run download 4242 -n retrain-snapshot -D retrain-snapshot"
    for command in commands[1:]:
        sh(command, work)
    assert in_remote(store, md5)
    from model.dataset import read_table

    assert len(read_table(work / SPEC.path)) == len(raw_table()) + 150
    assert data_md5(sh(["git", "show", "retrain/main:data.dvc"], bare).stdout) == md5


def test_which_remotes_would_lose_the_snapshot(tmp_path, monkeypatch):
    """Inside GitHub Actions a local folder (or no remote) is refused unless DVC_REMOTE_URL chose it."""
    from monitoring.remote import throwaway_remote

    monkeypatch.chdir(tmp_path)
    sh("git init -q && dvc init -q", tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("DVC_REMOTE_URL", raising=False)
    assert throwaway_remote() == "no DVC remote is configured and DVC_REMOTE_URL is not set"
    sh("dvc remote add -q -d local ../../dvc-storage", tmp_path)  # the template's default
    assert "the DVC remote 'local' is a local directory (" in throwaway_remote()
    sh("dvc remote add -q -f -d local file:///srv/dvc", tmp_path)
    assert "is a local directory (file:///srv/dvc)" in throwaway_remote()
    monkeypatch.setenv("DVC_REMOTE_URL", "/mnt/persistent/dvc")  # chosen: a self-hosted runner's mount
    assert throwaway_remote() is None
    monkeypatch.delenv("DVC_REMOTE_URL")
    sh("dvc remote add -q -f -d local s3://bucket/dvc", tmp_path)
    assert throwaway_remote() is None
    sh("dvc remote add -q -f -d local ../../dvc-storage", tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "false")  # a laptop: its folders persist
    assert throwaway_remote() is None


def test_a_run_without_drift_restates_the_open_pr(tmp_path, github, monkeypatch, capsys):
    """Drift subsided: the open PR no longer says only "Drift detected"; its body starts with the
    latest state, replaced (not stacked) on every run."""
    from mlops.cli import main
    from mlops.github.client import GitHub
    from monitoring.retrain_pr import STATUS

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    for key, value in api_env(github).items():
        monkeypatch.setenv(key, value)
    GitHub.from_env().open_or_update(
        "retrain/main", "main", "Retrain: data drift", "### Drift check: **Drift detected**", True, 0
    )
    summary = Path("reports/drift/summary.json")
    summary.parent.mkdir(parents=True)
    for day in ("2026-01-02", "2026-01-03"):
        window = {"length": "7d", "since": f"{day}T00:00:00", "until": f"{day}T12:00:00"}
        summary.write_text(json.dumps({"decision": "no_drift", "window": window, "rows": {"current": 300}}))
        assert main(["retrain-pr"]) == 0
    body = github.state.pulls[0]["body"]
    assert body.startswith(STATUS) and body.count("Latest drift check: no_drift") == 1
    assert "2026-01-03T12:00:00; 300 production rows" in body and "2026-01-02T12" not in body
    assert body.endswith("### Drift check: **Drift detected**")  # the original evidence stays below
    assert "updated PR #1 with the latest state (no_drift)" in capsys.readouterr().out
