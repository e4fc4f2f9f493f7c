"""`mlops adopt RUN_ID`: the lock check's one fix, run as a user would, against the GitHub API test server.

The project is tests/model/lock_project.py's: a PR changes `train.lr`; "CI" reproduces and packs its
`dvc-outputs` artifact; the author has meanwhile retrained on another machine (MACHINE=laptop: other
model bytes, so another model md5 in the local dvc.lock). adopt must leave the branch holding exactly
what CI produced, committed and pushed.
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from mlops.config.errors import UserError
from mlops.release import adopt
from tests.model import lock_project as lp
from tests.standins.github_api import FakeGitHub, make_certificate

REPO = "octo/model"


class GitHubWithRuns(FakeGitHub):
    """The test server plus GET /repos/{repo}/actions/runs/{id} (one run), which adopt reads."""

    def handle(self, req):
        found = re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)", req.path)
        if found and req.method == "GET":
            with self.lock:
                self.state.requests.append(req)
                runs = [r for r in self.state.runs if r["repo"] == found[1] and r["id"] == int(found[2])]
            if not runs:
                return 404, {"message": "Not Found"}
            return 200, {k: v for k, v in runs[0].items() if k not in ("artifacts", "artifact_ids", "repo")}
        return super().handle(req)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return lp.make(tmp_path_factory.mktemp("adopt") / "repo")


@pytest.fixture
def api(tmp_path):
    cert, key, bundle = make_certificate(tmp_path / "tls")
    with GitHubWithRuns(cert, key, bundle) as server:
        yield server


@pytest.fixture
def pr(built, tmp_path, monkeypatch):
    """The author's clone on branch `feature` (pushed, tracking origin), with a params change committed."""
    root = tmp_path / "repo"
    shutil.copytree(built, root, symlinks=True)
    origin = tmp_path / "origin.git"
    lp.run(["git", "clone", "-q", "--bare", str(root), str(origin)], tmp_path)
    lp.run(["git", "remote", "add", "origin", str(origin)], root)
    (root / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": 0.2}}))
    lp.commit(root, "lr 0.2")
    lp.run(["git", "push", "-q", "-u", "origin", "feature"], root)
    lp.chdir_env(monkeypatch, root)
    return root


def ci_run(pr: Path, tmp_path: Path) -> tuple[Path, bytes]:
    """What pr.yml does for the PR head: a cold runner reproduces, then packs `dvc-outputs`; zipped."""
    ci = tmp_path / "ci"
    shutil.copytree(pr, ci, symlinks=True)
    lp.cold(ci)
    lp.run([lp.PY, "-m", "dvc", "repro"], ci)  # MACHINE unset: CI's own bytes
    packed = tmp_path / "packed"
    lp.run([lp.PY, "-m", "mlops", "outputs", "pack", "--dir", str(packed)], ci)
    return ci, zipped(packed)


def zipped(folder: Path, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def user_env(api: FakeGitHub) -> dict[str, str]:
    return {"GITHUB_API_URL": api.api_url, "GH_TOKEN": "author-token", "SSL_CERT_FILE": str(api.ca_bundle)}


def test_adopt_after_a_retrain_on_another_machine_commits_and_pushes_what_ci_trained(pr, tmp_path, api):
    ci, data = ci_run(pr, tmp_path)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()  # pack: the branch files ride along
    assert {"branch/dvc.lock", "branch/eval/metrics.json"} <= set(names)
    assert any(n.startswith("files/md5/") for n in names) and any(n.startswith("runs/") for n in names)
    head = lp.run(["git", "rev-parse", "HEAD"], pr).stdout.strip()
    run = api.add_run(REPO, head, {"dvc-outputs": data})
    lp.run([lp.PY, "-m", "dvc", "repro"], pr, MACHINE="laptop")  # "another machine": other model bytes
    assert lp.lock(pr)["train"]["outs"] != lp.lock(ci)["train"]["outs"]

    out = lp.run(["mlops", "adopt", str(run["id"]), "--repo", REPO], pr, **user_env(api)).stdout

    assert (pr / "dvc.lock").read_bytes() == (ci / "dvc.lock").read_bytes()
    assert (pr / "eval/metrics.json").read_bytes() == (ci / "eval/metrics.json").read_bytes()
    assert (pr / "model/weights.bin").read_text().startswith("0.2 ci ")  # CI's model, checked out
    assert f"CI run {run['id']}" in lp.run(["git", "log", "-1", "--format=%B"], pr).stdout
    assert lp.run(["git", "status", "--porcelain", "--untracked-files=no"], pr).stdout == ""
    pushed = lp.run(["git", "rev-parse", "origin/feature"], pr).stdout
    assert pushed == lp.run(["git", "rev-parse", "HEAD"], pr).stdout, out
    assert lp.run([lp.PY, "-m", "dvc", "status", "--quiet"], pr, check=False).returncode == 0
    blob = [r for r in api.state.requests if r.path.startswith("/blobs/")]
    assert blob and "Authorization" not in blob[0].headers  # the token never follows the redirect
    # the same command again: HEAD is now the adopt commit, which that run did not train
    again = lp.run(["mlops", "adopt", str(run["id"]), "--repo", REPO], pr, check=False, **user_env(api))
    assert again.returncode == 1 and "but HEAD here is" in again.stderr


def _refused(pr: Path, api: FakeGitHub, monkeypatch, run_id: int, match: str) -> None:
    lock_before = (pr / "dvc.lock").read_bytes()
    head = lp.run(["git", "rev-parse", "HEAD"], pr).stdout
    for name, value in user_env(api).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=match):
        adopt.adopt(str(run_id), repo=REPO, push=False)
    assert (pr / "dvc.lock").read_bytes() == lock_before
    assert lp.run(["git", "rev-parse", "HEAD"], pr).stdout == head


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", "/etc/evil", "files/md5/../../../evil", "branch/params.yaml", "branch/../dvc.lock"],
)
def test_adopt_refuses_an_artifact_with_a_member_outside_its_layout(pr, tmp_path, api, monkeypatch, member):
    packed = tmp_path / "packed"
    (packed / "branch").mkdir(parents=True)
    (packed / "branch/dvc.lock").write_text("stages: {train: {cmd: x}}\n")
    head = lp.run(["git", "rev-parse", "HEAD"], pr).stdout.strip()
    run = api.add_run(REPO, head, {"dvc-outputs": zipped(packed, {member: b"planted"})})
    _refused(pr, api, monkeypatch, run["id"], "outside its layout")
    assert not (tmp_path / "evil.txt").exists() and not (pr / "params.yaml").read_text().startswith("planted")


def test_adopt_refuses_an_object_that_does_not_hash_to_its_name(pr, tmp_path, api, monkeypatch):
    packed = tmp_path / "packed"
    (packed / "branch").mkdir(parents=True)
    (packed / "branch/dvc.lock").write_text("stages: {train: {cmd: x}}\n")
    head = lp.run(["git", "rev-parse", "HEAD"], pr).stdout.strip()
    forged = {"files/md5/00/" + "1" * 30: b"not these bytes"}
    run = api.add_run(REPO, head, {"dvc-outputs": zipped(packed, forged)})
    _refused(pr, api, monkeypatch, run["id"], "does not hash to its name")
    assert not (pr / ".dvc/cache/files/md5/00").exists()


def test_adopt_refuses_a_run_of_another_commit(pr, tmp_path, api, monkeypatch):
    packed = tmp_path / "packed"
    (packed / "branch").mkdir(parents=True)
    (packed / "branch/dvc.lock").write_text("stages: {train: {cmd: x}}\n")
    run = api.add_run(REPO, "f" * 40, {"dvc-outputs": zipped(packed)})
    _refused(pr, api, monkeypatch, run["id"], r"trained commit ffffffffffff, but HEAD here is .*Check out")


def test_the_repository_comes_from_the_origin_remote(pr):
    for url in (
        "https://github.com/octo/model.git",
        "git@github.com:octo/model.git",
        "ssh://git@h/octo/model",
    ):
        lp.run(["git", "remote", "set-url", "origin", url], pr)
        assert adopt.origin_repo() == REPO
