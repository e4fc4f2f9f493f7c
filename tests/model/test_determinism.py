"""Retraining gives the same dvc.lock: nothing that differs between runs sits inside DVC-tracked outputs
(slow: real training, twice)."""

from __future__ import annotations

import json
import zipfile

import pytest
import yaml

from tests.repo import clone, sh

pytestmark = pytest.mark.slow


def test_retraining_on_the_same_machine_gives_the_same_lock(trained_repo, dvc_remote, tmp_path):
    """The trained repo retrained once; a clone at another path retrains everything again (`dvc repro -f`),
    then trains and evaluates again in that checkout: the same seed gives the same lock and metrics."""
    repo = clone(trained_repo, tmp_path / "again", dvc_remote)
    sh(["dvc", "pull"], repo)
    out = sh(["dvc", "repro", "-f"], repo).stdout
    assert "Running stage 'train'" in out
    assert (repo / "dvc.lock").read_text() == (trained_repo / "dvc.lock").read_text()
    assert sh(["git", "status", "--porcelain"], repo).stdout == ""  # the run record is git-ignored
    # once more in the same checkout, over what the first run left (checkpoints, mlflow.db): same metrics
    sh(["mlops", "train"], repo)
    sh(["mlops", "evaluate"], repo)
    assert (repo / "eval/metrics.json").read_text() == (trained_repo / "eval/metrics.json").read_text()

    # the run id is kept outside the model folder, tied to the bytes it trained
    meta = json.loads((repo / "artifacts/model/meta.json").read_text())
    assert "mlflow" not in meta
    run = json.loads((repo / "artifacts/train_run.json").read_text())
    assert run["run_id"] and run["model_md5"]
    # no absolute path (checkout, venv) in the TorchScript archive: its debug records are dropped
    with zipfile.ZipFile(repo / "artifacts/model/model.pt") as archive:
        assert not [n for n in archive.namelist() if n.endswith(".debug_pkl")]
        blob = b"".join(archive.read(n) for n in archive.namelist())
    assert str(tmp_path).encode() not in blob and b"site-packages" not in blob
    outs = [
        o["path"]
        for s in yaml.safe_load((repo / "dvc.lock").read_text())["stages"].values()
        for o in s["outs"]
    ]
    assert not any("artifacts/train_run.json".startswith(p) for p in outs)


def test_the_model_still_loads_and_predicts_without_debug_records(trained_repo):
    import torch

    model = torch.jit.load(str(trained_repo / "artifacts/model/model.pt"))
    features = len(json.loads((trained_repo / "artifacts/model/meta.json").read_text())["features"])
    assert model(torch.zeros(2, features)).shape[0] == 2
