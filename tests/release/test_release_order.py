"""The alias moves last: `promote --candidate` registers and gates, the image is built from the candidate,
and only `mlops champion` moves the alias. A failure in between leaves the champion where it was.
Once the alias moved with its pushed image, the release stands: a failed deploy job moves nothing back,
and re-running the champion job for it is a no-op. Promotion refuses any ref but main inside GitHub
Actions. Real sqlite registry."""

from __future__ import annotations

import json

import pytest

from mlops.cli import main
from mlops.config.errors import UserError
from mlops.release import archive, registry
from tests.release.project import GOOD, REGISTERED, champion, commit, write_model
from tests.repo import sh


def release(project) -> dict:
    return json.loads((project / "model_store/release.json").read_text())


def candidate_two(project) -> None:
    """v1 champion; v2 better, registered and gated as the candidate (CI's first step)."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.97})
    commit(project, "model 2")
    assert main(["promote", "--candidate"]) == 0


def test_candidate_is_gated_and_archived_but_champion_stays_until_the_image_is_pushed(project):
    candidate_two(project)
    assert champion(project) == "1"  # the image is not pushed yet
    record = release(project)
    assert record["event"] == "candidate" and record["version"] == "2" and record["champion"] is False
    assert record["expect_champion"] == "1"
    archive.archive_champion()  # the image is built from the candidate's .mar
    assert release(project)["version"] == "2"

    # the image job failed (build, smoke test or push): `mlops champion` never runs, the alias stays
    assert champion(project) == "1"

    # a re-run whose image job succeeds: the alias moves, with the image digest recorded
    image = "ghcr.io/acme/model@sha256:" + "a" * 64
    assert main(["champion", "--version", "2", "--expect", "1", "--image", image]) == 0
    assert champion(project) == "2"
    record = release(project)
    assert record["event"] == "promote" and record["previous"] == "1" and record["image"] == image


def test_after_a_failed_deploy_the_release_stands_and_a_rerun_moves_nothing(project, capsys):
    """promote.yml's deploy job failed after the alias move: champion and its image stay; "Re-run all
    jobs" runs the champion job again with the same --expect, which must succeed without a move."""
    candidate_two(project)
    image = "ghcr.io/acme/model@sha256:" + "b" * 64
    assert main(["champion", "--version", "2", "--expect", "1", "--image", image]) == 0
    capsys.readouterr()
    assert main(["champion", "--version", "2", "--expect", "1", "--image", image]) == 0
    assert "version 2 is already champion" in capsys.readouterr().out
    assert champion(project) == "2" and release(project)["image"] == image


def test_champion_refuses_when_the_alias_moved_since_the_gates(project):
    candidate_two(project)
    with pytest.raises(UserError, match=r"champion moved while this release ran .*version 3.*now version 1"):
        registry.move_champion("2", expect="3")
    assert champion(project) == "1"


def test_champion_refuses_a_version_that_did_not_pass(project):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.93})
    commit(project, "model 2")
    with pytest.raises(UserError, match="failed the gates"):
        registry.promote(candidate=True)
    with pytest.raises(UserError, match="has not passed its gates"):
        registry.move_champion("2", expect="1")
    assert champion(project) == "1"


def test_undo_puts_the_alias_back_only_if_this_release_moved_it(project):
    candidate_two(project)
    registry.move_champion("2", expect="1")
    assert main(["champion", "--undo", "--version", "2", "--previous", "1"]) == 0
    assert champion(project) == "1" and release(project)["event"] == "undo"
    assert main(["champion", "--undo", "--version", "2", "--previous", "1"]) == 0  # nothing to undo
    assert champion(project) == "1"


def test_undo_of_a_first_champion_removes_the_alias(project):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote(candidate=True)
    assert champion(project) is None
    registry.move_champion("1", expect="")
    assert champion(project) == "1"
    registry.undo_champion("1", previous="")
    assert champion(project) is None


@pytest.mark.parametrize("command", [["promote"], ["promote", "--candidate"], ["champion", "--version", "1"]])
def test_actions_runs_on_a_branch_are_refused(project, monkeypatch, capsys, command):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REF", "refs/heads/feature")
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "promotion runs only from refs/heads/main (this run is on refs/heads/feature)" in err
    assert champion(project) is None and not (project / "model_store/release.json").exists()

    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")  # the same run on main goes through
    assert main(["promote"]) == 0 and champion(project) == "1"


def test_archive_refuses_a_candidate_whose_bytes_are_not_on_disk(project):
    candidate_two(project)
    write_model(project, b"weights-1", GOOD)  # another checkout's bytes
    with pytest.raises(UserError, match="is not candidate version 2"):
        archive.archive_champion()


def test_a_rerun_of_an_older_release_cannot_move_the_alias_back(project, capsys):
    """Run A's image job fails; run B (a later merge) releases; then A is re-run ("Re-run all jobs"): its
    release job recomputes --expect against B, so compare-and-set alone would let it through. Its commit
    does not contain B's, so both promote --candidate and the champion move refuse; the alias stays on B,
    and A's version gets no image tag. Only --force with a reason moves it back."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    registry.promote()
    write_model(project, b"weights-2", {**GOOD, "accuracy": 0.965})
    commit(project, "merge A")
    run_a = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()
    registry.promote(candidate=True)  # run A: version 2, expect 1; its image job fails
    write_model(project, b"weights-3", {**GOOD, "accuracy": 0.97})
    commit(project, "merge B")
    registry.promote(candidate=True)  # run B: version 3, expect 1
    registry.move_champion("3", expect="1", image="ghcr.io/acme/model@sha256:" + "b" * 64)
    assert champion(project) == "3"

    sh(["git", "checkout", "-q", run_a], project)  # the re-run checks out A's commit
    with pytest.raises(UserError, match=r"released from commit .* does not contain: .*backwards"):
        registry.promote(candidate=True)
    image_a = "ghcr.io/acme/model@sha256:" + "a" * 64
    with pytest.raises(UserError, match="backwards"):
        registry.move_champion("2", expect="3", image=image_a)
    assert champion(project) == "3" and release(project)["version"] == "3"
    from mlflow import MlflowClient

    from mlops.config import tracking

    client = MlflowClient(tracking_uri=tracking.tracking_uri())
    assert "image" not in client.get_model_version(REGISTERED, "2").tags

    with pytest.raises(UserError, match="--force needs --reason"):
        registry.move_champion("2", expect="3", force=True)
    forced = ["champion", "--version", "2", "--expect", "3", "--force", "--reason", "B misbehaves"]
    assert main(forced) == 0
    assert champion(project) == "2"
    tags = client.get_model_version(REGISTERED, "2").tags
    assert tags["forced_champion_reason"] == "B misbehaves"
