"""mlops/config/values.py is how training reads a cell: every spelling the table reader accepts is what the
shared parser accepts, with the same encoded float, so the handler (which calls the same parser) cannot
refuse what training accepted."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from mlops.config import values
from tests.model.spellings import column_of, read_column, same

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("kind", ["float", "int", "bool", "category", "date", "datetime"])
def test_the_table_reader_and_the_shared_parser_agree(tmp_path, kind):
    @SETTINGS
    @given(column_of(kind))
    def check(cells):
        encoded, vocab, report = read_column(tmp_path, kind, cells)
        assert report["ok"], report["errors"]
        convert = values.converter(kind, vocab)
        for cell, got in zip(cells, encoded, strict=True):
            assert same(convert(cell), float(got)), (cell, convert(cell), got)

    check()


def test_the_parser_imports_only_the_standard_library():
    """The TorchServe handler may import torch and the stdlib only, and it calls this module."""
    tree = ast.parse(Path(values.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "datetime", "math", "re"}, imported


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("bool", "NO", 0.0),
        ("bool", " Yes ", 1.0),
        ("bool", True, 1.0),
        ("bool", 0, 0.0),
        ("bool", "1.0", 1.0),
        ("float", " 1.5 ", 1.5),
        ("float", "1e3", 1000.0),
        ("float", 2, 2.0),
        ("float", "nULL", math.nan),
        ("float", " NA ", math.nan),
        ("float", None, math.nan),
        ("category", " red ", 0.0),
        ("category", 3, 2.0),  # "3" in the vocabulary: a JSON number finds it
        ("category", "purple", -1.0),
        ("category", "None", math.nan),
        ("date", "2024-03-01", 19783.0),
        ("date", "2024-03-01T23:30:00-05:00", 19783.0),  # a date: as written
        ("datetime", "2024-03-01T23:30:00-05:00", 19784.0 + 4.5 / 24),  # to UTC
        ("datetime", "2024-03-01T12:00:00Z", 19783.5),
    ],
)
def test_spellings(kind, raw, expected):
    got = values.converter(kind, ["red", "green", "3"])(raw)
    assert same(got, expected), got


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("bool", "maybe", "not_a_bool"),
        ("bool", 2, "not_a_bool"),
        ("float", True, "not_a_number"),
        ("float", "1,5", "not_a_number"),
        ("float", "1_000", "not_a_number"),
        ("category", True, "not_a_category"),
        ("category", [1], "not_a_category"),
        ("date", "31/01/2024", "not_a_date"),
        ("date", 20240131, "not_a_date"),
    ],
)
def test_refusals_name_a_reason(kind, raw, reason):
    with pytest.raises(values.Invalid) as err:
        values.converter(kind, ["red"])(raw)
    assert err.value.reason == reason


def test_date_text_is_the_inverse_of_days():
    assert values.date_text(values.days("2024-02-29")) == "2024-02-29"
    assert (
        values.date_text(values.days("2024-02-29T13:45:10Z", "datetime"), "datetime")
        == "2024-02-29T13:45:10Z"
    )
