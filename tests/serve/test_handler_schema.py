"""Mixed-type tables on the serving side: category strings, booleans and nulls encoded as the exported model
expects, regression answers, and the inference log keeping the raw inputs.

The model is a hand-made TorchScript module that follows the export contract (one float32 [n, F]
tensor: numbers as is, bool 0/1, a category as its vocabulary index, -1 unseen, NaN missing; imputation
and one-hot inside the module), so these tests do not depend on the training code.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.serve.test_handler import Context, call

FEATURES = ["size", "color", "fresh", "count"]
SCHEMA = [
    {"name": "size", "type": "float", "missing": "impute", "min": 0, "max": 100},
    {"name": "color", "type": "category", "categories": ["red", "green", "blue"], "missing": "impute"},
    {"name": "fresh", "type": "bool", "missing": "error"},
    {"name": "count", "type": "int", "missing": "error"},
]
TYPES = {c["name"]: c["type"] for c in SCHEMA}


class Contract(torch.nn.Module):
    """Imputes NaN with fill values, one-hots the category code (unknown bucket for -1), then linear."""

    def __init__(self, outputs: int):
        super().__init__()
        self.register_buffer("fill", torch.tensor([5.0, 0.0, 0.0, 0.0]))
        self.register_buffer("numeric", torch.tensor([0, 2, 3]))
        self.linear = torch.nn.Linear(3 + 4, outputs)

    def forward(self, x):
        x = torch.where(torch.isnan(x), self.fill.expand_as(x), x)
        code = x[:, 1].long()
        code = torch.where(code < 0, torch.full_like(code, 3), code)
        onehot = torch.nn.functional.one_hot(code, 4).to(x.dtype)
        return self.linear(torch.cat([torch.index_select(x, 1, self.numeric), onehot], dim=1))


def make(tmp_path, monkeypatch, task: str = "classification", log: bool = False):
    from serve import handler as serve_handler

    torch.manual_seed(0)
    outputs = 1 if task == "regression" else 3
    torch.jit.script(Contract(outputs)).save(str(tmp_path / "model.pt"))
    spec = {
        "features": FEATURES,
        "classes": [] if task == "regression" else ["a", "b", "c"],
        "task": task,
        "schema": SCHEMA,
        "model_version": "2",
        "max_batch_rows": 8,
    }
    (tmp_path / "serve.json").write_text(json.dumps(spec))
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", str(tmp_path / "log") if log else "off")
    monkeypatch.delenv("MLOPS_SERVE_SPEC", raising=False)
    handler = serve_handler.TabularHandler()
    handler.initialize(Context(tmp_path, 1))
    return handler, tmp_path


def expected(model_dir, encoded: list[list[float]]) -> torch.Tensor:
    model = torch.jit.load(str(model_dir / "model.pt"))
    return model(torch.tensor(encoded, dtype=torch.float32)).double()


ROWS = [
    {"size": 3.5, "color": "green", "fresh": True, "count": 2},
    {"size": None, "color": "blue", "fresh": False, "count": 0},
    {"size": 7, "color": "purple", "fresh": 1, "count": 5},  # unseen category: code -1
    {"size": 1.25, "color": None, "fresh": 0, "count": 1},  # missing category (impute): NaN
]
ENCODED = [[3.5, 1, 1, 2], [math.nan, 2, 0, 0], [7, -1, 1, 5], [1.25, math.nan, 0, 1]]


def test_categories_booleans_and_nulls_are_encoded_as_the_model_expects(tmp_path, monkeypatch):
    toy = make(tmp_path, monkeypatch)
    (answer,), status = call(toy, {"instances": ROWS})
    assert status == {}
    want = torch.softmax(expected(tmp_path, ENCODED), dim=1)
    got = [[p["probabilities"][c] for c in "abc"] for p in answer["predictions"]]
    assert torch.allclose(torch.tensor(got, dtype=torch.float64), want, atol=1e-6)
    assert [p["label"] for p in answer["predictions"]] == ["abc"[i] for i in want.argmax(dim=1).tolist()]
    # arrays in feature order are the same rows
    (same,), _ = call(toy, {"instances": [[r[f] for f in FEATURES] for r in ROWS]})
    assert same == answer


DATATYPES = {"size": "FP32", "color": "BYTES", "fresh": "BOOL", "count": "INT64"}


def v2_value(row: dict, feature: str):
    """A row's value as a v2 tensor of DATATYPES carries it: BOOL holds true/false, not 1/0."""
    return bool(row[feature]) if DATATYPES[feature] == "BOOL" else row[feature]


def test_the_open_inference_protocol_takes_one_input_per_feature(tmp_path, monkeypatch):
    toy = make(tmp_path, monkeypatch)
    (rows,), _ = call(toy, {"instances": ROWS})
    datatypes = DATATYPES
    inputs = [
        {"name": f, "shape": [len(ROWS)], "datatype": datatypes[f], "data": [v2_value(r, f) for r in ROWS]}
        for f in reversed(FEATURES)  # any order
    ]
    (answer,), status = call(toy, {"inputs": inputs, "id": "x1"})
    assert status == {} and answer["id"] == "x1"
    label, proba = answer["outputs"]
    assert label["data"] == [p["label"] for p in rows["predictions"]]
    flat = [p["probabilities"][c] for p in rows["predictions"] for c in "abc"]
    assert proba["shape"] == [4, 3] and all(
        math.isclose(a, b, abs_tol=1e-9) for a, b in zip(proba["data"], flat, strict=True)
    )
    # [n, 1] shapes and nested data work too; a missing input is named
    nested = [{**t, "shape": [4, 1], "data": [[v] for v in t["data"]]} for t in inputs]
    (again,), _ = call(toy, {"inputs": nested, "id": "x1"})
    assert again == answer
    (err,), status = call(toy, {"inputs": inputs[1:]})
    assert status[0][0] == 400 and "missing inputs: 'count'" in err["error"]


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"fresh": None}, "row 0: fresh is null (missing), which its missing policy 'error' does not accept"),
        ({"count": None}, "row 0: count is null (missing)"),
        (
            {"fresh": "maybe"},
            "row 0: fresh must be true or false (also yes/no, y/n, t/f, 1/0), got string 'maybe'",
        ),
        ({"fresh": 2}, "row 0: fresh must be true or false"),
        ({"color": True}, "row 0: color must be a category (a string), got boolean"),
        ({"color": ["red"]}, "row 0: color must be a category (a string), got array"),
        ({"size": "big"}, "row 0: size must be a number, got string 'big'"),
        ({"size": 1e39}, "row 0: size = 1e+39 is outside the float32 range"),
    ],
)
def test_values_the_schema_refuses_get_a_400_naming_row_and_column(tmp_path, monkeypatch, row, words):
    toy = make(tmp_path, monkeypatch)
    (answer, good), status = call(toy, {"instances": [{**ROWS[0], **row}]}, {"instances": ROWS[:1]})
    assert status == {0: (400, "Bad Request")} and words in answer["error"], answer
    assert len(good["predictions"]) == 1  # its neighbour in the batch is served


def test_the_log_keeps_raw_inputs_and_the_reader_returns_them(tmp_path, monkeypatch):
    from monitoring.inference_log import read_jsonl

    toy = make(tmp_path, monkeypatch, log=True)
    call(toy, {"instances": ROWS}, {"instances": [{**ROWS[0], "fresh": None}]})  # the second is refused
    [line] = (tmp_path / "log").glob("*.jsonl")
    [record] = [json.loads(x) for x in line.read_text().splitlines()]
    assert record["values"] == [[r[f] for f in FEATURES] for r in ROWS]  # strings and nulls as sent
    table, stats = read_jsonl(str(tmp_path / "log"), FEATURES, keys=("prediction",), types=TYPES)
    assert stats.malformed == 0 and len(table) == 4
    assert table["color"].tolist() == ["green", "blue", "purple", None]  # raw, unseen included
    assert table["fresh"].tolist() == [True, False, 1, 0]
    assert table["size"].dtype == "float64" and math.isnan(table["size"][1])
    assert table["count"].tolist() == [2.0, 0.0, 5.0, 1.0]
    # without the schema's types the reader stays strict: strings are not numbers
    _, strict = read_jsonl(str(tmp_path / "log"), FEATURES)
    assert strict.malformed == 1 and "color" in strict.examples[0]


def test_regression_answers_a_prediction_per_row(tmp_path, monkeypatch):
    toy = make(tmp_path, monkeypatch, task="regression", log=True)
    (answer,), status = call(toy, {"instances": ROWS})
    assert status == {}
    want = expected(tmp_path, ENCODED)[:, 0].tolist()
    got = [p["prediction"] for p in answer["predictions"]]
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, want, strict=True))
    assert set(answer["predictions"][0]) == {"prediction", "model_version"}
    inputs = [
        {"name": f, "shape": [4], "datatype": DATATYPES[f], "data": [v2_value(r, f) for r in ROWS]}
        for f in FEATURES
    ]
    (v2,), _ = call(toy, {"inputs": inputs})
    [output] = v2["outputs"]
    assert output["name"] == "prediction" and output["shape"] == [4, 1] and output["datatype"] == "FP32"
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(output["data"], want, strict=True))
    from monitoring.inference_log import read_jsonl

    table, _ = read_jsonl(str(tmp_path / "log"), FEATURES, keys=("prediction",), types=TYPES)
    assert len(table) == 8 and all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(table["prediction"], want * 2, strict=True)
    )
