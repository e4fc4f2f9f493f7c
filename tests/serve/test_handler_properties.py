"""Property-based: for ANY request, a 2xx or a 4xx with a JSON body, and batching changes no answer.

The handler runs in-process (tests/serve/test_handler.py's stand-in context, TorchServe's real metrics
cache). Each generated TorchServe batch is also replayed request by request: every request must get
the same status and body in the batch as alone, so a hostile neighbour can never hurt a good request.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.test_handler import FEATURES, Context, make_handler

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

any_text = st.text(st.characters(codec=None), max_size=12)  # surrogates, CR/LF, zero-width, CJK ...
numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([3e38, -3e38, 3.4028235e38, 1e39, 0.0, -0.0, 5e-324]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, any_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(any_text, st.sampled_from(FEATURES)), inner, max_size=4),
    ),
    max_leaves=12,
)
names = st.one_of(st.sampled_from(FEATURES), any_text)
named_row = st.dictionaries(names, st.one_of(numbers, json_values), min_size=0, max_size=5)
array_row = st.lists(st.one_of(numbers, json_values), min_size=0, max_size=4)
good_row = st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3)
rows_body = st.fixed_dictionaries(
    {"instances": st.lists(st.one_of(named_row, array_row, good_row), max_size=6)}
)
v2_body = st.fixed_dictionaries(
    {
        "inputs": st.lists(
            st.fixed_dictionaries(
                {
                    "name": any_text,
                    "shape": st.one_of(st.lists(st.integers(-2, 7), max_size=3), json_values),
                    "datatype": st.one_of(
                        st.sampled_from(["FP32", "FP64", "INT64", "BOOL", "BYTES"]), any_text
                    ),
                    "data": st.one_of(st.lists(st.one_of(numbers, json_values), max_size=24), json_values),
                }
            ),
            max_size=2,
        )
    },
    optional={"id": json_values},
)


def encode(doc) -> bytes:
    """JSON text as a client would send it: NaN/Infinity tokens, \\ud800 escapes for lone surrogates."""
    return json.dumps(doc, allow_nan=True).encode()


def good_v2(rows):
    return encode(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [len(rows), 3],
                    "datatype": "FP32",
                    "data": [v for row in rows for v in row],
                }
            ]
        }
    )


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(encode),
    rows_body.map(encode),
    v2_body.map(encode),
    st.lists(good_row, min_size=1, max_size=5).map(lambda rows: encode({"instances": rows})),
    st.lists(good_row, min_size=1, max_size=5).map(good_v2),
    st.binary(max_size=50).map(lambda b: b'{"instances": [[1, 2, 3]]' + b),  # truncated / trailing junk
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
)
content_types = st.one_of(st.just("application/json"), st.just(None), any_text)


@pytest.fixture(scope="module")
def handler(tmp_path_factory):
    import os

    import torch

    model_dir = tmp_path_factory.mktemp("toy")
    torch.manual_seed(0)
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(model_dir / "model.pt"))
    os.environ["MLOPS_INFERENCE_LOG_DIR"] = str(model_dir / "log")
    try:
        return make_handler(model_dir, feature_ranges={"a": [0, 10]}), model_dir
    finally:
        del os.environ["MLOPS_INFERENCE_LOG_DIR"]


def run(handler, model_dir, requests):
    """One TorchServe batch: [(status, phrase, parsed body)] per request."""
    context = Context(model_dir, len(requests), [ct for _, ct in requests])
    out = handler.handle([{"body": body} for body, _ in requests], context)
    assert isinstance(out, list) and len(out) == len(requests)
    answers = []
    for idx, raw in enumerate(out):
        status, phrase = context.status.get(idx, (200, "OK"))
        assert isinstance(raw, bytes)
        answers.append((status, phrase, json.loads(raw)))
    return answers


def same(a, b) -> bool:
    """Equal answers; probabilities may differ in the last bits between batch sizes (BLAS kernels)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a if k != "id")
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_answer(status, phrase, body) -> None:
    assert status == 200 or 400 <= status < 500, status
    assert phrase.isascii() and "\r" not in phrase and "\n" not in phrase
    assert isinstance(body, dict)
    if status == 200:
        assert "predictions" in body or "outputs" in body
        probabilities = (
            [v for p in body["predictions"] for v in p["probabilities"].values()]
            if "predictions" in body
            else body["outputs"][1]["data"]
        )
        assert all(isinstance(v, float) and 0 <= v <= 1 for v in probabilities)
    else:
        assert body["status"] == status and isinstance(body["error"], str) and body["error"].isascii()


def answered_as_if_alone(handler_, model_dir, batch) -> None:
    """Each request of the batch gets a JSON 2xx/4xx equal to what it gets when sent alone."""
    together = run(handler_, model_dir, batch)
    for request, answer in zip(batch, together, strict=True):
        check_answer(*answer)
        alone = run(handler_, model_dir, [request])[0]
        assert answer[:2] == alone[:2] and same(answer[2], alone[2])


@PROPERTY_SETTINGS
@given(batch=st.lists(st.tuples(bodies, content_types), min_size=1, max_size=6))
def test_any_batch_gets_json_2xx_or_4xx_and_each_request_as_if_alone(handler, batch):
    handler_, model_dir = handler
    answered_as_if_alone(handler_, model_dir, batch)


@PROPERTY_SETTINGS
@given(
    rows=st.lists(good_row, min_size=1, max_size=4),
    bad=st.lists(bodies, min_size=1, max_size=5),
    data=st.data(),
)
def test_good_requests_mixed_with_anything_are_served(handler, rows, bad, data):
    handler_, model_dir = handler
    good = encode({"instances": rows})
    position = data.draw(st.integers(0, len(bad)))
    batch = [(b, "application/json") for b in bad]
    batch.insert(position, (good, "application/json"))
    status, _, body = run(handler_, model_dir, batch)[position]
    assert status == 200 and len(body["predictions"]) == len(rows)
    assert same(body, run(handler_, model_dir, [(good, "application/json")])[0][2])


# -- a mixed schema: category strings, booleans, nulls where the column imputes -------------------------
MIXED = ["size", "color", "fresh", "count"]
mixed_value = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.sampled_from(["red", "green", "blue", "purple", ""]),
    any_text,
    json_values,
)
good_mixed_row = st.fixed_dictionaries(
    {
        "size": st.one_of(st.none(), st.floats(-1e6, 1e6)),
        "color": st.one_of(st.none(), st.sampled_from(["red", "green", "blue"]), any_text),
        "fresh": st.booleans(),
        "count": st.integers(-1000, 1000),
    }
)
mixed_named_row = st.dictionaries(st.one_of(st.sampled_from(MIXED), any_text), mixed_value, max_size=5)
mixed_array_row = st.lists(mixed_value, min_size=3, max_size=5)
mixed_column = st.fixed_dictionaries(
    {
        "name": st.one_of(st.sampled_from(MIXED), any_text),
        "shape": st.one_of(st.lists(st.integers(-1, 4), max_size=2), json_values),
        "datatype": st.one_of(st.sampled_from(["FP32", "INT64", "BOOL", "BYTES"]), any_text),
        "data": st.one_of(st.lists(mixed_value, max_size=4), json_values),
    }
)
mixed_bodies = st.one_of(
    bodies,
    st.lists(st.one_of(good_mixed_row, mixed_named_row, mixed_array_row), max_size=5).map(
        lambda rows: encode({"instances": rows})
    ),
    st.lists(mixed_column, max_size=5).map(lambda inputs: encode({"inputs": inputs})),
    st.lists(good_mixed_row, min_size=1, max_size=4).map(
        lambda rows: encode(
            {
                "inputs": [
                    {"name": f, "shape": [len(rows)], "datatype": "BYTES", "data": [r[f] for r in rows]}
                    for f in MIXED
                ]
            }
        )
    ),
)


@pytest.fixture(scope="module")
def mixed_handler(tmp_path_factory):
    import os

    import torch

    from serve import handler as serve_handler
    from tests.serve.test_handler_schema import SCHEMA, Contract

    model_dir = tmp_path_factory.mktemp("mixed")
    torch.manual_seed(0)
    torch.jit.script(Contract(3)).save(str(model_dir / "model.pt"))
    spec = {"features": MIXED, "classes": ["a", "b", "c"], "task": "classification", "schema": SCHEMA}
    (model_dir / "serve.json").write_text(json.dumps({**spec, "model_version": "2", "max_batch_rows": 4}))
    os.environ["MLOPS_INFERENCE_LOG_DIR"] = str(model_dir / "log")
    try:
        handler = serve_handler.TabularHandler()
        handler.initialize(Context(model_dir, 1))
        return handler, model_dir
    finally:
        del os.environ["MLOPS_INFERENCE_LOG_DIR"]


@PROPERTY_SETTINGS
@given(batch=st.lists(st.tuples(mixed_bodies, content_types), min_size=1, max_size=5))
def test_mixed_schema_any_batch_gets_json_2xx_or_4xx_as_if_alone(mixed_handler, batch):
    handler_, model_dir = mixed_handler
    answered_as_if_alone(handler_, model_dir, batch)


@PROPERTY_SETTINGS
@given(rows=st.lists(good_mixed_row, min_size=1, max_size=4), bad=st.lists(mixed_bodies, max_size=4))
def test_mixed_schema_good_rows_are_served_and_logged_raw(mixed_handler, rows, bad):
    from monitoring.inference_log import read_jsonl
    from tests.serve.test_handler_schema import TYPES

    handler_, model_dir = mixed_handler
    log = model_dir / "log"
    before = len(read_jsonl(str(log), MIXED, types=TYPES)[0])
    batch = [(encode({"instances": rows}), "application/json")] + [(b, "application/json") for b in bad]
    status, _, body = run(handler_, model_dir, batch)[0]
    assert status == 200 and len(body["predictions"]) == len(rows)
    table, stats = read_jsonl(str(log), MIXED, types=TYPES)
    assert stats.malformed == 0
    mine = table.iloc[before : before + len(rows)]
    assert mine["color"].tolist() == [r["color"] for r in rows]  # raw strings and nulls, unseen included
    assert mine["fresh"].tolist() == [r["fresh"] for r in rows]
