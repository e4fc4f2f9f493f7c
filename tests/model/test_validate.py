"""Schema validation on bad data: each failure names the column and the data rows.

The columns, label and classes come from params.yaml (tests/schema.py), so these run on a forker's table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.validate import validate_table
from tests.schema import CLASSES, FEATURES, LABEL, NUMERIC, SPEC, bounded, out_of_range, raw_table, write_data

# Numeric features whose missing value is an error (data.missing), for the NaN tests.
STRICT = [f.name for f in SPEC.features if f.numeric and f.missing == "error"]
needs_strict = pytest.mark.skipif(len(STRICT) < 2, reason="needs two numeric features with missing: error")


@pytest.fixture
def frame():
    """About 40 valid rows with every class well represented (a table may be sorted by class)."""
    table = raw_table()
    table[NUMERIC] = table[NUMERIC].apply(pd.to_numeric)
    if CLASSES:
        table = table.groupby(LABEL, sort=False, group_keys=False).head(40 // len(CLASSES))
    else:
        table = table.head(40)
    return table.reset_index(drop=True)


def check(tmp_path, frame, name="table.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return validate_table(path, SPEC)


def test_project_data_is_valid(tmp_path):
    report = validate_table(write_data(tmp_path), SPEC)
    assert report["ok"], report["errors"]
    table = raw_table()
    assert report["rows"] == len(table)
    if CLASSES:
        counts = table[LABEL].astype(str).value_counts()
        assert report["class_balance"] == {str(c): int(counts.get(str(c), 0)) for c in CLASSES}
        assert sum(report["class_balance"].values()) == len(table)


def test_missing_column(tmp_path, frame):
    gone = FEATURES[1]
    left = [c for c in frame.columns if c != gone]
    report = check(tmp_path, frame.drop(columns=gone))
    assert not report["ok"]
    assert report["errors"][0] == (
        f"column {gone!r}: missing from " + str(tmp_path / "table.csv") + " (required by params.yaml data)"
    )
    assert report["errors"][1].startswith(
        f"the header read from {tmp_path / 'table.csv'} has {len(left)} columns: {left[0]!r}, {left[1]!r},"
    )
    assert len(report["errors"]) == 2


@needs_strict
def test_nan(tmp_path, frame):
    frame.loc[[2, 7], STRICT[1]] = np.nan
    report = check(tmp_path, frame)
    assert report["errors"] == [f"column {STRICT[1]!r}: missing value (empty/NaN) at rows 3, 8"]


def test_wrong_dtype(tmp_path, frame):
    name = NUMERIC[0]
    kind = next(f.type for f in SPEC.features if f.name == name)
    frame[name] = frame[name].astype(object)
    frame.loc[4, name] = "twelve"
    report = check(tmp_path, frame)
    assert report["errors"] == [f"column {name!r}: expected {kind}, got non-numeric value 'twelve' at row 5"]


@pytest.mark.skipif(not CLASSES, reason="a regression label has no list of allowed labels")
def test_unknown_label(tmp_path, frame):
    frame[LABEL] = frame[LABEL].astype(object)
    frame.loc[[0, 9], LABEL] = "maybe"
    report = check(tmp_path, frame)
    assert len(report["errors"]) == 1
    assert report["errors"][0].startswith(f"column {LABEL!r} (label): unknown label 'maybe' at rows 1, 10")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    report = validate_table(path, SPEC)
    assert report["errors"] == [f"{path}: file is empty (0 bytes): expected a header and rows"]


def test_header_without_rows(tmp_path, frame):
    report = check(tmp_path, frame.head(0))
    assert report["errors"][-1].endswith("has a header but no data rows")


def test_duplicated_header(tmp_path, frame):
    first, second = FEATURES[0], FEATURES[1]
    path = tmp_path / "dup.csv"
    frame.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    header[header.index(second)] = first  # a copy-paste slip in the header
    lines[0] = ",".join(header)
    path.write_text("\n".join(lines) + "\n")
    report = validate_table(path, SPEC)
    positions = [i for i, name in enumerate(header, start=1) if name == first]
    assert not report["ok"]
    assert report["errors"][0] == (
        f"column {first!r}: appears 2 times in the header (positions {positions[0]}, {positions[1]})"
    )


def test_out_of_range_and_infinite(tmp_path, frame):
    (feature,) = bounded(1)
    frame.loc[1, feature.name] = out_of_range(feature)
    frame.loc[3, feature.name] = np.inf
    report = check(tmp_path, frame)
    assert f"column {feature.name!r}: infinite value at row 4" in report["errors"]
    bound = f"below min {feature.min}" if feature.min is not None else f"above max {feature.max}"
    assert f"column {feature.name!r}: {bound} at row 2" in report["errors"]


@needs_strict
def test_long_row_lists_are_truncated(tmp_path, frame):
    frame.loc[:, STRICT[0]] = np.nan
    (error,) = check(tmp_path, frame)["errors"]
    assert error.endswith(f"at rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 (+{len(frame) - 10} more)")


@needs_strict
def test_parquet_is_read_too(tmp_path, frame):
    frame.loc[5, STRICT[-1]] = np.nan
    path = tmp_path / "table.parquet"
    frame.to_parquet(path, index=False)
    errors = validate_table(path, SPEC)["errors"]
    assert errors == [f"column {STRICT[-1]!r}: missing value (empty/NaN) at row 6"]
