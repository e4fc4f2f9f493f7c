"""The seed models come from the train stage (artifacts/seeds), and `evaluate` only scores them: it imports
no Lightning, no MLflow, no plotting, no scikit-learn (the baselines stage fits the baselines), and no
Captum when the report shows no attributions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops.config import paths
from mlops.config.params import load_params
from model import seeds
from model.evaluate import predict_proba, row_keys
from tests.repo import ROOT, env

# Training, tracking, plotting, fitting and attribution libraries: none belongs in `evaluate` (top_k 0).
TRAINING_ONLY = (
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "mlflow",
    "matplotlib",
    "captum",
    "sklearn",
)


@pytest.mark.slow  # trained_repo: the real pipeline
def test_evaluate_scores_the_train_stages_seed_models_and_imports_no_training_code(trained_repo, tmp_path):
    shutil.copytree(trained_repo / "artifacts", tmp_path / "artifacts")
    params = yaml.safe_load((trained_repo / "params.yaml").read_text())
    params["report"]["top_k"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    code = (
        "import sys; from model.evaluate import run; run(); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({TRAINING_ONLY!r})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env(PYTHONPATH=str(ROOT)),
        text=True,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"

    manifest = json.loads((tmp_path / "artifacts/seeds/seeds.json").read_text())
    assert [m["seed"] for m in manifest["models"]] == [params["seed"] + 1, params["seed"] + 2]
    features = list(params["data"]["features"])
    test = pd.read_parquet(tmp_path / "artifacts/prepared/test.parquet")
    x, y = test[features].to_numpy(dtype=np.float64), test["label"].to_numpy()
    predictions = pd.read_csv(tmp_path / "eval/predictions.csv").set_index("row").loc[row_keys(x, y)]
    classes = range(len(params["data"]["classes"]))  # one probability column per class
    for k, model in enumerate(manifest["models"], start=1):
        expected = predict_proba(tmp_path / "artifacts/seeds" / model["file"], x)
        np.testing.assert_allclose(predictions[[f"seed{k}_proba_{c}" for c in classes]], expected, atol=1e-8)
    own = predictions[[f"proba_{c}" for c in classes]].to_numpy()
    assert not np.allclose(predictions[[f"seed1_proba_{c}" for c in classes]].to_numpy(), own)  # other models


def test_seed_models_of_another_seed_or_none_at_all_are_not_scored(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params = load_params(ROOT / "params.yaml")
    assert seeds.files(params) == []
    assert "missing: run the train stage" in capsys.readouterr().out
    paths.SEEDS_DIR.mkdir(parents=True)
    seeds.MANIFEST.write_text(
        json.dumps({"seed": params.seed + 7, "models": [{"seed": 1, "file": "seed1.pt"}]})
    )
    assert seeds.files(params) == []
    seeds.MANIFEST.write_text(json.dumps({"seed": params.seed, "models": [{"seed": 1, "file": "seed1.pt"}]}))
    assert seeds.files(params) == [paths.SEEDS_DIR / "seed1.pt"]


def test_auto_trains_two_seed_models_on_small_tables_and_none_on_large_ones():
    assert seeds.count({"seeds": "auto"}, seeds.AUTO_SEED_ROWS) == 2
    assert seeds.count({"seeds": "auto"}, seeds.AUTO_SEED_ROWS + 1) == 0
    assert seeds.count({"seeds": 5}, 10**9) == 5
