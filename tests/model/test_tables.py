"""Real tables: unlabelled rows are dropped and counted, validate's messages say what it read and how
to fix it (YAML-coerced classes, the header and its near-matches, data.sep / data.encoding), near-unique
categories are flagged, and a date column becomes derived numbers inside the exported model."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mlops.config import values
from mlops.config.params import ParamsError, load_params
from model import encoding
from model.examples import mixed_table
from model.prepare import encode_table
from model.table import read_typed
from model.validate import validate_table

FEATURES = {
    "island": {"type": "category"},
    "bill_length_mm": {"type": "float", "min": 0, "missing": "impute"},
    "body_mass_g": {"type": "float", "min": 0},
    "adult": {"type": "bool"},
}


def spec_for(tmp_path, data: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data}, sort_keys=False))
    return load_params(path).data


def penguins(tmp_path, frame: pd.DataFrame, features=FEATURES, **data):
    frame.to_csv(tmp_path / "t.csv", index=False)
    base = {"path": str(tmp_path / "t.csv"), "label": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]}
    return spec_for(tmp_path, {**base, **data, "features": features})


# -- the label's missing policy ---------------------------------------------------------------------


def test_unlabelled_rows_are_dropped_and_counted(tmp_path, capsys, monkeypatch):
    frame = mixed_table(300, seed=2, unlabelled=0.15)
    frame.loc[[3, 4], "species"] = [" NA ", "null"]  # any spelling of null is a missing label
    unlabelled = int(frame["species"].map(values.is_null).sum())
    assert unlabelled > 30
    spec = penguins(tmp_path, frame)
    report = validate_table(spec.path, spec)
    assert report["ok"], report["errors"]
    assert report["label_missing"] == {"rows": unlabelled, "policy": "drop_row"}
    assert report["rows_dropped"] == unlabelled
    assert sum(report["class_balance"].values()) == 300 - unlabelled

    from model import validate

    monkeypatch.setattr(validate, "load_params", lambda: type("P", (), {"data": spec})())
    monkeypatch.setattr(validate.paths, "VALIDATION_REPORT", tmp_path / "validation.json")
    assert validate.run() == 0
    assert (
        f"{unlabelled} with missing values dropped, {unlabelled} of them without a label"
        in capsys.readouterr().out
    )
    assert json.loads((tmp_path / "validation.json").read_text())["label_missing"]["rows"] == unlabelled


def test_label_missing_error_names_the_rows(tmp_path):
    frame = mixed_table(60, seed=2)
    frame.loc[[1, 5], "species"] = None
    spec = penguins(tmp_path, frame, label_missing="error")
    report = validate_table(spec.path, spec)
    assert not report["ok"]
    assert report["errors"] == [
        "column 'species' (label): missing label at rows 2, 6 (data.label_missing: error; drop_row leaves"
        " these rows out)"
    ]


def test_regression_drops_unlabelled_rows_too(tmp_path):
    frame = mixed_table(60, seed=2)
    frame.loc[[1, 5], "body_mass_g"] = np.nan
    features = {k: v for k, v in FEATURES.items() if k != "body_mass_g"}
    frame.to_csv(tmp_path / "t.csv", index=False)
    path = tmp_path / "params.yaml"
    data = {"path": str(tmp_path / "t.csv"), "label": "body_mass_g", "features": features}
    path.write_text(yaml.safe_dump({"task": "regression", "data": data}))
    spec = load_params(path).data
    report = validate_table(spec.path, spec)
    assert report["ok"] and report["label_missing"]["rows"] == 2 and report["rows_dropped"] == 2


def test_prepare_drops_unlabelled_rows(tmp_path, monkeypatch):
    from model import prepare

    frame = mixed_table(200, seed=3, unlabelled=0.15)
    unlabelled = int(frame["species"].isna().sum())
    (tmp_path / "data").mkdir()
    frame.to_csv(tmp_path / "data/t.csv", index=False)
    data = {"path": "data/t.csv", "label": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]}
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"seed": 1, "data": {**data, "features": FEATURES}, "split": {}}, sort_keys=False)
    )
    monkeypatch.chdir(tmp_path)
    prepare.run()
    rows = sum(len(pd.read_parquet(f"artifacts/prepared/{s}.parquet")) for s in ("train", "val", "test"))
    assert rows == 200 - unlabelled


# -- messages ---------------------------------------------------------------------------------------


def test_yaml_booleans_as_classes_get_a_quoting_hint(tmp_path):
    (tmp_path / "t.csv").write_text("x,y\n" + "".join(f"{i},{'no' if i % 2 else 'yes'}\n" for i in range(10)))
    (tmp_path / "params.yaml").write_text(
        f"data:\n  path: {tmp_path / 't.csv'}\n  label: y\n  classes: [no, yes]\n  features: {{x: {{}}}}\n"
    )
    spec = load_params(tmp_path / "params.yaml").data
    assert spec.classes == [False, True]  # what YAML did
    errors = validate_table(spec.path, spec)["errors"]
    assert errors[0].endswith(
        "allowed: False, True. YAML reads unquoted yes/no/on/off/true/false/null as booleans (False, True"
        ' here), not as the words in your data: quote them in params.yaml, classes: ["no", "yes"]'
    )


def test_yaml_booleans_as_categories_get_a_quoting_hint(tmp_path):
    (tmp_path / "t.csv").write_text(
        "x,y\n" + "".join(f"{'off' if i % 2 else 'on'},{'ab'[i % 2]}\n" for i in range(10))
    )
    (tmp_path / "params.yaml").write_text(
        f"data:\n  path: {tmp_path / 't.csv'}\n  label: y\n  classes: [a, b]\n"
        "  features: {x: {type: category, categories: [off, on]}}\n"
    )
    spec = load_params(tmp_path / "params.yaml").data
    [error] = validate_table(spec.path, spec)["errors"]
    assert 'quote them in params.yaml, categories: ["off", "on"]' in error


def test_a_missing_column_shows_the_header_read_and_near_matches(tmp_path):
    frame = mixed_table(30, seed=1).rename(columns={"body_mass_g": "Body_Mass_g", "adult": "is_adult"})
    spec = penguins(tmp_path, frame)
    errors = validate_table(spec.path, spec)["errors"]
    assert errors[0].endswith("(required by params.yaml data); did you mean 'Body_Mass_g'?")
    assert errors[1].startswith("column 'adult': missing from")
    assert errors[2] == (
        f"the header read from {spec.path} has 9 columns: 'species', 'island', 'bill_length_mm',"
        " 'flipper_length_mm', 'Body_Mass_g', 'sex', 'is_adult', 'year', 'observed'"
    )


def test_a_semicolon_table_says_which_sep_to_set_and_then_reads(tmp_path):
    frame = mixed_table(40, seed=1)
    frame.to_csv(tmp_path / "t.csv", index=False, sep=";")
    base = {"path": str(tmp_path / "t.csv"), "label": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]}
    spec = spec_for(tmp_path, {**base, "features": FEATURES})
    errors = validate_table(spec.path, spec)["errors"]
    assert errors[-1].endswith("it looks separated by ';': set data.sep: ';' in params.yaml")
    assert errors[-1].startswith(f"the header read from {spec.path} has 1 column: 'species;island;")
    spec = spec_for(tmp_path, {**base, "sep": ";", "features": FEATURES})
    report = validate_table(spec.path, spec)
    assert report["ok"], report["errors"]


def test_a_header_written_with_comma_space_reads(tmp_path):
    frame = mixed_table(40, seed=1)
    text = frame.to_csv(index=False, lineterminator="\n").replace(",", ", ")
    (tmp_path / "t.csv").write_text(text)
    spec = penguins(tmp_path, frame)
    (tmp_path / "t.csv").write_text(text)
    report = validate_table(spec.path, spec)
    assert report["ok"], report["errors"]
    typed = read_typed(spec.path, spec)
    assert set(typed.frame["island"].cat.categories) == set(frame["island"])
    assert typed.frame["bill_length_mm"].equals(frame["bill_length_mm"].astype(float))


def test_data_encoding_reads_a_latin1_table(tmp_path):
    frame = mixed_table(40, seed=1)
    frame["island"] = frame["island"].str.replace("Dream", "Drëam")
    frame.to_csv(tmp_path / "t.csv", index=False, encoding="latin-1")
    spec = penguins(tmp_path, frame, encoding="latin-1")
    frame.to_csv(tmp_path / "t.csv", index=False, encoding="latin-1")
    report = validate_table(spec.path, spec)
    assert report["ok"], report["errors"]
    assert "Drëam" in list(read_typed(spec.path, spec).frame["island"].cat.categories)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sep": ";;"}, "data.sep must be one character"),
        ({"encoding": "klingon"}, "data.encoding 'klingon' is not a known text encoding"),
        ({"label_missing": "impute"}, "data.label_missing must be one of drop_row, error"),
    ],
)
def test_data_options_are_checked(tmp_path, data, message):
    with pytest.raises(ParamsError, match=message):
        spec_for(
            tmp_path, {"path": "t.csv", "label": "y", "classes": ["a", "b"], "features": {"x": {}}, **data}
        )


# -- cardinality ------------------------------------------------------------------------------------


def test_a_timestamp_declared_as_a_category_is_flagged(tmp_path):
    frame = mixed_table(400, seed=1)
    frame["taken"] = pd.date_range("2021-01-01", periods=400, freq="17min").strftime("%Y-%m-%dT%H:%M:%S")
    frame["tag"] = [f"id{i}" for i in range(400)]
    features = {**FEATURES, "taken": {"type": "category"}, "tag": {"type": "category"}}
    spec = penguins(tmp_path, frame, features)
    report = validate_table(spec.path, spec)
    assert report["ok"]
    taken, tag = report["warnings"]
    assert taken.startswith("column 'taken': a category with 400 distinct values in 400 rows (ratio 1.00)")
    assert "declare it type: date (or datetime)" in taken
    assert tag.startswith("column 'tag': a category with 400 distinct values in 400 rows (ratio 1.00)")
    assert "if it is an id, drop it from data.features" in tag
    assert not [w for w in report["warnings"] if "'island'" in w]  # 3 levels: fine


# -- dates ------------------------------------------------------------------------------------------


def test_date_parts_match_the_calendar():
    """Training (numpy, for the fitted scaling), the exported module (torch) and Python's calendar."""
    from model.net import date_parts

    days = np.concatenate([np.arange(-719162, 2932896, 4999), np.arange(-400, 20500)]).astype(np.float64)
    days = days + 0.25  # 06:00
    reference = []
    for d in days:
        stamp = dt.datetime(1970, 1, 1) + dt.timedelta(days=float(d))
        doy = stamp.timetuple().tm_yday
        reference.append([np.floor(d), stamp.year, stamp.month, stamp.day, stamp.weekday(), doy, 6.0])
    reference = np.array(reference)
    assert np.array_equal(encoding.date_parts(days, "datetime"), reference)
    scripted = torch.jit.script(date_parts)
    got = scripted(torch.tensor(days, dtype=torch.float32).reshape(-1, 1))[:, 0, :].double().numpy()
    assert np.array_equal(got[:, :6], reference[:, :6])
    assert np.abs(got[:, 6] - 6.0).max() < 0.05  # float32 input: the time of day to about 3 minutes


def test_a_date_column_trains_into_the_exported_model(tmp_path):
    """The table's ISO date strings are parsed by mlops/config/values.py into days; the TorchScript module
    derives and standardises year, month, ... itself, so a raw request's date, parsed the same way,
    gives exactly the offline prediction."""
    from model.net import TabularNet

    frame = mixed_table(200, seed=4)
    frame.loc[7, "observed"] = None
    features = {**FEATURES, "observed": {"type": "date", "missing": "impute"}}
    spec = penguins(tmp_path, frame, features)
    report = validate_table(spec.path, spec)
    assert report["ok"], report["errors"]
    table = read_typed(spec.path, spec)
    rows = np.arange(len(table))
    matrix, columns = encode_table(spec, table.frame, rows, rows)
    column = columns[-1]
    assert column["type"] == "date" and column["parts"] == list(encoding.DATE_PARTS)
    assert matrix[0, -1] == values.days(frame.loc[0, "observed"])
    assert np.isnan(matrix[7, -1])
    preprocessing = {"features": spec.feature_names, "task": "classification", "columns": columns}
    net = torch.jit.script(TabularNet(preprocessing, 3, [8]).eval())
    assert net.prep.width == 2 + 1 + len(encoding.DATE_PARTS) + 4  # float x2, bool, date parts, island
    schema = encoding.schema(preprocessing)
    raw_rows = encoding.raw_records(pd.DataFrame(matrix, columns=spec.feature_names), schema)
    assert raw_rows[0]["observed"] == frame.loc[0, "observed"] and raw_rows[7]["observed"] is None
    parsed = [
        [values.converter(c["type"], c.get("categories"))(r[c["name"]]) for c in schema] for r in raw_rows
    ]
    with torch.no_grad():
        offline = net(torch.tensor(matrix, dtype=torch.float32))
        served = net(torch.tensor(parsed, dtype=torch.float32))
    assert torch.equal(offline, served)


def test_a_bad_date_names_column_and_rows(tmp_path):
    frame = mixed_table(30, seed=4)
    frame.loc[[2, 9], "observed"] = ["31/11/2008", "yesterday"]
    spec = penguins(tmp_path, frame, {**FEATURES, "observed": {"type": "date"}})
    assert validate_table(spec.path, spec)["errors"] == [
        "column 'observed': expected date (ISO 8601, e.g. 2024-01-31), got '31/11/2008' at rows 3, 10"
    ]


@pytest.mark.parametrize("as_type", ["timestamp", "date32"])
def test_a_typed_parquet_date_column_reads_as_days(tmp_path, as_type):
    frame = mixed_table(40, seed=4)
    stamps = pd.to_datetime(frame["observed"])
    frame["observed"] = stamps if as_type == "timestamp" else stamps.dt.date
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    base = {
        "path": str(tmp_path / "t.parquet"),
        "label": "species",
        "classes": ["Adelie", "Chinstrap", "Gentoo"],
    }
    spec = spec_for(tmp_path, {**base, "features": {**FEATURES, "observed": {"type": "date"}}})
    assert validate_table(spec.path, spec)["ok"]
    days = read_typed(spec.path, spec).frame["observed"].to_numpy()
    assert list(days) == [values.days(d.strftime("%Y-%m-%d")) for d in stamps]
