"""Request parsing with hard bounds: bodies built to stall the worker, a decoy `data` member, ragged and
mistyped v2 tensors, and a property test over worst-case JSON shapes.

The handler runs in-process (tests/serve/test_handler.py's stand-in context). Work is measured as the
peak of Python allocations during the call (tracemalloc), never as time: a body refused before it is
parsed allocates less than its own size, whatever its shape.
"""

from __future__ import annotations

import json
import math
import tracemalloc

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from serve import handler as serve_handler
from tests.serve.test_handler import Context, make_handler
from tests.serve.test_handler_schema import make as make_mixed

ROW = {"a": 1.5, "b": -2.0, "c": 3.25}


class Recorder:
    """Wraps the model: keeps the float32 tensor each batch was scored on."""

    def __init__(self, model):
        self.model, self.seen = model, []

    def __call__(self, x):
        self.seen.append(x.clone())
        return self.model(x)


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """A 3-feature linear model (as tests/serve/test_handler.py's), no log unless a test sets one."""
    torch.manual_seed(0)
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(tmp_path / "model.pt"))
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", "off")
    monkeypatch.setenv("MLOPS_METRICS_FLUSH_SECONDS", "0")
    monkeypatch.delenv("MLOPS_SERVE_SPEC", raising=False)
    return tmp_path


@pytest.fixture
def toy(model_dir):
    return make_handler(model_dir), model_dir


@pytest.fixture
def logged(model_dir, tmp_path, monkeypatch):
    """A toy handler (3 features, 4 rows at most) that logs, with the model's inputs recorded."""
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", str(tmp_path / "log"))
    handler = make_handler(model_dir)
    handler.model = Recorder(handler.model)
    return handler, model_dir


def handle(toy, *bodies):
    """[(status, parsed answer)] of one TorchServe batch, and the peak bytes Python allocated for it."""
    handler, model_dir = toy
    context = Context(model_dir, len(bodies))
    tracemalloc.start()
    try:
        out = handler.handle([{"body": b} for b in bodies], context)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return [(context.status.get(i, (200, "OK"))[0], json.loads(o)) for i, o in enumerate(out)], peak


def records(model_dir) -> list[dict]:
    return [
        json.loads(line) for p in (model_dir / "log").glob("*.jsonl") for line in p.read_text().splitlines()
    ]


def junk_body(unit: bytes, size: int) -> bytes:
    """A valid row plus a `junk` member of `unit` repeated to about `size` bytes."""
    junk = b"[" + unit * (size // (len(unit) + 1)) + b"[]]"
    return b'{"instances": [' + json.dumps(ROW).encode() + b'], "junk": ' + junk + b"}"


@pytest.mark.parametrize("unit", [b"[[0]],", b"[],", b'{"a":[1]},', b'"x:y",', b'{"a":0,"a":1},'])
def test_the_stalling_body_is_refused_before_it_is_built_and_its_batch_is_served(toy, unit):
    body = junk_body(unit, 2_800_000)
    good = json.dumps({"instances": [[1, 2, 3]]}).encode()
    deserves_400 = b'{"instances": [[1, 2, "x"]]}'
    answers, peak = handle(toy, body, good, deserves_400)
    assert [status for status, _ in answers] == [413, 200, 400]
    assert "more than 65536 JSON values" in answers[0][1]["error"] and answers[0][1]["status"] == 413
    assert len(answers[1][1]["predictions"]) == 1 and "must be a number" in answers[2][1]["error"]
    assert peak < len(body) // 4  # nothing of the junk was built (parsing it took 20 to 60 bytes per byte)


def test_junk_under_the_bound_is_parsed_once_and_the_row_served(toy):
    body = junk_body(b"[[0]],", 150_000)  # 50k containers and values: under the 65536 bound
    (answer,), peak = handle(toy, body)
    assert answer[0] == 200 and len(answer[1]["predictions"]) == 1
    assert peak < 200 * (body.count(b"[") + body.count(b",")) < 200 * 65536  # about 100 bytes a value


@pytest.mark.parametrize("decoy", ["[0, 0, 0]", "[null, null, null]", '"[9, 9, 9]"'])
def test_the_log_holds_the_values_that_were_scored_not_a_decoy(logged, decoy):
    handler, model_dir = logged
    tensor = '{"name": "x", "shape": [1, 3], "datatype": "FP32", "d\\u0061ta": [1.5, 2.0, 3.25]'
    body = ('{"inputs": [' + tensor + ', "parameters": {"data": ' + decoy + "}}]}").encode()
    [(status, answer)], _ = handle(logged, body)
    assert status == 200 and answer["outputs"][0]["shape"] == [1]
    [record] = records(model_dir)
    assert record["values"] == [1.5, 2.0, 3.25]
    assert handler.model.seen[-1].tolist() == [[1.5, 2.0, 3.25]]


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        ({"shape": [3, 3], "data": [[1, 2], [1, 2, 3, 4], [1, 2, 3]]}, "has 2 values in row 0"),
        ({"shape": [3, 3], "data": [[1, 2, 3, 4], [1, 2], [1, 2, 3]]}, "has 4 values in row 0"),
        ({"shape": [3, 3], "data": [[1, 2, 3], [1, 2, 3]]}, "has 2 row(s), shape [3, 3] needs 3 rows"),
        ({"shape": [1, 3], "data": [[1, 2, 3], [4, 5, 6]]}, "has 2 row(s)"),
        ({"shape": [2, 3], "data": [[1, 2, 3], 4, 5, 6]}, "mixes rows and numbers"),
        ({"shape": [1, 3], "data": [[[1, 2, 3]]]}, "has 1 values in row 0"),
        ({"shape": [1, 3], "data": [1, [2], 3]}, "row 0: b must be a number (FP32), got array"),
        ({"shape": [2, 3], "data": [1, 2, 3, 4, 5]}, "has 5 values, shape [2, 3] needs 6"),
    ],
)
def test_ragged_and_mismatched_tensors_get_a_400(toy, tensor, words):
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", **tensor}]}).encode()
    [(status, answer)], _ = handle(toy, body)
    assert status == 400 and words in answer["error"], answer


@pytest.mark.parametrize(
    ("datatype", "value", "words"),
    [
        ("FP16", 70000, "b is outside the FP16 range [-65504, 65504], got int 70000"),
        ("FP16", -65505.0, "outside the FP16 range"),
        ("INT64", 11.41, "b must be an integer (INT64), got float 11.41"),
        ("INT64", True, "b must be an integer (INT64), got boolean"),
        ("INT64", 2**63, "outside the INT64 range"),
        ("INT32", 2**31, "outside the INT32 range"),
        ("INT8", -129, "outside the INT8 range [-128, 127]"),
        ("UINT8", -5, "b is outside the UINT8 range [0, 255], got int -5"),
        ("UINT64", -1, "outside the UINT64 range"),
        ("FP32", "1.5", "b must be a number (FP32), got string"),
        ("BOOL", True, 'input "datatype" must be a numeric type'),
        ("BYTES", "x", 'input "datatype" must be a numeric type'),
    ],
)
def test_numeric_datatypes_hold_numbers_of_their_range(toy, datatype, value, words):
    data = [1, value, 3]
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": datatype, "data": data}]})
    [(status, answer)], _ = handle(toy, body.encode())
    assert status == 400 and words in answer["error"] and answer["error"].startswith(("row 0:", "input")), (
        answer
    )


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("FP16", [65504, -65504.0, 0.5]),
        ("INT64", [1, 3.0, -(2**63)]),
        ("UINT64", [0, 2**64 - 1, 7]),
        ("INT8", [127, -128, 0]),
    ],
)
def test_values_within_a_datatype_are_served_as_sent(logged, datatype, data):
    handler, model_dir = logged
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": datatype, "data": data}]})
    [(status, _)], _ = handle(logged, body.encode())
    assert status == 200
    assert records(model_dir)[-1]["values"] == data
    assert handler.model.seen[-1].tolist() == [torch.tensor(data, dtype=torch.float64).float().tolist()]


MIXED = {"size": 3.5, "color": "green", "fresh": True, "count": 2}
MIXED_TYPES = {"size": "FP32", "color": "BYTES", "fresh": "BOOL", "count": "INT64"}


def columns(**change):
    """A one-row v2 request, one input per feature, for the mixed schema; change: {name: (type, value)}."""
    inputs = []
    for name, value in MIXED.items():
        datatype, value = change.get(name, (MIXED_TYPES[name], value))
        inputs.append({"name": name, "shape": [1], "datatype": datatype, "data": [value]})
    return json.dumps({"inputs": inputs}).encode()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"size": ("BYTES", "3.5")},
            "input 'size': datatype BYTES is for category features, and size is a float",
        ),
        ({"count": ("BYTES", "2")}, "datatype BYTES is for category features, and count is a int feature"),
        (
            {"fresh": ("BYTES", "true")},
            "datatype BYTES is for category features, and fresh is a bool feature",
        ),
        ({"color": ("BYTES", 1)}, "input 'color': row 0: color must be a string (BYTES), got int 1"),
        ({"fresh": ("BOOL", 1)}, "input 'fresh': row 0: fresh must be true or false (BOOL), got int 1"),
        ({"size": ("BOOL", True)}, "datatype BOOL is for bool features, and size is a float feature"),
        ({"color": ("BOOL", True)}, "send its values as BYTES"),
        ({"color": ("FP32", "green")}, "row 0: color must be a number (FP32), got string 'green'"),
        ({"count": ("INT64", 2.5)}, "row 0: count must be an integer (INT64), got float 2.5"),
        ({"count": ("UINT8", 256)}, "row 0: count is outside the UINT8 range [0, 255]"),
    ],
)
def test_mixed_schema_datatypes_feed_only_the_features_they_fit(tmp_path, monkeypatch, change, words):
    toy = make_mixed(tmp_path, monkeypatch)
    [(status, answer)], _ = handle(toy, columns(**change))
    assert status == 400 and words in answer["error"], answer


@pytest.mark.parametrize(
    "change",
    [{}, {"color": ("INT64", 1)}, {"fresh": ("UINT8", 1)}, {"size": ("INT64", 3)}, {"size": ("FP32", None)}],
)
def test_mixed_schema_accepts_the_datatypes_that_fit(tmp_path, monkeypatch, change):
    toy = make_mixed(tmp_path, monkeypatch)
    [(status, answer)], _ = handle(toy, columns(**change))
    assert status == 200 and answer["outputs"][0]["shape"] == [1], answer


def test_nested_column_data_needs_shape_n_by_1(tmp_path, monkeypatch):
    toy = make_mixed(tmp_path, monkeypatch)
    body = json.loads(columns())
    body["inputs"][0]["data"] = [[3.5]]  # shape [1] with nested data
    [(status, answer)], _ = handle(toy, json.dumps(body).encode())
    assert status == 400 and "data must be flat, or [[x], ...] for shape [n, 1]" in answer["error"]
    body["inputs"][0]["shape"] = [1, 1]
    [(status, _)], _ = handle(toy, json.dumps(body).encode())
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [[1, 2, 3]], "note": "a:b", "note": "c"}',  # a colon in a string hides nothing
        b'{"instances": [[1, 2, 3]], "n": "\\":", "n": 1}',  # nor one after an escaped quote
        b'{"instances": [[1, 2, 3]], "n": "\\\\", "\\u006e": {"x:": 1}}',
        b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3],'
        b' "parameters": {"k": {"k": {"k": {"k": 1, "\\u006b": 2}}}}}]}',
    ],
)
@pytest.mark.parametrize("many", [False, True])  # few containers: read one by one; many: counted in C
def test_duplicates_are_found_whatever_strings_and_escapes_surround_them(toy, body, many):
    if many:
        body = body[:-1] + b', "many": [' + b",".join([b'[{"k": "v:"}]'] * 1000) + b"]}"
    [(status, answer)], _ = handle(toy, body)
    assert status == 400 and "duplicated key" in answer["error"], answer
    fixed = body.replace(b'"note": "c"', b'"note2": "c"').replace(b'"n": 1', b'"m": 1')
    fixed = fixed.replace(b'"\\u006e"', b'"m"').replace(b'"\\u006b": 2', b'"j": 2')
    [(status, answer)], _ = handle(toy, fixed)
    assert status == 200, answer  # the same text without the duplicate is served


@pytest.mark.parametrize("many", [False, True])
def test_nesting_deeper_than_the_bound_is_refused_under_orjsons_own_limit(toy, many):
    ok = serve_handler.MAX_DEPTH - 3  # {"instances": [...], "p": <depth d>}: the body is d + 1 deep
    junk = b", ".join([b'{"a": [0]}'] * (1000 if many else 1))
    deep = b'{"instances": [[1, 2, 3]], "junk": [' + junk + b'], "p": ' + b"[" * ok + b"]" * ok + b"}"
    too_deep = deep.replace(b"[" * ok, b"[" * (ok + 3)).replace(b"]" * ok, b"]" * (ok + 3))
    answers, _ = handle(toy, deep, too_deep)
    assert [status for status, _ in answers] == [200, 400]
    assert f"nested too deeply (more than {serve_handler.MAX_DEPTH} levels)" in answers[1][1]["error"]


# -- property: worst-case shapes ---------------------------------------------------------------------
class Obj(list):
    """A JSON object as (key, value) pairs: duplicates allowed."""


class Raw(bytes):
    """JSON text written as it is."""


def dump(value, escape) -> bytes:
    if isinstance(value, Raw):
        return bytes(value)
    if isinstance(value, Obj):
        return b"{" + b",".join(escape(k) + b":" + dump(v, escape) for k, v in value) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(dump(v, escape) for v in value) + b"]"
    return json.dumps(value).encode()


def objects(value):
    """Every Obj in a tree (the places a duplicate can go)."""
    if isinstance(value, Obj):
        yield value
        for _, v in value:
            yield from objects(v)
    elif isinstance(value, list) and not isinstance(value, Raw):
        for v in value:
            yield from objects(v)


def nest(depth: int, leaf) -> object:
    for i in range(depth):
        leaf = Obj([("k", leaf)]) if i % 2 else [leaf]
    return leaf


UNITS = [
    b"[]",
    b"[[0]]",
    b'{"a":0}',
    b'{"a":0,"a":1}',
    b'"x:y"',
    b'"\\":"',
    b"0.5",
    b'{"\\u0061":[1]}',
    b'"[,{"',
]
values = st.floats(-1e6, 1e6, allow_subnormal=False)
rows = st.lists(st.lists(values, min_size=3, max_size=3), min_size=1, max_size=4)


@st.composite
def requests(draw):
    """(JSON text, the rows it carries, whether a generated defect makes it invalid)."""
    data = draw(rows)
    form = draw(st.sampled_from(["rows", "named", "v2", "v2-nested"]))
    if form in ("rows", "named"):
        instances = data if form == "rows" else [Obj(zip("abc", r, strict=True)) for r in data]
        doc = Obj([("instances", instances)])
    else:
        flat = [v for r in data for v in r] if form == "v2" else data
        tensor = Obj([("name", "x"), ("shape", [len(data), 3]), ("datatype", "FP32"), ("data", flat)])
        if draw(st.booleans()):
            tensor.append(("parameters", Obj([("data", [0] * len(flat))])))  # a decoy
        doc = Obj([("inputs", [tensor])])
    extras = draw(st.lists(st.sampled_from(["deep", "wide", "dup"]), max_size=3))
    for extra in extras:
        if extra == "deep":
            depth = draw(st.sampled_from([5, 28, 29, 30, 31, 32, 40, 200, 1100]))
            leaf = draw(st.sampled_from([0, "s", Obj()]))
            deep = nest(depth, leaf) if depth < 100 else Raw(b"[" * depth + b"]" * depth)
            doc.append((f"deep{len(doc)}", deep))
        elif extra == "wide":
            unit, count = draw(st.sampled_from(UNITS)), draw(st.sampled_from([10, 3000, 40000, 70000]))
            doc.append((f"wide{len(doc)}", Raw(b"[" + b",".join([unit] * count) + b"]")))
        else:
            target = draw(st.sampled_from(list(objects(doc))))
            if target:
                key = draw(st.sampled_from([k for k, _ in target]))
                target.append((key, draw(st.sampled_from([0, "x:y", [1, 2, 3], Obj([("a", 1)])]))))
    # keys written with \u escapes at random: the same key to any parser, other bytes in the text
    mask = draw(st.lists(st.booleans(), min_size=8, max_size=8))
    counter = iter(range(1 << 30))

    def escape(key: str) -> bytes:
        if not mask[next(counter) % 8]:
            return json.dumps(key).encode()
        return ('"' + "".join(f"\\u{ord(c):04x}" for c in key) + '"').encode()

    return dump(doc, escape), data, form


def oracle(text: bytes, max_nodes: int) -> set[str]:
    """What the standard library says is wrong with the text: a duplicate, nesting, size."""
    wrong = set()
    if text.count(b"[") + text.count(b"{") + text.count(b",") > max_nodes:
        wrong.add("too_many")

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            wrong.add("duplicate")
        # every value, a duplicated key's earlier ones too: the handler bounds the depth of all of them
        return dict(enumerate(v for _, v in items))

    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        wrong.add("deep")
        return wrong
    depth, stack = 0, [(doc, 1)]
    while stack:
        obj, d = stack.pop()
        if isinstance(obj, (dict, list)):
            depth = max(depth, d)
            stack += [(v, d + 1) for v in (obj.values() if isinstance(obj, dict) else obj)]
    if depth > serve_handler.MAX_DEPTH:
        wrong.add("deep")
    return wrong


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    import os

    model_dir = tmp_path_factory.mktemp("bounds")
    torch.manual_seed(0)
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(model_dir / "model.pt"))
    os.environ["MLOPS_INFERENCE_LOG_DIR"] = str(model_dir / "log")
    try:
        handler = make_handler(model_dir)
    finally:
        del os.environ["MLOPS_INFERENCE_LOG_DIR"]
    handler.model = Recorder(handler.model)
    return handler, model_dir


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
@example(
    request=(
        b'{"instances": [[0, 0, 0]], "p": ' + b"[" * 1100 + b"]" * 1100 + b', "p": 0}',
        [[0, 0, 0]],
        "rows",
    )
)
def test_any_shape_gets_a_json_refusal_or_the_right_prediction_in_bounded_work(recorded, request):
    handler, model_dir = recorded
    text, data, form = request
    wrong = oracle(text, handler.max_nodes)
    before = len(handler.model.seen)
    [(status, answer)], peak = handle(recorded, text)
    nodes = min(text.count(b"[") + text.count(b"{") + text.count(b","), handler.max_nodes)
    assert peak < 400 * nodes + 2 * len(text) + (1 << 20)  # bounded by the node bound, not the shape
    if wrong:
        assert status in (400, 413) and answer["status"] == status and answer["error"].isascii()
        words = {"too_many": "JSON values", "duplicate": "duplicated key", "deep": "nested too deeply"}
        expected = [words[w] for w in wrong] + ["malformed JSON"] * ("deep" in wrong)
        assert any(w in answer["error"] for w in expected), (wrong, answer)
        assert len(handler.model.seen) == before  # nothing refused was scored
        return
    assert status == 200, answer
    scored = handler.model.seen[-1]
    logged = records(model_dir)[-1]["values"]
    flat = [v for r in logged for v in r] if form in ("rows", "named", "v2-nested") else logged
    assert flat == [v for r in data for v in r]  # the log holds what the client sent ...
    assert scored.flatten().tolist() == torch.tensor(flat, dtype=torch.float64).float().tolist()  # ... scored
    with torch.inference_mode():
        proba = torch.softmax(handler.model.model(scored).double(), dim=1)
    got = (
        answer["outputs"][1]["data"]
        if form.startswith("v2")
        else [p for row in answer["predictions"] for p in row["probabilities"].values()]
    )
    assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(got, proba.flatten().tolist(), strict=True))
