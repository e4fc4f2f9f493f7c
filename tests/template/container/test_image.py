"""The serving image, built with podman from a debootstrapped base: run, health, predict, stop."""

from __future__ import annotations

import json

import pytest

from tests.repo import clone, sh
from tests.template.container.podman import SCRIPT, keep_layers, podman_env

pytestmark = pytest.mark.slow
IMAGE = "localhost/mlops-serve-test:latest"
MAX_BYTES = 1_500_000_000


@pytest.fixture(scope="module")
def image(trained_repo, dvc_remote, tmp_path_factory):
    env = podman_env()
    repo = clone(trained_repo, tmp_path_factory.mktemp("image") / "repo", dvc_remote)
    sh(["dvc", "pull"], repo)
    sh(["mlops", "promote"], repo, MLFLOW_TRACKING_URI=f"sqlite:///{repo}/mlflow.db")
    sh(["mlops", "archive"], repo)
    version = json.loads((repo / "model_store/release.json").read_text())["version"]
    sha = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    build = sh([str(SCRIPT), "build", IMAGE], repo, MODEL_VERSION=version, GIT_SHA=sha, **env)
    print(build.stdout.splitlines()[-1])
    yield repo, env, version, sha
    keep_layers(IMAGE, env)


def test_image_runs_answers_health_and_predicts(image):
    repo, env, version, _ = image
    proc = sh(
        [
            "python",
            "-m",
            "mlops.release.smoke",
            IMAGE,
            "--engine",
            "podman",
            "--request",
            str(repo / "model_store/request.json"),
            "--expect-version",
            version,
        ],
        repo,
        **env,
    )
    assert "predicted 3 rows with model version " + version in proc.stdout
    assert "stopped" in proc.stdout
    running = sh(["podman", "ps", "--format", "{{.Image}}"], repo, **env).stdout
    assert IMAGE not in running


def test_image_metadata_size_user_and_contents(image):
    repo, env, version, sha = image
    info = json.loads(sh(["podman", "image", "inspect", IMAGE], repo, **env).stdout)[0]
    labels = info["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.version"] == version
    assert info["Config"]["User"] == "1000:1000"
    assert info["Config"].get("Healthcheck") or "HEALTHCHECK" in json.dumps(info)
    print(f"image size: {info['Size'] / 1e6:.0f} MB")
    assert info["Size"] <= MAX_BYTES, f"image is {info['Size'] / 1e9:.2f} GB, target <= 1.5 GB"
    listing = sh(
        ["podman", "run", "--rm", "--entrypoint", "/opt/venv/bin/pip", IMAGE, "list", "--format", "freeze"],
        repo,
        **env,
    ).stdout.lower()
    assert "torchserve==0.12.0" in listing and "torch==2.13.0" in listing
    for heavy in ("mlflow", "dvc", "evidently", "lightning"):
        assert f"\n{heavy}" not in "\n" + listing, f"{heavy} must not be in the serving image"
