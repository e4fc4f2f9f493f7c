"""Serving accepts what training accepted: the same raw spellings (bools, numbers, categories, nulls,
dates) that pass `validate` and the training reader are accepted by the handler's per-value conversion
(serve.handler.Column), with the same encoded float. The server once answered
`vehicleSearch must be true or false, got string 'NO'` for a table whose `NO` trained fine."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.model.spellings import column_of, read_column, same

SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def served(kind: str, vocab, cells: list) -> list[float]:
    """What the handler encodes for these raw request values of an imputed column of this type."""
    from serve.handler import Column, RequestError

    try:
        return [float(v) for v in Column("x", kind, vocab, "impute").encode(0, list(cells))]
    except RequestError as err:
        raise AssertionError(f"the handler refused {cells!r}: {err}") from None


@pytest.mark.parametrize("kind", ["float", "int", "bool", "category", "date", "datetime"])
def test_values_validate_accepts_the_handler_accepts_alike(tmp_path, kind):
    @SETTINGS
    @given(column_of(kind))
    def check(cells):
        encoded, vocab, report = read_column(tmp_path, kind, cells)
        assert report["ok"], report["errors"]
        got = served(kind, vocab, cells)
        for cell, want, have in zip(cells, encoded, got, strict=True):
            assert same(float(want), have), (cell, want, have)

    check()


def test_the_reported_refusal(tmp_path):
    """The issue's case: a bool column written NO/YES."""
    encoded, _, report = read_column(tmp_path, "bool", ["NO", "YES", "no"])
    assert report["ok"] and list(encoded) == [0.0, 1.0, 0.0]
    assert served("bool", None, ["NO", "YES", "no"]) == [0.0, 1.0, 0.0]
