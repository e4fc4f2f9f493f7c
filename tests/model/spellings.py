"""Hypothesis strategies for the raw spellings a table cell (or a request value) may take, and the
training reader's encoding of a column of them (CSV -> model.table -> model.encoding)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml
from hypothesis import strategies as st

from mlops.config import values
from mlops.config.params import load_params
from model import encoding
from model.table import read_typed
from model.validate import validate_table

pad = st.sampled_from(["", " ", "  ", "\t"])


def cased(words) -> st.SearchStrategy[str]:
    """One of `words` in a random mix of upper and lower case, padded with blanks."""
    return st.builds(
        lambda w, flips, left, right: (
            left
            + "".join(
                c.upper() if f else c.lower() for c, f in zip(w, flips + [False] * len(w), strict=False)
            )
            + right
        ),
        st.sampled_from(sorted(words)),
        st.lists(st.booleans(), max_size=12),
        pad,
        pad,
    )


nulls = cased(values.NULLS - {""})  # "" alone is an empty cell, also tested
bools = cased(values.TRUE | values.FALSE)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
numbers = st.one_of(
    st.builds(repr, finite),
    st.builds(lambda x: f"{x:e}", finite),
    st.builds(lambda x: f"{x:.3f}", finite),
    st.builds(lambda x: f"+{abs(x)!r}", finite),
    st.builds(str, st.integers(-(10**12), 10**12)),
).flatmap(lambda text: st.builds(lambda a, b: a + text + b, pad, pad))
words = st.text(alphabet="abcXYZ019_-. ", min_size=1, max_size=8).filter(lambda s: not values.is_null(s))
categories = st.one_of(words, st.sampled_from(["3", "3.0", "007", "Yes", "n/a"]))
dates = st.dates(min_value=pd.Timestamp("1900-01-01").date(), max_value=pd.Timestamp("2100-12-31").date())
datetimes = st.datetimes(
    min_value=pd.Timestamp("1900-01-01").to_pydatetime(), max_value=pd.Timestamp("2100-12-31").to_pydatetime()
)
date_texts = st.one_of(
    st.builds(lambda d: d.isoformat(), dates),
    st.builds(lambda d: d.strftime("%Y%m%d"), dates),
    st.builds(lambda d: d.isoformat(sep=" ", timespec="seconds"), datetimes),
)
datetime_texts = st.one_of(
    st.builds(lambda d: d.isoformat(timespec="seconds"), datetimes),
    st.builds(lambda d: d.isoformat(timespec="seconds") + "Z", datetimes),
    st.builds(lambda d: d.isoformat(timespec="minutes") + "+02:00", datetimes),
    st.builds(lambda d: d.isoformat(), dates),
)

SPELLINGS = {
    "float": numbers,
    "int": st.builds(str, st.integers(-(10**9), 10**9)),
    "bool": bools,
    "category": categories,
    "date": date_texts,
    "datetime": datetime_texts,
}


def column_of(kind: str, min_size: int = 1, max_size: int = 12):
    """A column's cells: spellings of its type, nulls in any spelling, and empty cells."""
    cell = st.one_of(SPELLINGS[kind], SPELLINGS[kind], nulls, st.just(""))
    return st.lists(cell, min_size=min_size, max_size=max_size)


def read_column(tmp_path, kind: str, cells: list[str]) -> tuple[np.ndarray, list | None, dict]:
    """Write `cells` as column x of a CSV (label y), validate it and read it as training does: the
    encoded floats, the column's vocabulary (category) and the validation report."""
    n = len(cells)
    labels = ["a", "b"] * (n + 3)
    frame = pd.DataFrame({"x": cells + [cells[0]] * 6, "y": labels[: n + 6]})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    params = tmp_path / "params.yaml"
    data = {"path": str(path), "label": "y", "classes": ["a", "b"]}
    data["features"] = {"x": {"type": kind, "missing": "impute"}}
    params.write_text(yaml.safe_dump({"data": data}))
    spec = load_params(params).data
    report = validate_table(path, spec)
    table = read_typed(path, spec)
    feature = spec.features[0]
    vocab = encoding.vocabulary(feature, table.frame["x"]) if kind == "category" else None
    return encoding.encode_column(feature, table.frame["x"], vocab)[:n], vocab, report


def same(a: float, b: float) -> bool:
    return (a != a and b != b) or a == b
