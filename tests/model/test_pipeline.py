"""The DVC pipeline end to end on a temporary copy of the project (slow: real training)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from model.dataset import BUNDLED_FILE
from tests.repo import clone, copy_project, sh
from tests.schema import SPEC

pytestmark = pytest.mark.slow

STAGES = ["validate", "prepare", "train", "baselines", "evaluate"]
OUTPUTS = [
    "reports/validation.json",
    "artifacts/prepared/train.parquet",
    "artifacts/prepared/test.parquet",
    "artifacts/prepared/preprocessing.json",
    "artifacts/model/model.pt",
    "eval/metrics.json",
]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture
def pulled(trained_repo, dvc_remote, tmp_path) -> Path:
    """A second clone of the trained project with its outputs pulled from the DVC remote."""
    repo = clone(trained_repo, tmp_path / "clone", dvc_remote)
    sh(["dvc", "pull"], repo)
    return repo


@pytest.mark.skipif(
    SPEC.path != BUNDLED_FILE,
    reason="only the bundled table can be recreated; a forker's comes from a remote",
)
def test_fresh_copy_bootstraps_data_into_an_empty_remote(tmp_path):
    remote = tmp_path / "remote"
    repo = copy_project(tmp_path / "repo", remote)
    assert not (repo / "data").exists()
    out = sh(["mlops", "data"], repo).stdout
    assert "md5 matches data.dvc" in out and "pushed to the DVC remote" in out
    assert sh(["git", "status", "--porcelain", "data.dvc"], repo).stdout == ""  # data.dvc unchanged
    assert sh(["dvc", "status", "-c", "data.dvc"], repo).stdout.strip().startswith("Cache and remote")


def test_a_forkers_table_is_never_replaced_by_the_bundled_one(tmp_path):
    """Without the table in the remote, `mlops data` says where it must come from and writes nothing."""
    repo = copy_project(tmp_path / "repo", tmp_path / "remote")  # an empty remote
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["path"] = "data/own.parquet"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = sh(["mlops", "data"], repo, check=False)
    assert run.returncode == 1 and "data/own.parquet could not be pulled" in run.stderr, run.stderr
    assert "can recreate only the bundled data/breast_cancer.csv" in run.stderr
    assert not (repo / "data").exists()


def test_repro_ran_all_stages_and_a_second_repro_runs_nothing(trained_repo, pulled):
    lock = yaml.safe_load((trained_repo / "dvc.lock").read_text())
    assert sorted(lock["stages"]) == sorted(STAGES)
    second = sh(["dvc", "repro"], pulled).stdout
    assert ran(second) == []
    assert "Data and pipelines are up to date" in second


def test_push_then_pull_into_a_second_clone_restores_identical_outputs(trained_repo, pulled):
    for rel in OUTPUTS:
        assert md5(pulled / rel) == md5(trained_repo / rel), rel


def test_changing_a_training_param_reruns_only_train_and_evaluate(trained_repo, pulled):
    """The baselines depend on the split, not the model: their stage is not rerun."""
    params = yaml.safe_load((pulled / "params.yaml").read_text())
    params["train"]["max_epochs"] = 5
    (pulled / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(["dvc", "repro"], pulled).stdout
    assert ran(out) == ["train", "evaluate"]
    assert md5(pulled / "artifacts/prepared/train.parquet") == md5(
        trained_repo / "artifacts/prepared/train.parquet"
    )


def test_metrics_and_plots_are_written(trained_repo):
    metrics = json.loads((trained_repo / "eval/metrics.json").read_text())
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "ece"} <= set(metrics)
    assert metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.95
    for plot in ("confusion", "roc", "pr", "training"):
        assert (trained_repo / f"eval/plots/{plot}.csv").stat().st_size > 0


def test_mlflow_holds_the_run_with_params_metrics_and_model(trained_repo):
    # the run id lives beside the model, outside the DVC-tracked folder (its bytes must not change per run)
    run_id = json.loads((trained_repo / "artifacts/train_run.json").read_text())["run_id"]
    db = sqlite3.connect(trained_repo / "mlflow.db")
    params = dict(db.execute("select key, value from params where run_uuid=?", (run_id,)))
    assert params["train.optimizer.lr"] == "0.003" and params["seed"] == "42"
    epochs = db.execute(
        "select count(*) from metrics where run_uuid=? and key='val_loss'", (run_id,)
    ).fetchone()
    assert epochs[0] == 40  # one point per epoch
    logged = db.execute("select count(*) from logged_models where source_run_id=?", (run_id,)).fetchone()
    assert logged[0] == 1
    artifacts = trained_repo / "mlartifacts"
    assert any(p.name == "model.pt" for p in artifacts.rglob("model.pt"))
