"""`mlops promote` / `mlops rollback` against a real sqlite MLflow registry, on a small synthetic project
(tests/release/project.py builds it)."""

from __future__ import annotations

import json

import pytest

from mlops.config.errors import UserError
from mlops.release import artifacts, registry
from tests.release.project import GOOD, REGISTERED, champion, commit, promote_two, write_model
from tests.repo import sh


def test_first_promotion_sets_champion_and_records_the_release(project):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    summary = project / "summary.md"
    assert registry.promote(summary=str(summary)) == 0
    assert champion(project) == "1"
    release = json.loads((project / "model_store/release.json").read_text())
    assert release["version"] == "1" and release["champion"] is True
    text = summary.read_text()
    assert "**Promoted**" in text and "first promotion" in text

    from mlflow import MlflowClient

    from mlops.config import tracking

    version = MlflowClient(tracking_uri=tracking.tracking_uri()).get_model_version(REGISTERED, "1")
    head = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()
    assert version.tags["git_sha"] == head
    assert version.tags["model_md5"] == artifacts.md5(project / "artifacts/model/model.pt")
    assert float(version.tags["metric.accuracy"]) == GOOD["accuracy"]
    assert json.loads(version.tags["params"])["seed"] == 42
    assert "data_md5" in version.tags and version.tags["gates"] == "passed"


def test_a_worse_model_is_refused_and_champion_is_unchanged(project):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    write_model(
        project, b"weights-2", {**GOOD, "accuracy": 0.93}
    )  # above the 0.90 floor, 0.03 below champion
    commit(project, "model 2")
    summary = project / "summary.md"
    with pytest.raises(UserError, match=r"max regression accuracy.*champion v1"):
        registry.promote(summary=str(summary))
    assert champion(project) == "1"
    assert "**Refused**" in summary.read_text()
    assert json.loads((project / "model_store/release.json").read_text())["version"] == "1"


def test_a_tampered_model_file_is_refused_before_registering(project):
    write_model(project, b"weights-1", GOOD)
    (project / "artifacts/model/model.pt").write_bytes(b"not what was reviewed")
    with pytest.raises(UserError, match=r"artifacts/model/model.pt: md5 .* != .* in dvc.lock"):
        registry.promote()
    assert not (project / "mlflow.db").exists() or champion(project) is None


def test_rollback_restores_the_previous_champion(project):
    promote_two(project)
    assert champion(project) == "2"
    assert registry.rollback() == 0
    assert champion(project) == "1"


def test_fresh_registry_gates_against_the_previous_commit_on_main(project):
    """CI without a tracking server: an empty sqlite registry, so the baseline comes from git."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1 (promoted by an earlier run whose registry is gone)")
    parent = sh(["git", "rev-parse", "--short=7", "HEAD"], project).stdout.strip()
    write_model(project, b"weights-2", {**GOOD, "roc_auc": 0.97})  # 0.02 below main, 0.01 allowed
    commit(project, "model 2")
    summary = project / "summary.md"
    with pytest.raises(UserError, match=f"max regression roc_auc.*main@{parent}"):
        registry.promote(summary=str(summary))
    assert champion(project) is None
    assert f"previous commit on main, {parent}, read from git" in summary.read_text()


def test_promoting_the_same_bytes_again_reuses_the_version(project):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    registry.promote()
    from mlflow import MlflowClient

    from mlops.config import tracking

    versions = MlflowClient(tracking_uri=tracking.tracking_uri()).search_model_versions(
        f"name='{REGISTERED}'"
    )
    assert len(versions) == 1 and champion(project) == "1"


def test_a_dirty_tree_is_refused_and_allow_dirty_records_it(project, monkeypatch):
    """A branch whose retrained lock is not committed: HEAD is still main's commit, so its sha would be
    recorded for bytes no commit holds. Refused; --allow-dirty records git_dirty=true and the real HEAD."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1 (main)")
    main_sha = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()
    sh(["git", "checkout", "-q", "-b", "feature"], project)
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.97})  # retrained, not committed
    monkeypatch.setenv("GITHUB_SHA", "e" * 40)  # a stale variable must not be what is recorded

    with pytest.raises(UserError, match=r"uncommitted changes \(.*dvc.lock.*\).*--allow-dirty"):
        registry.promote()
    assert champion(project) is None

    assert registry.promote(allow_dirty=True) == 0
    from mlflow import MlflowClient

    from mlops.config import tracking

    tags = MlflowClient(tracking_uri=tracking.tracking_uri()).get_model_version(REGISTERED, "1").tags
    assert tags["git_dirty"] == "true" and tags["git_sha"] == main_sha
    assert json.loads((project / "model_store/release.json").read_text())["git_dirty"] is True

    commit(project, "model 2 on the branch")
    write_model(project, b"weights-3", {**GOOD, "accuracy": 0.98})
    commit(project, "model 3 on the branch")
    assert registry.promote() == 0
    head = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()
    latest = MlflowClient(tracking_uri=tracking.tracking_uri()).get_model_version(REGISTERED, "2")
    assert latest.tags["git_sha"] == head != main_sha and latest.tags["git_dirty"] == "false"
    assert "git_dirty" not in json.loads((project / "model_store/release.json").read_text())
