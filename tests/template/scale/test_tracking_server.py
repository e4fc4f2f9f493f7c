"""The pipeline and promotion against a real MLflow server (PostgreSQL backend, S3 artifacts on moto_server).

The product code is unchanged; the client environment is all that differs from the embedded default:
- proxied (`--artifacts-destination s3://...`): the client sets MLFLOW_TRACKING_URI only and never sees
  S3 credentials; the server streams artifacts to S3.
- direct (`--no-serve-artifacts --default-artifact-root s3://...`): the client also sets the AWS variables
  and MLFLOW_S3_ENDPOINT_URL and writes artifacts to S3 itself.
The report, the second promotion and the rollback touch no artifacts (the report reads meta.json; aliases
are registry rows), so only the proxied case runs them: the suite must stay lean on 2 cores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import servers
from mlops.config.params import load_params
from tests.repo import copy_project, sh

pytestmark = pytest.mark.slow
BUCKET = "mlops-artifacts"


def champion_versions(url: str, name: str) -> dict[str, str]:
    from mlflow import MlflowClient

    aliases = MlflowClient(tracking_uri=url).get_registered_model(name).aliases
    return {alias: str(version) for alias, version in aliases.items()}


def retrain(repo: Path, env: dict[str, str], seed: int) -> None:
    """A reviewed change (another seed): dvc repro re-runs prepare, train and evaluate; commit it."""
    params = repo / "params.yaml"
    text = params.read_text()
    params.write_text(re.sub(r"(?m)^seed: \d+", f"seed: {seed}", text, count=1))
    sh(["dvc", "repro"], repo, **env)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", f"seed {seed}"], repo)


@pytest.mark.parametrize("proxied", [True, False], ids=["proxied-artifacts", "direct-s3"])
def test_pipeline_report_promote_rollback_on_postgres_and_s3(
    proxied, tmp_path, launched, postgres_available, no_client_credentials
):
    postgres = servers.start_postgres()
    launched.append(postgres)
    moto = servers.start_moto(tmp_path)
    launched.append(moto)
    servers.s3_client(moto).create_bucket(Bucket=BUCKET)
    prefix = "proxied" if proxied else "direct"
    backend = servers.create_database(postgres, "mlflow")
    mlflow_server = servers.start_mlflow(tmp_path, backend, moto, f"s3://{BUCKET}/{prefix}", proxied=proxied)
    launched.append(mlflow_server)
    url = mlflow_server.url

    env = {"MLFLOW_TRACKING_URI": url} if proxied else {"MLFLOW_TRACKING_URI": url, **servers.s3_env(moto)}
    repo = copy_project(tmp_path / "repo", tmp_path / "dvc-remote")
    sh(["mlops", "data"], repo, **env)
    sh(["dvc", "repro"], repo, **env)

    # Training logged to the server, its artifacts are in S3, and nothing embedded was created.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    meta = json.loads((repo / "artifacts/train_run.json").read_text())
    assert meta["tracking_uri"] == url
    run = client.get_run(meta["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["seed"] == "42" and "val_loss" in run.data.metrics
    expected_root = "mlflow-artifacts:/" if proxied else f"s3://{BUCKET}/{prefix}/"
    assert run.info.artifact_uri.startswith(expected_root), run.info.artifact_uri
    keys = servers.s3_keys(moto, BUCKET, prefix + "/")
    assert any(meta["run_id"] in k and k.endswith("torchscript/model.pt") for k in keys), keys
    assert not (repo / "mlflow.db").exists() and not (repo / "mlartifacts").exists()

    if proxied:
        report = sh(["mlops", "report", "--base", "main"], repo, **env)
        assert "gates passed" in report.stdout
        assert meta["run_id"] in (repo / "reports/pr/report.md").read_text()

    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "train against the tracking server"], repo)
    name = load_params(repo / "params.yaml").mlflow.registered_model  # derived from `name`
    promoted = sh(["mlops", "promote"], repo, **env)
    assert f"registry: `{url}`" in promoted.stdout
    assert champion_versions(url, name) == {"champion": "1"}
    first = client.get_model_version(name, "1")
    assert first.source.startswith(expected_root), first.source
    assert first.tags["git_sha"] == sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()

    if proxied:
        retrain(repo, env, seed=7)
        sh(["mlops", "promote"], repo, **env)
        assert champion_versions(url, name) == {"champion": "2", "previous-champion": "1"}
        rolled = sh(["mlops", "rollback"], repo, **env)
        assert "champion -> version 1" in rolled.stdout
        assert champion_versions(url, name)["champion"] == "1"

    # The registry lives in PostgreSQL: read the alias straight from the backend store's table.
    import psycopg2

    db = psycopg2.connect(host="127.0.0.1", port=postgres.port, user="mlflow", dbname="mlflow")
    with db, db.cursor() as cur:
        cur.execute("SELECT version FROM registered_model_aliases WHERE name=%s AND alias='champion'", [name])
        assert cur.fetchall() == [(1,)]
    db.close()

    for server in (mlflow_server, moto, postgres):
        server.stop()
        assert not servers.listening(server.port), f"{server.name} still listens on {server.port}"
        assert not server.group_alive(), f"{server.name} left processes behind"
