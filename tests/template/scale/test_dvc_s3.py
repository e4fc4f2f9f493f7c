"""A DVC S3 remote on a real S3 HTTP API (moto_server): push, pull into another clone, and the run-cache.

The remote is configured the way a project commits it (`.dvc/config`: url + endpointurl); credentials come
only from the AWS variables, never from the repository. A fresh clone that pulls the run-cache restores the
trained model instead of training again.
"""

from __future__ import annotations

import pytest

from benchmarks import servers
from mlops.release.artifacts import md5
from tests.repo import clone, sh

pytestmark = pytest.mark.slow
BUCKET = "dvc-store"
TRACKED = ["data/breast_cancer.csv", "artifacts/model/model.pt", "artifacts/prepared/train.parquet"]


def test_push_pull_and_run_cache_through_s3(
    trained_repo, dvc_remote, tmp_path, launched, no_client_credentials
):
    moto = servers.start_moto(tmp_path)
    launched.append(moto)
    servers.s3_client(moto).create_bucket(Bucket=BUCKET)
    creds = dict(servers.AWS)  # credentials only: the endpoint is committed in .dvc/config

    origin = clone(trained_repo, tmp_path / "origin", dvc_remote)
    sh(["dvc", "remote", "add", "s3", f"s3://{BUCKET}/project"], origin)
    sh(["dvc", "remote", "modify", "s3", "endpointurl", moto.url], origin)
    sh(["dvc", "config", "core.remote", "s3"], origin)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "DVC remote on S3", ".dvc/config"], origin)
    sh(["dvc", "pull", "--run-cache", "-r", "local"], origin)  # what the first project pushed
    pushed = sh(["dvc", "push", "--run-cache", "-r", "s3"], origin, **creds)
    assert "pushed" in pushed.stdout
    keys = servers.s3_keys(moto, BUCKET, "project/")
    assert any(k.startswith("project/files/md5/") for k in keys), keys
    assert any(k.startswith("project/runs/") for k in keys), keys
    assert "in sync" in sh(["dvc", "status", "-c", "-r", "s3"], origin, **creds).stdout

    # A second clone gets the exact bytes from S3: a plain git clone knows no other remote.
    second = tmp_path / "second"
    sh(["git", "clone", "-q", str(origin), str(second)], tmp_path)
    sh(["dvc", "pull"], second, **creds)
    for rel in TRACKED:
        assert md5(second / rel) == md5(origin / rel), rel

    # A fresh clone whose dvc.lock does not record these results (say a PR that returns to parameters
    # trained before) restores every stage from the run-cache instead of running it.
    fresh = tmp_path / "fresh"
    sh(["git", "clone", "-q", str(origin), str(fresh)], tmp_path)
    sh(["git", "rm", "-q", "dvc.lock"], fresh)
    sh(["dvc", "fetch", "--run-cache"], fresh, **creds)
    repro = sh(["dvc", "repro", "--pull"], fresh, **creds)
    assert "Stage 'train' is cached - skipping run" in repro.stdout, repro.stdout
    assert not (fresh / "mlflow.db").exists(), "training ran (it logs an MLflow run)"
    assert md5(fresh / "artifacts/model/model.pt") == md5(origin / "artifacts/model/model.pt")

    moto.stop()
    assert not servers.listening(moto.port) and not moto.group_alive()
