"""Release integrity: `mlops archive` ships only the champion, rollback respects the gates, and
model_store/release.json follows every alias move. Real sqlite registry, real torch-model-archiver."""

from __future__ import annotations

import json
import zipfile

import pytest

from mlops.cli import main
from mlops.config.errors import UserError
from mlops.release import archive, artifacts, registry
from tests.release.project import GOOD, MAR, REGISTERED, champion, commit, promote_two, write_model

WORSE = {**GOOD, "accuracy": 0.93}  # above the 0.90 floor, 0.03 below the champion: refused


def release(project) -> dict:
    return json.loads((project / "model_store/release.json").read_text())


def mar_version(project) -> str:
    with zipfile.ZipFile(project / MAR) as mar:
        return json.loads(mar.read("MAR-INF/MANIFEST.json"))["model"]["modelVersion"]


def version_of(number: str):
    from mlflow import MlflowClient

    from mlops.config import tracking

    return MlflowClient(tracking_uri=tracking.tracking_uri()).get_model_version(REGISTERED, number)


def promote_good_then_refused(project) -> None:
    """v1 champion; v2 registered but refused by the gates (its bytes stay on disk, as in a checkout)."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    write_model(project, b"weights-2", WORSE)
    commit(project, "model 2")
    with pytest.raises(UserError, match="failed the gates"):
        registry.promote()
    assert champion(project) == "1" and version_of("2").tags["gates"] == "failed"


def test_archive_without_a_champion_is_refused(project):
    write_model(project, b"weights-1", GOOD)
    with pytest.raises(UserError, match=r"no champion .* run `mlops promote` first"):
        archive.archive_champion()
    assert not (project / MAR).exists()


def test_archive_after_a_refused_promotion_is_refused_and_keeps_the_champion_archive(project):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    archive.archive_champion()
    assert mar_version(project) == "1"
    champion_mar = (project / MAR).read_bytes()

    write_model(project, b"weights-2", WORSE)
    commit(project, "model 2")
    with pytest.raises(UserError, match="failed the gates"):
        registry.promote()
    expected = artifacts.md5(project / "artifacts/model/model.pt")
    with pytest.raises(UserError, match=rf"md5 {expected}\) is not the champion, version 1 .*refusing"):
        archive.archive_champion()
    assert (project / MAR).read_bytes() == champion_mar
    assert release(project)["version"] == "1"


def test_archive_cli_refuses_with_a_clear_message(project, capsys):
    promote_good_then_refused(project)
    assert main(["archive"]) == 1
    err = capsys.readouterr().err
    assert "mlops archive: error: artifacts/model/model.pt (md5 " in err
    assert "is not the champion, version 1" in err and "Traceback" not in err


def test_rollback_to_a_gate_failed_version_is_refused_then_forced_with_a_recorded_reason(project):
    promote_good_then_refused(project)
    with pytest.raises(UserError, match=r"version 2 did not pass its gates \(gates: failed\).*--force"):
        registry.rollback(version="2")
    assert champion(project) == "1"
    with pytest.raises(UserError, match="--force needs --reason"):
        registry.rollback(version="2", force=True)
    assert champion(project) == "1"

    reason = "incident 42: v1 mislabels a new scanner's images"
    assert registry.rollback(version="2", force=True, reason=reason) == 0
    assert champion(project) == "2"
    forced = version_of("2")
    assert forced.tags["forced_champion_reason"] == reason
    assert reason in forced.description and "rollback from version 1" in forced.description
    assert version_of("1").tags["rolled_back_to"] == "2"
    record = release(project)
    assert record["version"] == "2" and record["event"] == "rollback"
    assert record["forced"] == "true" and record["reason"] == reason and record["previous"] == "1"
    assert record["model_md5"] == forced.tags["model_md5"]


def test_forced_rollback_through_the_cli(project, capsys):
    promote_good_then_refused(project)
    assert main(["rollback", "--to", "2"]) == 1
    assert "did not pass its gates" in capsys.readouterr().err and champion(project) == "1"
    assert main(["rollback", "--to", "2", "--force", "--reason", "hotfix"]) == 0
    assert champion(project) == "2" and release(project)["reason"] == "hotfix"


def test_release_json_follows_promote_and_rollback(project):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    assert release(project)["version"] == "1"
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.97})
    commit(project, "model 2")
    registry.promote()
    record = release(project)
    assert record["version"] == "2" and record["event"] == "promote" and record["previous"] == "1"

    assert registry.rollback() == 0
    assert champion(project) == "1"
    record = release(project)
    assert record["version"] == "1" and record["event"] == "rollback" and record["previous"] == "2"
    assert "forced" not in record  # v1 passed its gates: no force needed
    assert record["model_md5"] == version_of("1").tags["model_md5"]


def test_archive_after_a_rollback_packages_the_rolled_back_champion(project):
    """After `rollback` the disk holds v2; archiving is refused until the champion's bytes are back."""
    promote_two(project)
    registry.rollback()
    with pytest.raises(UserError, match="is not the champion, version 1"):
        archive.archive_champion()
    write_model(project, b"weights-1", GOOD)  # the champion's commit checked out and pulled
    archive.archive_champion()
    assert mar_version(project) == "1" == release(project)["version"]


def test_release_json_written_elsewhere_is_corrected_by_archive(project):
    """The alias moved in another checkout (shared registry): archive stamps and records the registry's."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    (project / "model_store/release.json").write_text(json.dumps({"version": "9"}))
    archive.archive_champion()
    assert mar_version(project) == "1" == release(project)["version"]
