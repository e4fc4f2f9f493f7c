"""A forker's own table: swap in a mixed-type table by data + params.yaml only, and run the whole loop.

The table is made here (model/examples.py: a 3-class string label with imbalance, numeric columns with
missing cells, two categorical columns, a bool; no download). On a branch of the trained breast-cancer
project it goes through `dvc repro` (validate, prepare, train, baselines, evaluate), `mlops report`
against main (another dataset: no comparable baseline), then, merged to main, `mlops promote`,
`mlops archive`, a real TorchServe answering raw rows (category strings, an unseen category, nulls)
exactly as the offline model does on the same rows, and `mlops drift` on the logged traffic. The same
for a regression task. Slow: real training and a real TorchServe.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from monitoring.inference_log import read_jsonl
from tests.repo import clone, sh

pytestmark = pytest.mark.slow

FEATURES = {  # the README's "Bring your own data" example
    "island": {"type": "category"},
    "bill_length_mm": {"type": "float", "min": 0},
    "flipper_length_mm": {"type": "int", "min": 0},
    "body_mass_g": {"type": "float", "min": 0},
    "sex": {"type": "category", "categories": ["female", "male"], "missing": "drop_row"},
    "adult": {"type": "bool"},
    "year": {"type": "int", "min": 2000},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env(repo: Path) -> dict[str, str]:
    """Free loopback ports for this TorchServe, and the project's own MLflow registry."""
    env = {f"TS_{kind}_ADDRESS": f"http://127.0.0.1:{free_port()}" for kind in ("INFERENCE", "MANAGEMENT")}
    env["TS_METRICS_ADDRESS"] = f"http://127.0.0.1:{free_port()}"
    env["TS_INITIAL_WORKER_PORT"] = str(free_port())
    env["TS_GRPC_INFERENCE_PORT"], env["TS_GRPC_MANAGEMENT_PORT"] = str(free_port()), str(free_port())
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{repo}/mlflow.db"
    return env


def swap_in(repo: Path, name: str, task: str, label: str, features: dict, **data) -> dict:
    """What the README tells a user to do: a branch, the new table under data/, params.yaml's top
    level and data section, `dvc add data`. No code is touched."""
    sh(["git", "switch", "-q", "-c", name], repo)
    for old in (repo / "data").glob("*"):
        old.unlink()
    sh(["python", "-m", "model.examples", "data/penguins.csv"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params.update(name=name, task=task)
    params["data"] = {
        "path": "data/penguins.csv",
        "label": label,
        **data,
        "missing": "impute",
        "features": features,
    }
    params["report"]["slices"] = [{"column": "island"}, {"column": "bill_length_mm", "bins": 2}]
    params["train"]["max_epochs"] = 60
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["dvc", "add", "data"], repo)
    return params


def commit_all(repo: Path, message: str) -> None:
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", message], repo)


def raw_rows(repo: Path, split: str) -> tuple[np.ndarray, list[dict]]:
    """A prepared split's encoded matrix, and the same rows as a client sends them (category strings,
    true/false, null for a missing value). Every 7th row gets an island never seen in training."""
    from model.encoding import raw_records

    meta = json.loads((repo / "artifacts/model/meta.json").read_text())
    frame = pd.read_parquet(repo / f"artifacts/prepared/{split}.parquet")
    matrix = frame[meta["features"]].to_numpy(dtype=np.float64)
    rows = raw_records(frame, meta["schema"])
    island = meta["features"].index("island")
    for i in range(0, len(rows), 7):
        rows[i]["island"] = "Atlantis"
        matrix[i, island] = -1.0  # the encoding of an unseen category
    return matrix, rows


def offline(repo: Path, matrix: np.ndarray) -> np.ndarray:
    model = torch.jit.load(str(repo / "artifacts/model/model.pt")).eval()
    with torch.no_grad():
        return model(torch.tensor(matrix, dtype=torch.float32)).double().numpy()


def release_and_serve(repo: Path, env: dict[str, str], branch: str) -> None:
    """Merge to main, then what promote.yml does: promote (gates), archive, and serve locally."""
    sh(["git", "switch", "-q", "main"], repo)
    sh(["git", "merge", "-q", "--no-ff", "-m", f"merge {branch}", branch], repo)
    sh(["mlops", "promote"], repo, **env)
    sh(["mlops", "archive"], repo, **env)
    sh(["mlops", "serve", "start"], repo, **env)


def drift(repo: Path, env: dict[str, str]) -> dict:
    sh(["mlops", "drift", "--log", str(repo / "logs/inference")], repo, **env)
    return json.loads((repo / "reports/drift/summary.json").read_text())


def registered(repo: Path, env: dict[str, str], name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    return str(client.get_model_version_by_alias(name, "champion").version)


def test_mixed_type_classification_table_runs_the_whole_loop(trained_repo, dvc_remote, tmp_path):
    from serve.client import Client

    repo = clone(trained_repo, tmp_path / "repo", dvc_remote)
    sh(["dvc", "pull", "-q"], repo)
    env = serve_env(repo)
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    swap_in(repo, "penguins", "classification", "species", FEATURES, classes=classes)
    sh(["dvc", "repro"], repo)

    validation = json.loads((repo / "reports/validation.json").read_text())
    assert validation["ok"] and validation["rows_dropped"] > 0  # sex: drop_row
    assert validation["missing"]["bill_length_mm"]["policy"] == "impute"
    balance = validation["class_balance"]
    assert balance["Adelie"] > 2.5 * balance["Chinstrap"]  # imbalanced
    meta = json.loads((repo / "artifacts/model/meta.json").read_text())
    assert meta["task"] == "classification" and meta["classes"] == classes
    schema = {c["name"]: c for c in meta["schema"]}
    assert [c["name"] for c in meta["schema"]] == list(FEATURES)
    assert schema["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]  # learned from train
    assert schema["sex"]["missing"] == "drop_row" and schema["bill_length_mm"]["missing"] == "impute"
    metrics = json.loads((repo / "eval/metrics.json").read_text())
    assert metrics["accuracy"] > 0.9, metrics

    commit_all(repo, "penguins")
    report = sh(["mlops", "report", "--base", "main"], repo, check=False, **env)
    text = (repo / "reports/pr/report.md").read_text()
    assert report.returncode == 0, report.stdout + report.stderr
    assert "No comparable baseline" in text  # breast-cancer's metrics are not a baseline for penguins

    client = None
    try:
        release_and_serve(repo, env, "penguins")
        assert registered(repo, env, "penguins-classifier") == "1"  # names from `name: penguins`
        client = Client(env["TS_INFERENCE_ADDRESS"], "penguins", repo / "logs/torchserve/key_file.json")
        matrix, rows = raw_rows(repo, "test")
        more_matrix, more_rows = raw_rows(repo, "val")
        matrix, rows = np.vstack([matrix, more_matrix]), rows + more_rows
        assert any(None in r.values() for r in rows) and any(r["island"] == "Atlantis" for r in rows)
        served = []
        for start in range(0, len(rows), 32):
            served += client.predict(rows[start : start + 32])["predictions"]
        logits = offline(repo, matrix)
        proba = np.exp(logits - logits.max(1, keepdims=True))
        proba /= proba.sum(1, keepdims=True)
        got = np.array([[p["probabilities"][c] for c in classes] for p in served])
        assert np.abs(got - proba).max() < 1e-6
        assert [p["label"] for p in served] == [classes[i] for i in proba.argmax(1)]

        summary = drift(repo, env)
        assert summary["rows"]["current"] == len(rows)
        columns = {c["column"]: c for c in summary["features"]["columns"]}
        assert set(columns) == set(FEATURES)
        assert "chi-square" in columns["island"]["method"]  # categorical: a categorical test
        assert columns["bill_length_mm"]["method"].startswith("K-S")  # numeric
        assert "chi-square" in summary["prediction"]["class_mix"]["method"]  # a two-sample test
        types = {k: v["type"] for k, v in FEATURES.items()}
        logged, _ = read_jsonl(
            str(repo / "logs/inference"), list(FEATURES), keys=("request_id",), types=types
        )
        assert "Atlantis" in set(logged["island"])  # the log keeps the raw values
    finally:
        sh(["mlops", "serve", "stop"], repo, check=False, **env)
        assert client is not None


def test_regression_table_runs_the_whole_loop(trained_repo, dvc_remote, tmp_path):
    from serve.client import Client

    repo = clone(trained_repo, tmp_path / "repo", dvc_remote)
    sh(["dvc", "pull", "-q"], repo)
    env = serve_env(repo)
    features = {k: v for k, v in FEATURES.items() if k != "body_mass_g"}
    swap_in(repo, "penguin-mass", "regression", "body_mass_g", features)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["gates"] = {"min": {"r2": 0.5}, "max_regression": {"rmse": 50.0}}
    params["report"].update(baseline={"metric": "rmse", "margin": 0.0}, slice_metrics=["rmse", "mae"])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["dvc", "repro"], repo)

    meta = json.loads((repo / "artifacts/model/meta.json").read_text())
    assert meta["task"] == "regression" and not meta.get("classes")
    metrics = json.loads((repo / "eval/metrics.json").read_text())
    assert metrics["r2"] > 0.5, metrics
    test = pd.read_parquet(repo / "artifacts/prepared/test.parquet")
    predicted = offline(repo, test[list(features)].to_numpy())
    assert predicted.shape == (len(test), 1)
    assert np.sqrt(np.mean((predicted[:, 0] - test["label"]) ** 2)) < test["label"].std()  # grams, not sd

    commit_all(repo, "penguin mass")
    report = sh(["mlops", "report", "--base", "main"], repo, check=False, **env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "No comparable baseline" in (repo / "reports/pr/report.md").read_text()

    client = None
    try:
        release_and_serve(repo, env, "penguin-mass")
        assert registered(repo, env, "penguin-mass-regressor") == "1"
        client = Client(env["TS_INFERENCE_ADDRESS"], "penguin-mass", repo / "logs/torchserve/key_file.json")
        matrix, rows = raw_rows(repo, "test")
        more_matrix, more_rows = raw_rows(repo, "val")
        matrix, rows = np.vstack([matrix, more_matrix]), rows + more_rows
        served = []
        for start in range(0, len(rows), 32):
            served += client.predict(rows[start : start + 32])["predictions"]
        got = np.array([p["prediction"] for p in served])
        assert np.abs(got - offline(repo, matrix)[:, 0]).max() < 1e-6 * np.abs(got).max()

        summary = drift(repo, env)
        assert summary["rows"]["current"] == len(rows)
        prediction = summary["prediction"]["class_mix"]  # the prediction column's drift result
        assert prediction["column"] == "prediction" and prediction["method"].startswith("K-S")
    finally:
        sh(["mlops", "serve", "stop"], repo, check=False, **env)
        assert client is not None
