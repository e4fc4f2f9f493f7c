"""The handler in-process, with a stand-in for TorchServe's context (TorchServe's real metrics cache)."""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
from pathlib import Path

import pytest
import torch

from serve import handler as serve_handler

FEATURES = ["a", "b", "c"]
METRICS_YAML = Path(serve_handler.__file__).parents[1] / "metrics.yaml"


class Request:
    def __init__(self, content_type="application/json"):
        self.headers = {"body": {"content-type": content_type}} if content_type else {}

    def get_request_properties(self):
        return self.headers


class Context:
    """What TorchServe 0.12 hands the handler: ids, headers, per-request status, a metrics cache."""

    model_name = "toy"

    def __init__(self, model_dir, n, content_types=None):
        from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

        self.system_properties = {"model_dir": str(model_dir)}
        self.manifest = {"model": {"serializedFile": "model.pt"}}
        types = content_types or ["application/json"] * n
        self.request_processor = [Request(t) for t in types]
        self.request_ids = {i: f"req-{i}" for i in range(n)}
        self.status: dict[int, tuple[int, str]] = {}
        self.metrics = MetricsCacheYamlImpl(config_file_path=str(METRICS_YAML))
        self.metrics.initialize_cache()
        self.metrics.model_name = self.model_name

    def set_response_status(self, code, phrase, idx):
        self.status[idx] = (code, phrase)

    def set_response_content_type(self, idx, value):
        assert value == "application/json"


def make_handler(model_dir: Path, **spec_extra) -> serve_handler.TabularHandler:
    spec = {
        "features": FEATURES,
        "classes": ["no", "yes"],
        "task": "classification",
        "schema": [{"name": f, "type": "float", "missing": "error"} for f in FEATURES],
        "model_version": "7",
        "max_batch_rows": 4,
    }
    (model_dir / "serve.json").write_text(json.dumps({**spec, **spec_extra}))
    handler = serve_handler.TabularHandler()
    handler.initialize(Context(model_dir, 1))
    return handler


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """A 3-feature linear model exported like the pipeline's."""
    torch.manual_seed(0)
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(tmp_path / "model.pt"))
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", "off")
    monkeypatch.setenv("MLOPS_METRICS_FLUSH_SECONDS", "0")  # counters emitted at once: lines to check
    monkeypatch.setenv("MLOPS_METRICS_MIN_ROWS", "1")  # per-row metrics released with each batch
    monkeypatch.delenv("MLOPS_SERVE_SPEC", raising=False)
    return tmp_path


@pytest.fixture
def toy(model_dir):
    return make_handler(model_dir), model_dir


def call(toy, *bodies, content_types=None):
    """Answers (parsed JSON) and statuses {idx: (code, phrase)} of one TorchServe batch."""
    handler, model_dir = toy
    context = Context(model_dir, len(bodies), content_types)
    out = handler.handle(
        [{"body": b if isinstance(b, bytes) else json.dumps(b).encode()} for b in bodies], context
    )
    return [json.loads(o) for o in out], context.status


def v2(rows, datatype="FP32", **extra):
    flat = [v for row in rows for v in row]
    return {
        "inputs": [{"name": "input-0", "shape": [len(rows), 3], "datatype": datatype, "data": flat}],
        **extra,
    }


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"a": True, "b": 1, "c": 2}, "a must be a number, got boolean"),
        ({"a": None, "b": 1, "c": 2}, "a is null (missing), which its missing policy 'error'"),
        ([1, [2], 3], "b must be a number, got array"),
        ({"a": 1e39, "b": 1, "c": 2}, "outside the float32 range"),
        ({"a": 1, "b": 2}, "expected 3 features, got 2; missing: c"),
        ({"a": 1, "b": 2, "c": 3, "d\u00e9\r\n": 4}, "unknown: 'd\\xe9\\r\\n'"),
    ],
)
def test_invalid_values_name_the_row_and_feature(toy, row, words):
    (answer,), status = call(toy, {"instances": [{"a": 1, "b": 2, "c": 3}, row]})
    assert status[0] == (400, "Bad Request")
    assert words in answer["error"] and answer["error"].startswith("row 1:")


def test_only_the_bad_request_of_a_batch_fails_and_results_match_the_model(toy):
    _, model_dir = toy
    good = {"instances": [{"c": 3.0, "a": 1.0, "b": 2.0}, [4.0, 5.0, 6.0]]}
    answers, status = call(toy, good, b'{"instances": [[1, 2, NaN]]}', {"instances": [[0, 0, 0]] * 5})
    assert status == {1: (400, "Bad Request"), 2: (413, "Payload Too Large")}
    assert answers[1] == {"error": "row 0: c must be finite, got nan", "status": 400}
    assert answers[2] == {"error": "batch of 5 rows exceeds the limit of 4 rows", "status": 413}
    model = torch.jit.load(str(model_dir / "model.pt"))
    expected = torch.softmax(model(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])).double(), dim=1)
    got = [[p["probabilities"]["no"], p["probabilities"]["yes"]] for p in answers[0]["predictions"]]
    assert torch.allclose(torch.tensor(got, dtype=torch.float64), expected, atol=1e-6)
    assert {p["model_version"] for p in answers[0]["predictions"]} == {"7"}


def test_open_inference_protocol_answers_like_the_row_format(toy):
    rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-1, 0, 2.5]]
    (by_rows, by_v2, nested), status = call(
        toy, {"instances": rows}, v2(rows, id="abc-1"), {"inputs": [{**v2(rows)["inputs"][0], "data": rows}]}
    )
    assert status == {}
    assert by_v2["model_name"] == "toy" and by_v2["model_version"] == "7" and by_v2["id"] == "abc-1"
    label, proba = by_v2["outputs"]
    assert label == {"name": "label", "shape": [3], "datatype": "BYTES", "data": label["data"]}
    assert label["data"] == [p["label"] for p in by_rows["predictions"]]
    assert proba["shape"] == [3, 2] and proba["datatype"] == "FP64"
    flat = [v for p in by_rows["predictions"] for v in (p["probabilities"]["no"], p["probabilities"]["yes"])]
    assert proba["data"] == flat
    assert nested["outputs"] == by_v2["outputs"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"inputs": []}, "one tensor of shape [n, 3], or one tensor of shape [n] per feature"),
        ({"inputs": [{"shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}, "must be [n, 3]"),
        ({"inputs": [{"shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, "has 3 values"),
        ({"inputs": [{"shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}, "numeric type"),
        (
            {"inputs": [{"shape": [1, 3], "datatype": "FP32", "data": [1, "x", 3]}]},
            "row 0: b must be a number",
        ),
        ({"inputs": [{"shape": [True, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, "must be [n, 3]"),
        ({"inputs": [], "instances": []}, "either"),
    ],
)
def test_open_inference_protocol_errors(toy, body, words):
    (answer,), status = call(toy, body)
    assert status[0][0] == 400 and words in answer["error"]


def test_v2_batch_over_the_row_limit_is_a_413(toy):
    (answer,), status = call(toy, v2([[1, 2, 3]] * 5))
    assert status[0] == (413, "Payload Too Large") and "exceeds the limit of 4 rows" in answer["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"instances": [{"a": 1, "b": 2, "c": 3, "a": 4}]}', "duplicated key 'a'"),
        (b'{"instances": [{"a": 1, "b": 2, "c": 3, "\\u0061": 4}]}', "duplicated key 'a'"),
        (b'{"instances": [[1, 2, 3]], "instances": [[4, 5, 6]]}', "duplicated key 'instances'"),
        (b'{"instances": [[1, 2, NaN]], "x": 1, "x": 2}', "duplicated key 'x'"),
        (b"[" * 10_000 + b"]" * 10_000, "malformed JSON"),
        (b"[" * 10_000 + b"NaN" + b"]" * 10_000, "nested too deeply"),
        (b'{"instances": [[1' + b"0" * 400 + b", 2, 3]]}", "malformed JSON"),
        (b'{"instances": [[1' + b"0" * 400 + b", 2, NaN]]}", "outside the float32 range"),
        (b'{"instances": [{"\\ud800": 1, "b": 2, "c": 3}]}', "malformed JSON"),
        (b'{"instances": [{"\\ud800": 1, "b": 2, "c": NaN}]}', "unknown: '\\ud800'"),
        (b"\xff\xfe{}", "malformed JSON"),
        ('{"instances": [{"平均半径": 1, "b": 2, "c": 3}]}'.encode(), "unknown: '\\u5e73\\u5747"),
    ],
)
def test_hostile_bodies_get_a_json_400_and_never_break_the_batch(toy, body, words):
    good = {"instances": [[1, 2, 3]]}
    (answer, ok), status = call(toy, body, good)
    assert status == {0: (400, "Bad Request")}
    assert words in answer["error"] and answer["error"].isascii()
    assert ok["predictions"][0]["model_version"] == "7"


def test_a_colon_inside_a_string_is_not_a_duplicate(toy):
    (answer,), status = call(toy, {"instances": [[1, 2, 3]], "note": "a:b:c"})
    assert status == {} and len(answer["predictions"]) == 1


def test_content_type_echo_stays_out_of_the_status_line(toy):
    (answer,), status = call(toy, {"instances": [[1, 2, 3]]}, content_types=["text/pl\u00e4in\r\nX: y"])
    assert status[0] == (415, "Unsupported Media Type")
    assert "send application/json" in answer["error"] and answer["error"].isascii()


class Steep(torch.nn.Module):
    """Logits of 10 x the feature sum: float32 overflows for features near the float32 maximum."""

    def forward(self, x):
        total = x.sum(dim=1, keepdim=True) * 10
        return torch.cat([total, -total], dim=1)


@pytest.fixture
def steep(model_dir):
    torch.jit.script(Steep()).save(str(model_dir / "model.pt"))
    return make_handler(model_dir), model_dir


def test_huge_float32_values_get_finite_probabilities(steep):
    handler, _ = steep
    assert not torch.isfinite(handler.model(torch.full((1, 3), 3e38))).all()  # float32 alone overflows
    rows = [[3e38, 3e38, 3e38], [-3e38, 3e38, -3e38], [1.0, 2.0, 3.0]]
    (rows_answer, v2_answer), status = call(steep, {"instances": rows}, v2(rows))
    assert status == {}
    assert [p["label"] for p in rows_answer["predictions"]] == ["no", "yes", "no"]
    for p in rows_answer["predictions"]:
        values = list(p["probabilities"].values())
        assert all(math.isfinite(v) for v in values) and abs(sum(values) - 1) < 1e-9
    assert all(math.isfinite(v) for v in v2_answer["outputs"][1]["data"])


def test_unscorable_rows_get_a_422_when_no_float64_model_exists(steep):
    handler, _ = steep
    handler.model64 = None
    (answer, ok), status = call(steep, {"instances": [[3e38, 3e38, 3e38]]}, {"instances": [[1, 2, 3]]})
    assert status == {0: (422, "Unprocessable")} and "not finite" in answer["error"]
    assert len(ok["predictions"]) == 1


def metric_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("[METRICS]")]


def test_out_of_range_values_are_served_flagged_logged_and_counted(model_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", str(tmp_path / "log"))
    ranges = {"a": [0, 10], "c": [None, 5]}
    handler = make_handler(model_dir, feature_ranges=ranges)
    caplog.set_level(logging.INFO)
    (answer,), status = call((handler, model_dir), {"instances": [[1, 2, 3], [-1, 2, 6], [11, 0, 0]]})
    assert status == {} and len(answer["predictions"]) == 3
    [log] = (tmp_path / "log").glob("toy-*.jsonl")
    [record] = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["out_of_range"] == {"1": ["a", "c"], "2": ["a"]}  # row index in the request
    lines = metric_lines(caplog)
    assert any(m.startswith("[METRICS]OutOfRangeValues.Count:2|#ModelName:toy,Feature:a") for m in lines)
    assert any(m.startswith("[METRICS]OutOfRangeValues.Count:1|#ModelName:toy,Feature:c") for m in lines)
    assert any(m.startswith("[METRICS]RowsServed.Count:3|#ModelName:toy,Protocol:rows") for m in lines)


def test_metrics_count_rejects_by_reason_and_the_predicted_class_mix(toy, caplog):
    caplog.set_level(logging.INFO)
    call(
        toy,
        b"{",
        {"instances": [[1, 2, 3]] * 2},
        v2([[1, 2, 3]]),
        b'{"instances": [[1, 2, 3]], "instances": [[4, 5, 6]]}',
    )
    lines = metric_lines(caplog)
    assert (
        sum(
            m.startswith("[METRICS]RequestsRejected.Count:1|#ModelName:toy,Reason:malformed_json")
            for m in lines
        )
        == 1
    )
    assert any(
        m.startswith("[METRICS]RequestsRejected.Count:1|#ModelName:toy,Reason:duplicate_key") for m in lines
    )
    assert any(m.startswith("[METRICS]RowsServed.Count:1|#ModelName:toy,Protocol:v2") for m in lines)
    mix = [m for m in lines if m.startswith("[METRICS]PredictedClass")]
    assert sum(int(m.split(":")[1].split("|")[0]) for m in mix) == 3


def test_counters_are_summed_and_emitted_once_per_flush(model_dir, monkeypatch, caplog):
    monkeypatch.setenv("MLOPS_METRICS_FLUSH_SECONDS", "3600")  # the background flush never comes here
    handler = make_handler(model_dir)
    caplog.set_level(logging.INFO)
    for _ in range(3):
        call((handler, model_dir), {"instances": [[1, 2, 3], [4, 5, 6]]}, b"{")
    lines = metric_lines(caplog)
    assert not [m for m in lines if m.startswith(("[METRICS]RowsServed", "[METRICS]RequestsRejected"))]
    assert sum(m.startswith("[METRICS]HandlerSeconds") for m in lines) == 1  # sampled: one per 360 s
    handler.metrics.flush()
    lines = metric_lines(caplog)
    [rows] = [m for m in lines if m.startswith("[METRICS]RowsServed")]
    assert rows.startswith("[METRICS]RowsServed.Count:6|#ModelName:toy,Protocol:rows")
    assert sum(m.startswith("[METRICS]RequestsRejected.Count:3|") for m in lines) == 1


def test_per_row_metrics_wait_until_enough_rows_hide_each_request(model_dir, monkeypatch, caplog):
    """The metrics port has no token: one request's predicted class or out-of-range feature never shows
    alone; they are released together once `min_rows` rows were served (100 by default)."""
    monkeypatch.delenv("MLOPS_METRICS_MIN_ROWS")
    handler = make_handler(model_dir, feature_ranges={"a": [0, 10]})
    assert handler.metrics.min_rows == 100
    caplog.set_level(logging.INFO)
    call((handler, model_dir), {"instances": [[-1, 2, 3]]})
    lines = metric_lines(caplog)
    assert any(m.startswith("[METRICS]RowsServed.Count:1|") for m in lines)  # a count, no content
    assert not [m for m in lines if m.startswith(("[METRICS]PredictedClass", "[METRICS]OutOfRange"))]
    for _ in range(98):
        call((handler, model_dir), {"instances": [[1, 2, 3]]})
    assert not [m for m in metric_lines(caplog) if m.startswith("[METRICS]PredictedClass")]
    call((handler, model_dir), {"instances": [[1, 2, 3]]})  # the 100th row releases all of them
    lines = metric_lines(caplog)
    mix = [m for m in lines if m.startswith("[METRICS]PredictedClass")]
    assert sum(int(m.split(":")[1].split("|")[0]) for m in mix) == 100
    assert any(m.startswith("[METRICS]OutOfRangeValues.Count:1|#ModelName:toy,Feature:a") for m in lines)


def test_every_row_is_on_disk_when_handle_returns(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", str(tmp_path / "log"))
    handler = make_handler(model_dir)
    call((handler, model_dir), {"instances": [[1, 2, 3], {"a": 4, "b": 5, "c": 6}]}, b"bad", v2([[7, 8, 9]]))
    [log] = (tmp_path / "log").glob("toy-*.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]  # no flush, no stop: on disk now
    assert [r["values"] for r in records] == [[[1, 2, 3], [4, 5, 6]], [7, 8, 9]]  # as sent: rows, v2 flat
    assert set(records[0]) == {
        *("ts", "request_id", "model_version", "features", "rows", "values"),
        *("prediction", "classes", "probabilities"),
    }
    from monitoring.inference_log import read_jsonl

    table, stats = read_jsonl(
        str(tmp_path / "log"), FEATURES, keys=("request_id", "prediction"), classes=("no", "yes")
    )
    assert table[FEATURES].to_numpy().tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert table["request_id"].tolist() == ["req-0", "req-0", "req-2"] and stats.malformed == 0
    assert table["prediction"].isin(["no", "yes"]).all()
    assert ((table["proba_no"] + table["proba_yes"]) - 1).abs().max() < 1e-12


def test_the_log_rotates_by_size_and_age_into_gzip_files_and_keeps_a_bounded_number(tmp_path):
    import time

    log = serve_handler.InferenceLog(
        str(tmp_path), "toy", rotate_bytes=100, rotate_seconds=3600, keep_files=2, compress=True
    )
    line = b'{"features": {"a": 1}}\n'  # 23 bytes: 5 lines reach 100 bytes
    for _ in range(21):
        assert log.write(line, 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(list(tmp_path.glob("*.jsonl"))) > 1:
        time.sleep(0.05)
    time.sleep(0.2)
    live = sorted(tmp_path.glob("*.jsonl"))
    rotated = sorted(tmp_path.glob("*.jsonl.gz"))
    assert len(live) == 1 and len(rotated) == 2  # 4 rotations of 5 lines; the 2 oldest deleted
    assert all(gzip.decompress(p.read_bytes()) == line * 5 for p in rotated)
    assert live[0].read_bytes() == line
    assert not list(tmp_path.glob("*.partial"))
    assert all(p.name.startswith(f"toy-{os.uname().nodename}-{os.getpid()}-") for p in live + rotated)
    log.rotate_seconds = 0  # age: the next write opens a new file
    assert log.write(line, 1)
    assert log.path != str(live[0])


def test_an_unwritable_log_dir_never_stops_serving(model_dir, tmp_path, monkeypatch, caplog, capfd):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log directory should be")
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", str(blocker / "inference"))
    handler = make_handler(model_dir)  # loads although the directory cannot be created
    caplog.set_level(logging.INFO)
    (answer,), status = call((handler, model_dir), {"instances": [[1, 2, 3], [4, 5, 6]]})
    assert status == {} and len(answer["predictions"]) == 2
    assert "WARNING inference log: 2 rows NOT written" in capfd.readouterr().err
    assert any(m.startswith("[METRICS]InferenceLogWriteFailures.Count:2|") for m in metric_lines(caplog))
    blocker.unlink()  # fixed: the next write after the retry delay logs again
    handler.log._retry_at = 0
    call((handler, model_dir), {"instances": [[1, 2, 3]]})
    assert len(list((blocker / "inference").glob("*.jsonl"))) == 1


def test_params_reach_the_handler_through_the_spec_environment(model_dir, monkeypatch):
    monkeypatch.setenv("MLOPS_SERVE_SPEC", json.dumps({"feature_ranges": {"b": [0, 1]}, "max_batch_rows": 2}))
    handler = make_handler(model_dir)
    assert handler.max_rows == 2 and handler.hi.tolist() == [math.inf, 1.0, math.inf]


def test_log_records_are_valid_json_whatever_the_names_and_values():
    names = ['with "quotes"', "100% sure", "ünï\u2028code", "back\\slash"]
    records = serve_handler.LogRecords(names, ["a%s", 'b"'], 'v"1')
    raw = [[1.5, "\ud800 lone", None, 10**30], [True, 2.0, -5.25, 1.0]]  # what orjson refuses too
    line = records.record(
        b'"2026-01-01T00:00:00.000Z"',
        'id"%',
        raw,
        2,
        ['b"', "a%s"],
        [0.25, 0.75, 1.0, 0.0],
        {1: ["100% sure"]},
    )
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "ts": "2026-01-01T00:00:00.000Z",
        "request_id": 'id"%',
        "model_version": 'v"1',
        "features": names,
        "classes": ["a%s", 'b"'],
        "rows": 2,
        "values": [[1.5, "\ud800 lone", None, 10**30], [True, 2.0, -5.25, 1.0]],
        "prediction": ['b"', "a%s"],
        "probabilities": [0.25, 0.75, 1.0, 0.0],
        "out_of_range": {"1": ["100% sure"]},
    }


def test_v2_values_are_logged_from_the_parsed_tensor(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", str(tmp_path / "log"))
    handler = make_handler(model_dir)
    tensor = b'{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2.50, 3e0]}'
    bodies = [
        b'{"inputs": [' + tensor + b"]}",
        b'{"id": "\\"data\\": [9, 9, 9]", "inputs": [' + tensor + b"]}",  # in a string: not a key
        b'{"parameters": {"data": [9, 9, 9]}, "inputs": [' + tensor + b"]}",  # another object's key
        b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1,\n2, 3]}]}',
    ]
    _, status = call((handler, model_dir), *bodies)
    assert status == {}
    [log] = (tmp_path / "log").glob("toy-*.jsonl")
    lines = log.read_bytes().splitlines()
    assert len(lines) == 4 and b'"values":[1,2.5,3.0]' in lines[0]  # serialised from the parsed list
    assert [json.loads(line)["values"] for line in lines] == [[1, 2.5, 3.0]] * 3 + [[1, 2, 3]]
