"""A refused request leaves a refusal record (status, reason code, the refused feature's name; no
values) in <log dir>/refused/, which the drift job's reader counts per column; served records stay in
the log as before."""

from __future__ import annotations

import json

from monitoring.inference_log import read_jsonl
from tests.serve.test_handler import call
from tests.serve.test_handler_schema import FEATURES, ROWS, TYPES, make


def test_refusals_are_logged_by_column_and_reason_without_values(tmp_path, monkeypatch):
    toy = make(tmp_path, monkeypatch, log=True)
    bodies = [
        {"instances": ROWS},  # served
        {"instances": [{**ROWS[0], "fresh": None}]},  # a null where `missing: error`
        {"instances": [{**ROWS[0], "count": "twelve-secret"}]},  # not a number
        {"instances": [{k: v for k, v in ROWS[0].items() if k != "size"}]},  # a feature not sent
        {"inputs": [{"name": f, "shape": [1], "datatype": "FP32", "data": ["x"]} for f in FEATURES]},
        b"{not json",
    ]
    _, status = call(toy, *bodies)
    assert sorted(status) == [1, 2, 3, 4, 5]
    [served] = (tmp_path / "log").glob("*.jsonl")
    assert len(served.read_text().splitlines()) == 1  # the served log holds served requests only
    [refused] = (tmp_path / "log" / "refused").glob("*.jsonl")
    lines = refused.read_text().splitlines()
    assert "twelve-secret" not in refused.read_text()  # no client values
    got = [(r["request_id"], r["refused"]) for r in map(json.loads, lines)]
    assert got == [
        ("req-1", {"status": 400, "reason": "missing", "column": "fresh"}),
        ("req-2", {"status": 400, "reason": "not_a_number", "column": "count"}),
        ("req-3", {"status": 400, "reason": "features", "column": "size"}),
        ("req-4", {"status": 400, "reason": "not_a_number", "column": "size"}),
        ("req-5", {"status": 400, "reason": "malformed_json", "column": None}),
    ]
    table, stats = read_jsonl(str(tmp_path / "log"), FEATURES, keys=("request_id",), types=TYPES)
    assert len(table) == 4 and stats.malformed == 0 and stats.files == 2
    assert [(column, reason) for _, column, reason in stats.refusals] == [
        (r["column"], r["reason"]) for _, r in got
    ]
    assert stats.newest is not None
