"""Schema validation on bad data: each failure names the column and the data rows."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.config.params import load_params
from model.dataset import bundled_frame
from model.validate import validate_table

SPEC = load_params().data


@pytest.fixture
def frame():
    return bundled_frame().head(40).copy()


def check(tmp_path, frame, name="table.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return validate_table(path, SPEC)


def test_bundled_data_is_valid(tmp_path):
    report = check(tmp_path, bundled_frame())
    assert report["ok"], report["errors"]
    assert report["rows"] == 569
    assert report["class_balance"] == {"benign": 357, "malignant": 212}


def test_missing_column(tmp_path, frame):
    report = check(tmp_path, frame.drop(columns="mean_texture"))
    assert not report["ok"]
    assert report["errors"][0] == (
        "column 'mean_texture': missing from "
        + str(tmp_path / "table.csv")
        + " (required by params.yaml data)"
    )
    assert report["errors"][1].startswith(
        f"the header read from {tmp_path / 'table.csv'} has 30 columns: 'mean_radius', 'mean_perimeter',"
    )
    assert len(report["errors"]) == 2


def test_nan(tmp_path, frame):
    frame.loc[[2, 7], "worst_area"] = np.nan
    report = check(tmp_path, frame)
    assert report["errors"] == ["column 'worst_area': missing value (empty/NaN) at rows 3, 8"]


def test_wrong_dtype(tmp_path, frame):
    frame["mean_radius"] = frame["mean_radius"].astype(object)
    frame.loc[4, "mean_radius"] = "twelve"
    report = check(tmp_path, frame)
    assert report["errors"] == [
        "column 'mean_radius': expected float, got non-numeric value 'twelve' at row 5"
    ]


def test_unknown_label(tmp_path, frame):
    frame.loc[[0, 9], "diagnosis"] = "maybe"
    report = check(tmp_path, frame)
    assert len(report["errors"]) == 1
    assert report["errors"][0].startswith("column 'diagnosis' (label): unknown label 'maybe' at rows 1, 10")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    report = validate_table(path, SPEC)
    assert report["errors"] == [f"{path}: file is empty (0 bytes): expected a header and rows"]


def test_header_without_rows(tmp_path, frame):
    report = check(tmp_path, frame.head(0))
    assert report["errors"][-1].endswith("has a header but no data rows")


def test_duplicated_header(tmp_path, frame):
    path = tmp_path / "dup.csv"
    frame.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace("mean_texture", "mean_radius")  # a copy-paste slip in the header
    path.write_text("\n".join(lines) + "\n")
    report = validate_table(path, SPEC)
    assert not report["ok"]
    assert report["errors"][0] == "column 'mean_radius': appears 2 times in the header (positions 1, 2)"


def test_out_of_range_and_infinite(tmp_path, frame):
    frame.loc[1, "mean_area"] = -5.0
    frame.loc[3, "mean_area"] = np.inf
    report = check(tmp_path, frame)
    assert "column 'mean_area': infinite value at row 4" in report["errors"]
    assert "column 'mean_area': below min 0 at row 2" in report["errors"]


def test_long_row_lists_are_truncated(tmp_path, frame):
    frame.loc[:, "mean_radius"] = np.nan
    (error,) = check(tmp_path, frame)["errors"]
    assert error.endswith("at rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 (+30 more)")


def test_parquet_is_read_too(tmp_path, frame):
    frame.loc[5, "worst_radius"] = np.nan
    path = tmp_path / "table.parquet"
    frame.to_parquet(path, index=False)
    assert validate_table(path, SPEC)["errors"] == [
        "column 'worst_radius': missing value (empty/NaN) at row 6"
    ]
