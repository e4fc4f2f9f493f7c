"""The handler in-process, with a stand-in for TorchServe's context: validation details, fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from serve import handler as serve_handler

FEATURES = ["a", "b", "c"]


class Request:
    def __init__(self):
        self.headers = {"body": {"content-type": "application/json"}}

    def get_request_properties(self):
        return self.headers


class Context:
    model_name = "toy"

    def __init__(self, model_dir, n):
        self.system_properties = {"model_dir": str(model_dir)}
        self.manifest = {"model": {"serializedFile": "model.pt"}}
        self.request_processor = [Request() for _ in range(n)]
        self.request_ids = {i: f"req-{i}" for i in range(n)}
        self.status: dict[int, tuple[int, str]] = {}

    def set_response_status(self, code, phrase, idx):
        self.status[idx] = (code, phrase)

    def set_response_content_type(self, idx, value):
        pass


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A 3-feature linear model exported like the pipeline's, and a fresh handler."""
    torch.manual_seed(0)
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(tmp_path / "model.pt"))
    spec = {"features": FEATURES, "classes": ["no", "yes"], "model_version": "7", "max_batch_rows": 4}
    (tmp_path / "serve.json").write_text(json.dumps(spec))
    monkeypatch.setenv("MLOPS_INFERENCE_LOG_DIR", "off")
    handler = serve_handler.TabularHandler()
    handler.initialize(Context(tmp_path, 1))
    return handler, tmp_path


def call(toy, *bodies):
    handler, model_dir = toy
    context = Context(model_dir, len(bodies))
    out = handler.handle(
        [{"body": b if isinstance(b, bytes) else json.dumps(b).encode()} for b in bodies], context
    )
    return [json.loads(o) for o in out], context.status


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"a": True, "b": 1, "c": 2}, "a must be a number, got boolean"),
        ({"a": None, "b": 1, "c": 2}, "a must be a number, got null"),
        ([1, [2], 3], "b must be a number, got array"),
        ({"a": 1e39, "b": 1, "c": 2}, "outside the float32 range"),
        ({"a": 1, "b": 2}, "expected 3 features, got 2; missing: c"),
    ],
)
def test_invalid_values_name_the_row_and_feature(toy, row, words):
    (answer,), status = call(toy, {"instances": [{"a": 1, "b": 2, "c": 3}, row]})
    assert status[0][0] == 400 and words in answer["error"] and answer["error"].startswith("row 1:")


def test_only_the_bad_request_of_a_batch_fails_and_results_match_the_model(toy):
    _, model_dir = toy
    good = {"instances": [{"c": 3.0, "a": 1.0, "b": 2.0}, [4.0, 5.0, 6.0]]}
    answers, status = call(toy, good, b'{"instances": [[1, 2, NaN]]}', {"instances": [[0, 0, 0]] * 5})
    assert status == {
        1: (400, "row 0: c must be finite, got nan"),
        2: (413, "batch of 5 rows exceeds the limit of 4 rows"),
    }
    model = torch.jit.load(str(model_dir / "model.pt"))
    expected = torch.softmax(model(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])).double(), dim=1)
    got = [[p["probabilities"]["no"], p["probabilities"]["yes"]] for p in answers[0]["predictions"]]
    assert torch.allclose(torch.tensor(got, dtype=torch.float64), expected, atol=1e-6)
    assert {p["model_version"] for p in answers[0]["predictions"]} == {"7"}


def test_the_archive_carries_the_handler_without_repository_imports():
    """The .mar runs in the slim image: the handler may import only torch, ts and the standard library."""
    lines = Path(serve_handler.__file__).read_text().splitlines()
    imports = [line.split()[1] for line in lines if line.startswith(("import ", "from "))]
    roots = {name.split(".")[0] for name in imports}
    assert roots <= {
        "__future__",
        "contextlib",
        "datetime",
        "json",
        "math",
        "operator",
        "os",
        "signal",
        "socket",
        "sys",
        "threading",
        "uuid",
        "array",
        "itertools",
        "torch",
        "orjson",
    }
