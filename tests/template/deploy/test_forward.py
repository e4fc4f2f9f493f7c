"""Deployments only move forward: `mlops deploy stage|propose|canary` refuse an older model version than
the environment holds and an image that is not the champion's, unless forced with a reason that the
commit and the PR carry.

The scenario of the outside review: release run A's deploy job fails, release run B (a newer version)
goes through and deploys, then someone re-runs A's failed deploy job. Without these checks staging and
the production PR went back to A's digest while `champion` stayed on B."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from mlops.cli import main
from mlops.release import delivery
from tests.template.deploy.conftest import ROOT
from tests.template.deploy.test_delivery import (
    IMAGE_A,
    IMAGE_B,
    PRODUCTION,
    REPO,
    STAGING,
    git,
    github,
    open_pulls,
)

assert github  # the fixture, imported for the tests below

IMAGE_C = "ghcr.io/acme/model-repo@sha256:" + "c" * 64


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """deploy/ in a fresh git repository (the working directory), with no registry configured."""
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "deploy")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "deploy: initial")
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def deployed(root, env: str, image: str, version: str, canary: int | None = None) -> None:
    """A committed deployment of `image` to `env` (what a release run leaves on main)."""
    path = delivery.release_file(env)
    text = (root / path).read_text()
    new = delivery.rewrite(text, path, image=delivery.Image.parse(image), version=version, canary=canary)
    (root / path).write_text(new)
    git(root, "commit", "-q", "--allow-empty", "-m", f"deploy: {env} -> model v{version}", "--", path)


def champion_record(root, version: str, image: str | None, champion: bool = True) -> None:
    """model_store/release.json as mlops/release/registry.py writes it after an alias move."""
    (root / "model_store").mkdir(exist_ok=True)
    record = {"registered_model": "m", "version": version, "champion": champion, "event": "promote"}
    (root / "model_store" / "release.json").write_text(
        json.dumps({**record, **({"image": image} if image else {})})
    )


# -- stage: the App's push of staging to main ---------------------------------------------------------------
def test_a_rerun_of_an_older_release_does_not_take_staging_back(checkout, capsys):
    deployed(checkout, "staging", IMAGE_B, "2")  # run B released version 2
    before = (checkout / STAGING).read_text()
    head = git(checkout, "rev-parse", "HEAD")
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "1"]) == 1  # run A's deploy, re-run
    err = capsys.readouterr().err
    assert "refused: staging would move backwards" in err
    assert f"{STAGING} holds model version 2 ({IMAGE_B}); version 1 is older" in err
    assert "--force --reason" in err
    assert (checkout / STAGING).read_text() == before and git(checkout, "rev-parse", "HEAD") == head

    # forced with a reason: it proceeds, and the commit records why
    reason = "version 2 corrupts batch inputs; back to 1 until the fix"
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "1", "--force", "--reason", reason]) == 0
    assert capsys.readouterr().out.splitlines() == [STAGING]
    release = delivery.read((checkout / STAGING).read_text())
    assert (str(release.image), release.version) == (IMAGE_A, "1")
    assert git(checkout, "log", "-1", "--format=%B").endswith(f"Forced: {reason}")
    assert git(checkout, "status", "--porcelain") == ""  # committed: the reason cannot be lost


def test_force_needs_a_reason(checkout, capsys):
    deployed(checkout, "staging", IMAGE_B, "2")
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "1", "--force"]) == 1
    assert "--force needs --reason" in capsys.readouterr().err
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "1", "--force", "--reason", " "]) == 1


def test_forward_moves_and_rebuilds_of_the_same_version_need_nothing(checkout, capsys):
    deployed(checkout, "staging", IMAGE_A, "1")
    assert main(["deploy", "stage", "--image", IMAGE_B, "--version", "2"]) == 0  # newer
    assert (
        main(["deploy", "stage", "--image", IMAGE_C, "--version", "2"]) == 0
    )  # a serve/ change: same version
    out = capsys.readouterr()
    assert out.out.splitlines() == [STAGING, STAGING]
    assert "no champion to compare with" in out.err  # said, not silently skipped
    assert git(checkout, "log", "-1", "--format=%s") == "deploy: staging -> model v1"  # not committed


def test_only_the_champions_image_is_staged(checkout, capsys):
    """Same version, another digest: only the champion says which build is current."""
    deployed(checkout, "staging", IMAGE_A, "1")
    champion_record(checkout, "2", IMAGE_B)
    assert main(["deploy", "stage", "--image", IMAGE_C, "--version", "2"]) == 1
    err = capsys.readouterr().err
    assert f"{delivery.RELEASE_RECORD} (version 2) is the image {IMAGE_B}, not {IMAGE_C}" in err
    assert main(["deploy", "stage", "--image", IMAGE_B, "--version", "3"]) == 1
    assert f"{delivery.RELEASE_RECORD} is version 2, not 3" in capsys.readouterr().err
    assert main(["deploy", "stage", "--image", IMAGE_B, "--version", "2"]) == 0
    assert "no champion to compare with" not in capsys.readouterr().err


def test_a_candidate_record_is_not_a_champion(checkout):
    champion_record(checkout, "3", IMAGE_C, champion=False)  # `mlops promote --candidate`
    assert delivery.champion(checkout) is None


# -- canary ----------------------------------------------------------------------------------------------
def test_canary_raises_traffic_only_to_the_champion(checkout, capsys):
    deployed(checkout, "production", IMAGE_A, "1", canary=10)
    champion_record(checkout, "2", IMAGE_B)  # the registry moved on (or was rolled back) since
    assert main(["deploy", "canary", "--percent", "100"]) == 1
    assert "refused: more traffic to production's" in capsys.readouterr().err
    assert main(["deploy", "canary", "--percent", "0"]) == 0  # the abort is never refused
    assert delivery.read((checkout / PRODUCTION).read_text()).canary == 0
    git(checkout, "commit", "-q", "-am", "deploy: canary 0")
    reason = "version 2 is not ready; finish rolling out 1"
    assert main(["deploy", "canary", "--percent", "100", "--force", "--reason", reason]) == 0
    assert git(checkout, "log", "-1", "--format=%B").endswith(f"Forced: {reason}")
    champion_record(checkout, "1", IMAGE_A)
    assert main(["deploy", "canary", "--percent", "50"]) == 0  # the champion: no question asked


# -- propose: the production PR (and staging's, without an App) ---------------------------------------------
def seed_main(server, staging: tuple[str, str] | None = None) -> None:
    files = {p: (ROOT / p).read_bytes() for p in (STAGING, PRODUCTION)}
    if staging:
        text = files[STAGING].decode()
        files[STAGING] = delivery.rewrite(
            text, STAGING, image=delivery.Image.parse(staging[0]), version=staging[1]
        ).encode()
    server.add_branch(REPO, "main", files)


def test_a_rerun_of_an_older_release_does_not_take_the_production_pr_back(
    github, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # no release record of this checkout
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # run B: version 2 staged on main and proposed for production
    seed_main(github, staging=(IMAGE_B, "2"))
    assert main(["deploy", "propose", "--image", IMAGE_B, "--version", "2"]) == 0
    capsys.readouterr()
    writes = len(github.calls("PUT", rf"/repos/{REPO}/contents/.*"))

    # run A's deploy job, re-run: staging (its PR, no App) and the production PR must not go back
    assert main(["deploy", "propose", "--overlay", "staging", "--image", IMAGE_A, "--version", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{STAGING} on main holds model version 2 ({IMAGE_B}); version 1 is older" in err
    assert main(["deploy", "propose", "--image", IMAGE_A, "--version", "1"]) == 1
    err = capsys.readouterr().err
    assert "refused: production would move backwards" in err
    assert f"the open PR from deploy/production holds model version 2 ({IMAGE_B})" in err
    assert len(github.calls("PUT", rf"/repos/{REPO}/contents/.*")) == writes  # nothing written
    (pull,) = open_pulls(github)
    assert IMAGE_B in pull["body"] and IMAGE_A not in pull["body"]
    release = delivery.read(github.file_at(REPO, "deploy/production", PRODUCTION).decode())
    assert (str(release.image), release.version) == (IMAGE_B, "2")
    assert github.state.refs.get(f"{REPO} refs/heads/deploy/staging") is None

    # forced, with the reason in the PR and in its commit
    reason = "roll production back to 1 while 2 is investigated"
    args = ["deploy", "propose", "--image", IMAGE_A, "--version", "1", "--force", "--reason", reason]
    assert main(args) == 0
    assert "updated PR #1" in capsys.readouterr().out
    (pull,) = open_pulls(github)
    assert IMAGE_A in pull["body"] and f"**Forced** (`--force`): {reason}" in pull["body"]
    tip = github.state.refs[f"{REPO} refs/heads/deploy/production"]
    assert github.state.commits[tip]["message"].endswith(f"Forced: {reason}")
    release = delivery.read(github.file_at(REPO, "deploy/production", PRODUCTION).decode())
    assert (str(release.image), release.version) == (IMAGE_A, "1")


def test_propose_force_without_reason_sends_nothing(github, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    seed_main(github)
    assert main(["deploy", "propose", "--image", IMAGE_A, "--version", "1", "--force"]) == 1
    assert "--force needs --reason" in capsys.readouterr().err
    assert github.state.requests == []


# -- the champion from the registry ----------------------------------------------------------------------
class FakeRegistry(BaseHTTPRequestHandler):
    """MLflow's GET /api/2.0/mlflow/registered-models/alias, as a tracking server answers it."""

    answer: ClassVar[tuple[int, dict]] = (200, {})
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        status, body = type(self).answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry(monkeypatch):
    FakeRegistry.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "deployer")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    yield FakeRegistry
    server.shutdown()
    server.server_close()


def alias_answer(version: str, image: str | None) -> tuple[int, dict]:
    tags = [{"key": "gates", "value": "passed"}] + ([{"key": "image", "value": image}] if image else [])
    return 200, {"model_version": {"name": "m", "version": version, "aliases": ["champion"], "tags": tags}}


def test_the_registrys_champion_decides(checkout, registry, capsys):
    (checkout / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    registry.answer = alias_answer("2", IMAGE_B)
    found = delivery.champion(checkout)
    assert (found.version, found.image) == ("2", delivery.Image.parse(IMAGE_B))
    path, auth = registry.seen[-1]
    assert path.startswith(
        "/api/2.0/mlflow/registered-models/alias?name=breast-cancer-classifier&alias=champion"
    )
    assert auth == "Basic ZGVwbG95ZXI6czNjcmV0"  # deployer:s3cret
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "2"]) == 1
    assert f"(version 2) is the image {IMAGE_B}, not {IMAGE_A}" in capsys.readouterr().err
    assert main(["deploy", "stage", "--image", IMAGE_B, "--version", "2"]) == 0


def test_a_registry_without_a_champion_deploys_nothing(checkout, registry, capsys):
    registry.answer = (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "alias champion not found."})
    assert delivery.champion(checkout).version is None
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "1"]) == 1
    assert "there is none, so nothing was released to deploy" in capsys.readouterr().err
    registry.answer = (403, {"error_code": "PERMISSION_DENIED"})
    assert main(["deploy", "stage", "--image", IMAGE_A, "--version", "1"]) == 1
    assert "cannot read the registry's `champion`" in capsys.readouterr().err  # never "unknown, go ahead"


@pytest.mark.slow  # mlflow's import and sqlite migrations: ~15 s
def test_an_embedded_registry_through_the_mlflow_client(checkout, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{checkout / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("model")
    version = client.create_model_version("model", source=str(checkout), tags={"image": IMAGE_B}).version
    assert delivery.champion(checkout).version is None  # no alias yet
    client.set_registered_model_alias("model", "champion", version)
    found = delivery.champion(checkout)
    assert (found.version, found.image) == (str(version), delivery.Image.parse(IMAGE_B))
