"""No silent blindness: once production serves (a release is recorded, or log files exist), a missing,
unreadable or stale log is an error with exit 3 and an alert, and the old summary is gone before anything
else; before the first release serves, the same check is a notice (exit 0, no alert). Rotated and gzipped
logs are read and counted."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from monitoring.drift import BLIND_EXIT
from monitoring.serving import RELEASE_RECORD
from tests.monitoring.logs import WINDOW, held_out, records, write_jsonl
from tests.repo import ROOT

pytestmark = pytest.mark.usefixtures("no_report_charts")  # decisions only: no chart is read here

LOG_DIR = Path("logs/inference")


def release_record(version: str | None = "3") -> None:
    """The production release file in the workspace: as the deploy flow leaves it after releasing
    `version`, or (None) the template's placeholder, nothing released."""
    from mlops.release.delivery import Image, rewrite

    text = (ROOT / RELEASE_RECORD).read_text()
    if version is not None:
        image = Image.parse("ghcr.io/acme/model@sha256:" + "1" * 64)
        text = rewrite(text, str(RELEASE_RECORD), image=image, version=version)
    RELEASE_RECORD.parent.mkdir(parents=True, exist_ok=True)
    RELEASE_RECORD.write_text(text)


def old_drift_summary() -> Path:
    """What a previous run left behind: a summary that says drift."""
    path = Path("reports/drift/summary.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"decision": "drift", "retrain": True, "reasons": ["old"]}))
    return path


def assert_blind(code: int, summary, out: str, webhook, message: str) -> None:
    assert code == BLIND_EXIT  # the old verdict is gone; a failure summary says why, and decides nothing
    assert (summary["decision"], summary["retrain"], summary["blind"]) == ("error", False, True)
    assert message in summary["error"]
    assert "monitoring is blind" in out and message in out and "not enough data" not in out
    (alert,) = webhook.received
    assert alert["title"] == "mlops drift: monitoring is blind" and message in alert["message"]
    assert alert["type"] == "failure"


def test_missing_log_location_is_an_error_with_an_alert(workspace, drift, webhook):
    release_record("3")  # production was released: it serves, so it must be logging
    stale = old_drift_summary()
    code, summary, out = drift("--log", "nowhere")
    assert_blind(code, summary, out, webhook, "the inference log location nowhere does not exist")
    assert "says production runs model version 3" in out
    assert json.loads(stale.read_text())["decision"] == "error"  # replaced: nothing left to act on


def test_no_readable_file_is_an_error(workspace, drift, webhook):
    (LOG_DIR).mkdir(parents=True)
    (LOG_DIR / "notes.txt").write_text("not a log")
    (LOG_DIR / "worker-1.jsonl.gz").write_bytes(b"this is not gzip")
    code, summary, out = drift()
    assert_blind(code, summary, out, webhook, "no readable inference log file at logs/inference")
    assert "worker-1.jsonl.gz: BadGzipFile" in out


def test_empty_log_dir_is_an_error(workspace, drift, webhook):
    release_record("3")
    LOG_DIR.mkdir(parents=True)
    code, summary, out = drift()
    assert_blind(code, summary, out, webhook, "no *.jsonl, *.jsonl.N or *.jsonl[.N].gz file in it")


def test_stale_log_is_an_error_not_not_enough_data(workspace, drift, webhook):
    release_record(None)  # no release recorded: the old log file alone shows production served
    write_jsonl(LOG_DIR / "worker-1.jsonl", records(held_out(), age=timedelta(days=3)))
    code, summary, out = drift()  # staleness 2d in params.yaml; the 7d window holds WINDOW rows
    assert_blind(code, summary, out, webhook, "the inference log is stale: its newest record is from")
    assert "monitoring.staleness allows 2.0 d" in out


def test_retrain_pr_does_not_act_on_a_stale_summary(workspace, drift, webhook, capsys):
    from mlops.cli import main

    release_record("3")
    old_drift_summary()
    assert drift("--log", "nowhere")[0] == BLIND_EXIT
    assert main(["retrain-pr"]) == 1
    assert "the drift check failed (the inference log location nowhere" in capsys.readouterr().err


def github_files(tmp: Path, monkeypatch) -> tuple[Path, Path]:
    """GitHub Actions' step output and job summary files, as the runner sets them."""
    outputs, page = tmp / "github-output", tmp / "step-summary"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(page))
    return outputs, page


def test_never_served_is_a_notice_not_a_failure(workspace, drift, webhook, monkeypatch, tmp_path_factory):
    """A new repository: the template's placeholder release, no log location yet."""
    release_record(None)
    outputs, page = github_files(tmp_path_factory.mktemp("runner"), monkeypatch)
    old_drift_summary()
    code, summary, out = drift()
    assert code == 0 and summary["decision"] == "never_served" and summary["retrain"] is False
    assert "::notice title=Nothing served yet::nothing to monitor yet:" in out
    assert f"{RELEASE_RECORD} records no production release (model version 0)" in out
    assert "gh workflow disable drift.yml" in out and "monitoring is blind" not in out
    assert webhook.received == []  # expected state: nobody is paged
    assert "decision=never_served" in outputs.read_text() and "retrain=false" in outputs.read_text()
    assert "### Drift check: Nothing served yet (a notice, not a failure)" in page.read_text()
    assert "decision: never_served" in out


def test_never_served_without_a_release_file_counts_the_log_files(workspace, drift, webhook):
    """A repository that deploys another way (no release file): an empty log location is a notice..."""
    LOG_DIR.mkdir(parents=True)
    code, summary, out = drift()
    assert (code, summary["decision"]) == (0, "never_served") and webhook.received == []
    assert (
        f"there is no release record ({RELEASE_RECORD})" in out and "holds no inference log file yet" in out
    )


def test_was_serving_and_went_blind_keeps_exit_3(workspace, drift, webhook):
    """... but one log file, however old, shows it served: a window with nothing in it is blindness."""
    write_jsonl(LOG_DIR / "worker-1.jsonl", records(held_out(), age=timedelta(days=40)))
    code, summary, out = drift()
    assert_blind(code, summary, out, webhook, "the inference log is stale")


def test_rotated_and_gzipped_logs_are_read_and_counted(workspace, drift, webhook):
    rows = records(held_out())
    write_jsonl(LOG_DIR / "worker-1.jsonl", rows[:50])
    write_jsonl(LOG_DIR / "worker-1.jsonl.1", rows[50:100])
    write_jsonl(LOG_DIR / "worker-1.jsonl.2", rows[100:130])
    for name, part in (("worker-1.jsonl.3.gz", rows[130:180]), ("worker-2.jsonl.gz", rows[180:])):
        with gzip.open(LOG_DIR / name, "wt") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in part)
    (LOG_DIR / "README.txt").write_text("ignored: not a log name")
    code, summary, out = drift()
    assert code == 0 and summary["decision"] == "no_drift"
    log = summary["log"]
    assert log["rows"] == WINDOW and log["files"] == 5
    assert log["kinds"] == {"plain": 1, "rotated": 2, "gzipped": 2}
    assert f"{WINDOW} rows in the window from 5 file(s) (1 plain, 2 rotated, 2 gzipped)" in out
    assert webhook.received == []  # no_drift alerts nobody


def test_a_truncated_gzip_keeps_its_lines_and_is_named(workspace, drift, webhook):
    rows = records(held_out())
    write_jsonl(LOG_DIR / "worker-1.jsonl", rows[:150])
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in rows[150:]).encode())
    (LOG_DIR / "worker-1.jsonl.1.gz").write_bytes(data[: len(data) // 2])  # the rotation was cut off
    code, summary, _ = drift()
    assert code == 0
    assert "logs/inference/worker-1.jsonl.1.gz: EOFError" in summary["log"]["unreadable"][0]
    assert 150 < summary["log"]["rows"] < WINDOW  # the lines before the cut were read


def test_not_enough_data_alerts(workspace, drift, webhook):
    write_jsonl(LOG_DIR / "worker-1.jsonl", records(held_out().iloc[:99]))
    code, summary, _ = drift()
    assert (code, summary["decision"]) == (0, "not_enough_data")
    (alert,) = webhook.received
    assert alert["title"] == "mlops drift: not_enough_data" and "not enough data: 99 rows" in alert["message"]


def test_alert_delivery_failure_does_not_hide_the_decision(workspace, drift, monkeypatch):
    monkeypatch.setenv("MLOPS_ALERT_URLS", "json://127.0.0.1:9/closed")  # nothing listens on port 9
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    write_jsonl(LOG_DIR / "worker-1.jsonl", records(held_out().iloc[:99]))
    code, summary, out = drift()
    assert (code, summary["decision"]) == (0, "not_enough_data")
    assert "alert: FAILED to send to 1 target(s)" in out


def test_a_plain_file_next_to_its_finished_gzip_is_read_once(workspace, drift):
    """The handler renames `x.jsonl.gz` into place, then deletes `x.jsonl`: a reader in between sees both."""
    rows = records(held_out())
    name = "model-host-42-20261123T100000Z-0001.jsonl"  # the handler's names
    write_jsonl(LOG_DIR / name, rows)
    with gzip.open(LOG_DIR / f"{name}.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    (LOG_DIR / "model-host-42-20261123T110000Z-0002.partial").write_bytes(b"half a gzip")  # skipped
    code, summary, _ = drift()
    assert code == 0 and summary["log"]["rows"] == WINDOW
    assert summary["log"]["kinds"] == {"plain": 0, "rotated": 0, "gzipped": 1}
