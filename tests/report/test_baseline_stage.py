"""The `baselines` stage fits the reference models once per split; `evaluate` scores its saved predictions
(no scikit-learn) and gets exactly what fitting them itself gives, and never uses predictions fitted on
other inputs."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from mlops.report import baselines
from model.evaluate import run as evaluate
from tests.report.tables import write_project


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path)  # three classes, a category column, missing values
    meta = json.loads((tmp_path / "artifacts/model/meta.json").read_text())
    (tmp_path / "artifacts/prepared/preprocessing.json").write_text(json.dumps({"columns": meta["schema"]}))
    return tmp_path


def outputs(where) -> dict[str, bytes]:
    return {
        p.relative_to(where).as_posix(): p.read_bytes() for p in sorted((where / "eval").rglob("*.csv"))
    } | {"eval/metrics.json": (where / "eval/metrics.json").read_bytes()}


def test_evaluate_scores_the_stored_predictions_and_writes_what_a_fit_of_its_own_writes(
    project, monkeypatch, capsys
):
    baselines.run()
    with monkeypatch.context() as patch:  # the stored predictions are used: nothing is fitted
        patch.setattr(baselines, "fit", lambda *a, **k: pytest.fail("evaluate fitted the baselines"))
        evaluate()
    assert "fitting the baselines here" not in capsys.readouterr().out
    stored = outputs(project)
    assert set(json.loads(stored["eval/metrics.json"])["baseline"]) == {
        "logistic_regression",
        "majority_class",
        "gradient_boosting",
    }
    shutil.rmtree(project / "artifacts/baselines")
    evaluate()
    assert "artifacts/baselines missing" in capsys.readouterr().out
    assert outputs(project) == stored  # the same bytes in every file


def test_predictions_fitted_on_other_inputs_are_not_scored(project, capsys):
    baselines.run()
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["seed"] += 1  # another seed: another sample and other boosted trees
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    evaluate()
    assert "artifacts/baselines is for other inputs" in capsys.readouterr().out
