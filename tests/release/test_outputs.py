"""A PR run's outputs reach the trusted DVC remote only through `mlops outputs`: packed by the PR job,
fetched for the merged commit, admitted object by object against the merged dvc.lock, sealed (run-cache
written by the trusted job) and pushed. The PR author's fix (`mlops adopt`) takes the same artifact."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from mlops.config.errors import UserError
from mlops.release import outputs
from tests.repo import clone, sh
from tests.standins.github_api import FakeGitHub, make_certificate

# -- admit, on a synthetic cache (no DVC needed) ---------------------------------------------------------


def put(root: Path, data: bytes, suffix: str = "") -> str:
    """Store `data` as DVC does: files/md5/<2>/<30>, a .dir file list with the suffix in its name."""
    digest = hashlib.md5(data).hexdigest() + suffix
    target = root / "files/md5" / digest[:2] / digest[2:]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return digest


def synthetic(tmp_path: Path) -> tuple[Path, Path]:
    """A quarantine holding a .dir output (manifest + 2 files), a file output, a stray object and a run."""
    quarantine = tmp_path / "artifact"
    entries = [{"md5": put(quarantine, b"weights"), "relpath": "model.pt"}]
    entries.append({"md5": put(quarantine, b"{}"), "relpath": "meta.json"})
    listing = put(quarantine, json.dumps(entries).encode(), ".dir")
    report = put(quarantine, b'{"ok": true}')
    put(quarantine, b"not named by dvc.lock")
    (quarantine / "runs/ab/abcd").mkdir(parents=True)
    (quarantine / "runs/ab/abcd/value").write_text("planted run-cache entry")
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "train": {"cmd": "x", "outs": [{"path": "artifacts/model", "md5": listing}]},
                    "validate": {"cmd": "y", "outs": [{"path": "reports/v.json", "md5": report}]},
                    "evaluate": {
                        "cmd": "z",
                        "outs": [{"path": "eval/m.json", "md5": "0" * 32, "cache": False}],
                    },
                },
            }
        )
    )
    return quarantine, lock


def test_admit_takes_only_verified_objects_the_merged_lock_names(tmp_path):
    quarantine, lock = synthetic(tmp_path)
    cache = tmp_path / "cache"
    result = outputs.admit(quarantine, lock=lock, cache=cache)
    assert sorted(result.admitted) == [
        "artifacts/model",
        "artifacts/model/meta.json",
        "artifacts/model/model.pt",
        "reports/v.json",
    ]
    assert result.ignored == 2  # the stray object and the run-cache entry
    assert not (cache / "runs").exists()  # PR code never writes the run-cache the release pushes
    stored = sorted(p.read_bytes() for p in (cache / "files/md5").rglob("*") if p.is_file())
    assert b"not named by dvc.lock" not in stored and b"weights" in stored


def test_admit_refuses_a_tampered_object_and_admits_nothing_of_it(tmp_path):
    quarantine, lock = synthetic(tmp_path)
    weights = hashlib.md5(b"weights").hexdigest()
    (quarantine / "files/md5" / weights[:2] / weights[2:]).write_bytes(b"planted")
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=r"artifacts/model/model.pt: the artifact's object hashes to"):
        outputs.admit(quarantine, lock=lock, cache=cache)
    assert not (cache / "files/md5" / weights[:2] / weights[2:]).exists()


def test_admit_refuses_a_tampered_dir_manifest(tmp_path):
    quarantine, lock = synthetic(tmp_path)
    listing = yaml.safe_load(lock.read_text())["stages"]["train"]["outs"][0]["md5"]
    cache = tmp_path / "cache"
    manifest = cache / "files/md5" / listing[:2] / listing[2:]  # already in the cache, e.g. from the remote
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps([{"md5": put(cache, b"planted"), "relpath": "model.pt"}]))
    with pytest.raises(UserError, match=r"is not the one dvc\.lock names"):
        outputs.admit(quarantine, lock=lock, cache=cache)


# -- fetch, against the GitHub REST API test server ------------------------------------------------------


def list_pulls_for(api, sha: str) -> None:
    """GitHub lists a commit's PRs (GET /commits/SHA/pulls): answer with every PR of the test server."""
    original = api.handle
    api.handle = lambda req: (
        (200, api.state.pulls) if req.path == f"/repos/acme/model/commits/{sha}/pulls" else original(req)
    )


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())
    return buffer.getvalue()


@pytest.fixture
def api(tmp_path, monkeypatch):
    cert, key, bundle = make_certificate(tmp_path / "tls")
    with FakeGitHub(cert, key, bundle) as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        monkeypatch.setenv("GITHUB_API_URL", server.api_url)
        monkeypatch.setenv("GITHUB_REPOSITORY", "acme/model")
        monkeypatch.setenv("GITHUB_TOKEN", "test-token")
        yield server


def test_fetch_finds_the_pr_run_of_the_merged_commit_and_unpacks_its_artifact(tmp_path, api):
    quarantine, _ = synthetic(tmp_path)
    merged, head = "c" * 40, "d" * 40
    api.add_pull("acme/model", "feature", head_sha=head)
    api.state.pulls[-1]["merge_commit_sha"] = merged
    api.add_run(
        "acme/model", head, {"model-report": b"", "dvc-outputs": zipped(quarantine)}, conclusion="failure"
    )
    run = api.add_run("acme/model", head, {"dvc-outputs": zipped(quarantine)})
    api.add_run("acme/model", head, {"dvc-outputs": b"x"}, path=".github/workflows/other.yml")
    # the merged commit's pulls: GitHub lists the PR for its merge commit
    api.state.pulls[-1]["head"]["sha"] = head
    dest = tmp_path / "fetched"
    list_pulls_for(api, merged)
    assert outputs.fetch(dest, sha=merged) == run["html_url"]  # the newest run with the artifact
    assert sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file()) == sorted(
        p.relative_to(quarantine) for p in quarantine.rglob("*") if p.is_file()
    )
    blob = [r for r in api.state.requests if r.path.startswith("/blobs/")]
    assert blob and "Authorization" not in blob[0].headers  # the token never follows the redirect


def test_fetch_takes_the_artifact_of_a_run_that_failed_after_training(tmp_path, api, capsys):
    """The train job uploaded dvc-outputs, then the non-required comment job failed: the run's conclusion
    is failure, and the artifact is still what was trained (admit checks it against the merged lock)."""
    quarantine, _ = synthetic(tmp_path)
    head = "e" * 40
    api.add_pull("acme/model", "feature", head_sha=head)
    failed = api.add_run("acme/model", head, {"dvc-outputs": zipped(quarantine)}, conclusion="failure")
    api.add_run("acme/model", head, {"model-report": b""})  # a later re-run without the artifact
    list_pulls_for(api, head)
    dest = tmp_path / "fetched"
    assert outputs.fetch(dest, sha=head) == failed["html_url"]
    assert any(p.is_file() for p in dest.rglob("*"))
    query = next(r.query for r in api.state.requests if r.path == "/repos/acme/model/actions/runs")
    assert query.get("status") == "completed"  # not "success": the conclusion is not the check


def test_fetch_without_a_pr_fetches_nothing(tmp_path, api, capsys):
    assert outputs.fetch(tmp_path / "fetched", sha="e" * 40) is None
    assert "belongs to no pull request" in capsys.readouterr().out


def test_unzip_refuses_members_outside_the_destination(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape", b"x")
    with pytest.raises(UserError, match="points outside"):
        outputs._unzip(buffer.getvalue(), tmp_path / "dest")
    assert not (tmp_path / "escape").exists()


# -- the whole path with real DVC ------------------------------------------------------------------------


@pytest.mark.slow
def test_pr_outputs_reach_the_remote_only_through_the_trusted_job(trained_repo, dvc_remote, tmp_path):
    """PR job (no write access): retrain, pack. Author: restore from the artifact, no retraining. Trusted
    job: admit against the merged lock, pull the rest, seal, push. Another clone with the same change then
    restores from the remote's run-cache."""
    pr = clone(trained_repo, tmp_path / "pr", dvc_remote)
    params = pr / "params.yaml"
    params.write_text(params.read_text().replace("max_epochs: 40", "max_epochs: 3", 1))
    sh(["git", "commit", "-q", "-am", "3 epochs"], pr)
    sh(["dvc", "pull"], pr)
    assert "Running stage 'train'" in sh(["dvc", "repro"], pr).stdout
    artifact = tmp_path / "artifact"
    sh(["mlops", "outputs", "pack", "--dir", str(artifact)], pr)
    assert (artifact / "branch/dvc.lock").read_bytes() == (pr / "dvc.lock").read_bytes()
    assert (artifact / "branch/eval/metrics.json").read_bytes() == (pr / "eval/metrics.json").read_bytes()
    remote_before = sorted(p.relative_to(dvc_remote) for p in dvc_remote.rglob("*") if p.is_file())

    # the artifact's objects and run-cache in another clone's .dvc/cache (as `mlops adopt` puts them,
    # tests/release/test_adopt.py): repro restores, no retraining
    author = clone(trained_repo, tmp_path / "author", dvc_remote)
    (author / "params.yaml").write_text(params.read_text())
    for part in ("files", "runs"):
        shutil.copytree(artifact / part, author / ".dvc/cache" / part, dirs_exist_ok=True)
    out = sh(["dvc", "repro", "--pull"], author).stdout
    assert "Stage 'train' is cached - skipping run" in out and "Running stage 'train'" not in out, out
    assert (author / "dvc.lock").read_text() == (pr / "dvc.lock").read_text()
    sh(["git", "commit", "-q", "-am", "dvc.lock of the run"], author)
    assert sorted(p.relative_to(dvc_remote) for p in dvc_remote.rglob("*") if p.is_file()) == remote_before

    # the trusted job on main, after the merge: nothing in its cache, the artifact in a quarantine
    main = clone(author, tmp_path / "main", dvc_remote)
    admitted = sh(["mlops", "outputs", "admit", "--dir", str(artifact)], main).stdout
    assert "admitted" in admitted and "ignored" in admitted
    assert not (main / ".dvc/cache/runs").exists()
    sh(["dvc", "pull"], main)
    sh(["dvc", "status", "--quiet"], main)
    sh(["mlops", "outputs", "seal"], main)
    sh(["dvc", "push", "--run-cache"], main)

    # another branch with the same change and no lock: the run-cache that seal pushed restores it
    fresh = clone(pr, tmp_path / "fresh", dvc_remote)
    sh(["dvc", "pull", "--run-cache"], fresh)
    out = sh(["dvc", "repro", "--pull"], fresh).stdout
    assert "Stage 'train' is cached - skipping run" in out and "Running stage 'train'" not in out, out


def test_receive_walks_back_to_a_superseded_merge(tmp_path, api, monkeypatch):
    """GitHub cancelled the pending run of merge A when merge B (docs only) arrived: B's release must find
    the outputs in A's PR run."""
    artifact, lock = synthetic(tmp_path / "made")
    work = tmp_path / "main"
    work.mkdir()
    (work / "dvc.lock").write_text(lock.read_text())
    monkeypatch.chdir(work)
    sh(["git", "init", "-q", "-b", "main"], work)
    sh(["git", "add", "dvc.lock"], work)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "merge A: new model"], work)
    merge_a = sh(["git", "rev-parse", "HEAD"], work).stdout.strip()
    sh(["git", "commit", "-q", "--allow-empty", "-m", "merge B: docs"], work)
    api.add_pull("acme/model", "new-model", head_sha="a" * 40)
    api.add_run("acme/model", "a" * 40, {"dvc-outputs": zipped(artifact)})
    original = api.handle

    def pulls_of(req):  # only merge A came from a PR with outputs; B's PR ran nothing worth taking
        if req.path == f"/repos/acme/model/commits/{merge_a}/pulls":
            return 200, [p for p in api.state.pulls if p["head"]["ref"] == "new-model"]
        if req.path.endswith("/pulls") and "/commits/" in req.path:
            return 200, []
        return original(req)

    api.handle = pulls_of
    result = outputs.receive(
        tmp_path / "quarantine", depth=5, lock=work / "dvc.lock", cache=work / ".dvc/cache"
    )
    assert not result.absent and len(result.admitted) == 4, result


def test_receive_skips_a_poisoned_newest_run_and_admits_an_older_good_one(tmp_path, api, monkeypatch, capsys):
    """Another PR with the same head (or a planted upload) left the newest run's artifact with bytes the
    merged dvc.lock does not name: it is skipped, named and alerted on; the older good run is admitted."""
    artifact, lock = synthetic(tmp_path / "made")
    poisoned = tmp_path / "poisoned"
    shutil.copytree(artifact, poisoned)
    weights = hashlib.md5(b"weights").hexdigest()
    (poisoned / "files/md5" / weights[:2] / weights[2:]).write_bytes(b"planted weights")
    work = tmp_path / "main"
    work.mkdir()
    (work / "dvc.lock").write_text(lock.read_text())
    monkeypatch.chdir(work)
    sh(["git", "init", "-q", "-b", "main"], work)
    sh(["git", "add", "dvc.lock"], work)
    sh(["git", "commit", "-q", "-m", "merge: new model"], work)
    merged = sh(["git", "rev-parse", "HEAD"], work).stdout.strip()
    head = "a" * 40
    api.add_pull("acme/model", "new-model", head_sha=head)
    good = api.add_run("acme/model", head, {"dvc-outputs": zipped(artifact)})
    bad = api.add_run("acme/model", head, {"dvc-outputs": zipped(poisoned)})  # newer: tried first
    list_pulls_for(api, merged)
    alerts = []
    monkeypatch.setattr("mlops.release.alerts.notify", lambda title, body, level: alerts.append(body) or True)
    result = outputs.receive(
        tmp_path / "quarantine", depth=1, lock=work / "dvc.lock", cache=work / ".dvc/cache"
    )
    # the poisoned run's verified objects stay (they are the named bytes); its planted one never does
    assert not result.absent and result.admitted == ["artifacts/model/model.pt"], result
    assert len(result.skipped) == 1 and f"run {bad['id']}" in result.skipped[0]
    assert "artifacts/model/model.pt" in result.skipped[0]
    stored = work / ".dvc/cache/files/md5" / weights[:2] / weights[2:]
    assert stored.read_bytes() == b"weights"
    assert len(alerts) == 1 and f"run {bad['id']}" in alerts[0] and f"run {good['id']}" not in alerts[0]
    assert f"skipped run {bad['id']}" in capsys.readouterr().out


def test_receive_refuses_when_every_run_is_poisoned(tmp_path, api, monkeypatch):
    artifact, lock = synthetic(tmp_path / "made")
    weights = hashlib.md5(b"weights").hexdigest()
    (artifact / "files/md5" / weights[:2] / weights[2:]).write_bytes(b"planted weights")
    work = tmp_path / "main"
    work.mkdir()
    (work / "dvc.lock").write_text(lock.read_text())
    monkeypatch.chdir(work)
    sh(["git", "init", "-q", "-b", "main"], work)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "merge"], work)
    merged = sh(["git", "rev-parse", "HEAD"], work).stdout.strip()
    api.add_pull("acme/model", "new-model", head_sha="b" * 40)
    bad = api.add_run("acme/model", "b" * 40, {"dvc-outputs": zipped(artifact)})
    list_pulls_for(api, merged)
    monkeypatch.setattr("mlops.release.alerts.notify", lambda *a: True)
    with pytest.raises(UserError, match=rf"no good dvc-outputs artifact.*\n  run {bad['id']}"):
        outputs.receive(tmp_path / "q", depth=1, lock=work / "dvc.lock", cache=work / ".dvc/cache")
