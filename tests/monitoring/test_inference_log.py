"""The log reader on the handler's columnar records (one line per request), mixed with row records,
in live, rotated and gzipped files: one table with a row per served row."""

from __future__ import annotations

import gzip
import json
import math
from datetime import datetime, timedelta, timezone

from monitoring.inference_log import read_jsonl
from monitoring.traffic import logged_rows

FEATURES = ["a", "b"]
NOW = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


def request(rid: str, values, rows: int, age_min: float = 1, **extra) -> dict:
    return {
        "model_version": "3",
        "features": ["b", "a"],  # the log's own order; the reader maps by name
        "classes": ["no", "yes"],
        "ts": (NOW - timedelta(minutes=age_min)).isoformat().replace("+00:00", "Z"),
        "request_id": rid,
        "rows": rows,
        "values": values,
        "prediction": ["yes"] * rows,
        "probabilities": [0.25, 0.75] * rows,
        **extra,
    }


def lines(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_columnar_and_row_records_from_plain_and_gzipped_files_make_one_table(tmp_path):
    (tmp_path / "m-h-1-0001.jsonl.gz").write_bytes(
        gzip.compress(lines(request("r1", [[1, 10], [2, 20]], 2), request("r2", [3, 30, 4, 40], 2)))
    )
    (tmp_path / "m-h-1-0002.jsonl").write_bytes(
        lines(
            request("r3", [5, 50], 1),
            {
                "ts": NOW.isoformat(),
                "request_id": "old",
                "features": {"a": 60, "b": 6},
                "prediction": "no",
                "probabilities": {"no": 0.5, "yes": 0.5},
            },
            request("bad", [1, 2, 3], 2),  # 3 values for 2 rows of 2
            request("old-window", [7, 70], 1, age_min=600),
        )
        + b'{"features": ["a", "b"], "rows": 1, "values": [1, 2], "ts": "2026-11-23T11:59:00Z", "req'  # cut
    )
    table, stats = read_jsonl(
        str(tmp_path),
        FEATURES,
        since=NOW - timedelta(hours=1),
        until=NOW + timedelta(seconds=1),
        keys=("request_id", "prediction"),
        classes=("no", "yes"),
    )
    assert table[FEATURES].to_numpy().tolist() == [[10, 1], [20, 2], [30, 3], [40, 4], [50, 5], [60, 6]]
    assert table["request_id"].tolist() == ["r1", "r1", "r2", "r2", "r3", "old"]
    assert table["prediction"].tolist() == ["yes"] * 5 + ["no"]
    assert table["proba_yes"].tolist() == [0.75] * 5 + [0.5]
    assert stats.kinds["gzipped"] == 1 and stats.kinds["plain"] == 1
    assert stats.malformed == 2 and any("does not hold 2 rows" in e for e in stats.examples)
    assert stats.outside_window == 1 and stats.rows == 6
    assert str(table["ts"].iloc[0]) == "2026-11-23 11:59:00+00:00"
    assert logged_rows(str(tmp_path)) == 2 + 2 + 1 + 1 + 2 + 1  # rows, not lines; the cut line none


def test_with_the_schema_types_raw_category_values_and_nulls_come_back(tmp_path):
    (tmp_path / "m.jsonl").write_bytes(
        lines(
            {**request("r1", [["red", None], ["blue", 2.5]], 2), "features": ["color", "size"]},
            {**request("r2", [[True, 1.0]], 1), "features": ["color", "size"]},  # a bool is not a category
        )
    )
    types = {"color": "category", "size": "float"}
    table, stats = read_jsonl(str(tmp_path), ["color", "size"], types=types)
    assert table["color"].tolist() == ["red", "blue"] and stats.malformed == 1
    assert math.isnan(table["size"][0]) and table["size"][1] == 2.5 and table["size"].dtype == "float64"
    _, strict = read_jsonl(str(tmp_path), ["color", "size"])  # without types: numbers only
    assert strict.malformed == 2


def test_a_number_sent_as_text_is_read_as_the_handler_read_it(tmp_path):
    """The handler scores " 12.5 " as 12.5 (mlops/config/values.py), and logs the raw text: the reader must
    keep that row, or served rows vanish from monitoring. Text that is no number is still refused."""
    (tmp_path / "m.jsonl").write_bytes(
        lines(
            request("r1", [[" 12.5 ", 1.0], ["3", "1e2"]], 2),
            {**request("r2", [], 1), "values": None, "features": {"a": "NA", "b": 2.0}, "rows": None},
            request("r3", [["twelve", 1.0]], 1),
        )
    )
    table, stats = read_jsonl(str(tmp_path), FEATURES, types={"a": "float", "b": "float"})
    assert table["b"].tolist() == [12.5, 3.0, 2.0] and table["a"].tolist()[:2] == [1.0, 100.0]
    assert math.isnan(table["a"][2]) and table["a"].dtype == "float64"  # "NA": a null, as served
    assert stats.malformed == 1 and "twelve" in stats.examples[0]
