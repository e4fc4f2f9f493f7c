"""The release gates the model on numbers main's code measures (mlops/release/measure.py), not the PR's
report:
a report that disagrees with the re-measurement stops the release before anything is registered."""

from __future__ import annotations

import json

import pytest

from mlops.config.errors import UserError
from mlops.release import measure, registry
from tests.release.conftest import measured
from tests.release.project import GOOD, REGISTERED, champion, commit, write_model


def test_a_release_whose_reported_metrics_disagree_with_the_remeasured_ones_is_refused(project, monkeypatch):
    """The PR run restored planted outputs: its eval/metrics.json claims 0.97, the shipped bytes score
    0.91 on the test split. Refused, both numbers named, an alert sent; no version, champion unchanged."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.97})
    commit(project, "model 2")
    measured.scores = {**GOOD, "accuracy": 0.91}
    alerts = []
    monkeypatch.setattr("mlops.release.alerts.notify", lambda title, body, level: alerts.append(body) or True)
    with pytest.raises(UserError, match=r"accuracy: eval/metrics.json reports 0.97, re-measured 0.91"):
        registry.promote(candidate=True)
    assert champion(project) == "1"
    assert json.loads((project / "model_store/release.json").read_text())["version"] == "1"
    from mlflow import MlflowClient

    from mlops.config import tracking

    versions = MlflowClient(tracking_uri=tracking.tracking_uri()).search_model_versions("")
    assert [str(v.version) for v in versions] == ["1"]  # nothing registered
    assert len(alerts) == 1 and "accuracy" in alerts[0] and "0.97" in alerts[0] and "0.91" in alerts[0]


def test_the_gates_and_the_registry_use_the_remeasured_numbers(project):
    write_model(project, b"weights-1", {**GOOD, "accuracy": 0.96})
    commit(project, "model 1")
    measured.scores = {**GOOD, "accuracy": 0.96 + 2e-6}  # float noise between machines: agrees
    registry.promote(candidate=True)
    from mlflow import MlflowClient

    from mlops.config import tracking

    version = MlflowClient(tracking_uri=tracking.tracking_uri()).get_model_version(REGISTERED, "1")
    assert float(version.tags["metric.accuracy"]) == pytest.approx(0.96 + 2e-6, abs=1e-9)


def test_disagreements_name_each_metric_and_the_dataset():
    reported = {"accuracy": 0.95, "log_loss": 0.1, "interval": {}, "dataset": {"task": "c", "test_rows": 114}}
    same = measure.Measurement({"accuracy": 0.95 + 5e-6, "log_loss": 0.1}, {"task": "c", "test_rows": 114})
    assert measure.disagreements(reported, same) == []
    other = measure.Measurement(
        {"accuracy": 0.95, "log_loss": 0.1002, "f1": 0.9}, {"task": "c", "test_rows": 100}
    )
    problems = measure.disagreements(reported, other)
    assert [p.split(":")[0] for p in problems] == ["f1", "log_loss", "dataset.test_rows"]
    assert "reports 0.1, re-measured 0.1002" in problems[1]


@pytest.mark.slow
def test_measure_reproduces_evaluate_on_a_trained_model(trained_repo, monkeypatch):
    """Main's measurement of the real model agrees with what the evaluate stage wrote, to the tolerance."""
    monkeypatch.chdir(trained_repo)
    result = measure.measure()
    reported = json.loads((trained_repo / "eval/metrics.json").read_text())
    assert result.metrics and measure.disagreements(reported, result) == []
    assert result.dataset == reported["dataset"]
