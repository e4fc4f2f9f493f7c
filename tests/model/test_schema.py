"""The typed schema: params errors are one clean line, validate names column and rows for every policy
breach, and the preprocessing fitted on train (vocabularies, fill values, scaler) is what the exported
module applies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mlops.config.errors import UserError
from mlops.config.params import ParamsError, load_params
from model import encoding
from model.examples import mixed_table
from model.net import TabularNet
from model.validate import validate_table

FEATURES = {
    "island": {"type": "category"},
    "bill_length_mm": {"type": "float", "min": 0, "missing": "impute"},
    "flipper_length_mm": {
        "type": "int",
        "min": 0,
        "missing": "impute",
        "impute": "constant",
        "fill_value": 0,
    },
    "body_mass_g": {"type": "float", "min": 0},
    "sex": {"type": "category", "categories": ["female", "male"], "missing": "drop_row"},
    "adult": {"type": "bool"},
    "year": {"type": "int"},
}


def write_params(tmp_path, data: dict, **top) -> object:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": 1, **top, "data": data}, sort_keys=False))
    return path


def mixed_params(tmp_path, **changes):
    data = {
        "path": str(tmp_path / "t.csv"),
        "label": "species",
        "classes": ["Adelie", "Chinstrap", "Gentoo"],
        "features": {k: dict(v) for k, v in FEATURES.items()},
        **changes,
    }
    return load_params(write_params(tmp_path, data))


def check(tmp_path, frame, **changes) -> dict:
    params = mixed_params(tmp_path, **changes)
    frame.to_csv(tmp_path / "t.csv", index=False)
    return validate_table(tmp_path / "t.csv", params.data)


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ({"type": "category"}, None),
        (
            {"type": "string"},
            "data.features.x.type must be one of float, int, category, bool, date, datetime; got 'string'",
        ),
        ({"type": "float", "mising": "impute"}, "unknown key data.features.x.mising; did you mean missing?"),
        ({"dtype": "float"}, "unknown key data.features.x.dtype; did you mean type?"),  # the old name: gone
        (
            {"type": "float", "missing": "skip"},
            "data.features.x.missing must be one of error, drop_row, impute",
        ),
        ({"type": "float", "categories": ["a"]}, "categories is only for type: category"),
        ({"type": "category", "min": 0}, "min/max are only for float and int columns"),
        ({"type": "float", "missing": "impute", "impute": "constant"}, "impute: constant needs a fill_value"),
        ({"type": "category", "impute": "median"}, "median needs a number"),
    ],
)
def test_schema_mistakes_are_one_line_naming_the_key(tmp_path, feature, message):
    data = {"path": "d.csv", "label": "y", "classes": ["a", "b"], "features": {"x": feature}}
    path = write_params(tmp_path, data)
    if message is None:
        assert load_params(path).data.features[0].type == "category"
        return
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert isinstance(err.value, UserError) and message in str(err.value)


def test_task_and_names_derive_from_one_setting(tmp_path):
    data = {"path": "d.csv", "label": "y", "features": {"x": {}}}
    params = load_params(write_params(tmp_path, data, name="houses", task="regression"))
    assert params.task == "regression" and params.data.regression and params.data.classes == []
    assert (params.mlflow.experiment, params.mlflow.registered_model) == ("houses", "houses-regressor")
    assert params.serve.model_name == "houses"
    explicit = write_params(tmp_path, data, name="houses", task="regression", mlflow={"experiment": "mine"})
    assert load_params(explicit).mlflow.experiment == "mine"  # an explicit key wins
    with pytest.raises(ParamsError, match="task must be one of classification, regression"):
        load_params(write_params(tmp_path, data, task="ranking"))
    with pytest.raises(ParamsError, match="data section lacks classes"):
        load_params(write_params(tmp_path, data))


def test_mixed_table_validates_and_reports_missing_per_policy(tmp_path):
    frame = mixed_table(200, seed=3)
    report = check(tmp_path, frame)
    assert report["ok"], report["errors"]
    sex_missing = int(frame["sex"].isna().sum())
    assert sex_missing > 0 and report["rows_dropped"] == sex_missing
    assert report["missing"]["sex"] == {"rows": sex_missing, "policy": "drop_row"}
    assert report["missing"]["bill_length_mm"]["policy"] == "impute"
    assert sum(report["class_balance"].values()) == 200 - sex_missing


def test_every_policy_breach_names_column_and_rows(tmp_path):
    frame = mixed_table(40, seed=1)
    frame["sex"] = frame["sex"].fillna("female")
    frame.loc[[2, 5], "sex"] = "unknown"  # not in the declared categories
    frame.loc[3, "adult"] = "maybe"  # not a bool
    frame.loc[[4, 6], "body_mass_g"] = np.nan  # missing under the default policy: error
    frame["year"] = frame["year"].astype(object)
    frame.loc[7, "year"] = "2008.5"  # an int with a fraction
    frame.loc[8, "year"] = "soon"  # not a number
    frame.loc[9, "bill_length_mm"] = -1.0  # below min
    frame.loc[10, "species"] = "Emperor"  # unknown class
    errors = check(tmp_path, frame)["errors"]
    assert (
        "column 'sex': value 'unknown' not in the declared categories [female, male] at rows 3, 6" in errors
    )
    assert "column 'adult': expected bool (true/false, 1/0, yes/no), got 'maybe' at row 4" in errors
    assert "column 'body_mass_g': missing value (empty/NaN) at rows 5, 7" in errors
    assert "column 'year': expected int, got a fraction at row 8" in errors
    assert "column 'year': expected int, got non-numeric value 'soon' at row 9" in errors
    assert "column 'bill_length_mm': below min 0 at row 10" in errors
    assert any(e.startswith("column 'species' (label): unknown label 'Emperor' at row 11") for e in errors)
    assert len(errors) == 7


def test_regression_label_must_be_a_number(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "price": ["1.5", "cheap", "", "4"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = {"path": str(tmp_path / "t.csv"), "label": "price", "features": {"x": {}}}
    params = load_params(write_params(tmp_path, data, task="regression"))
    report = validate_table(tmp_path / "t.csv", params.data)
    assert report["errors"] == [
        "column 'price' (label): expected a number, got non-numeric value 'cheap' at row 2",
    ]
    assert report["label_missing"] == {"rows": 1, "policy": "drop_row"}  # row 3: dropped, counted
    params = load_params(write_params(tmp_path, {**data, "label_missing": "error"}, task="regression"))
    assert validate_table(tmp_path / "t.csv", params.data)["errors"] == [
        "column 'price' (label): missing label at row 3 (data.label_missing: error; drop_row leaves these"
        " rows out)",
        "column 'price' (label): expected a number, got non-numeric value 'cheap' at row 2",
    ]


def test_parquet_with_typed_columns(tmp_path):
    frame = mixed_table(60, seed=2)
    frame["adult"] = frame["adult"] == "true"  # a real bool column
    frame["sex"] = frame["sex"].fillna("male")
    params = mixed_params(tmp_path, path=str(tmp_path / "t.parquet"))
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    report = validate_table(tmp_path / "t.parquet", params.data)
    assert report["ok"], report["errors"]


def fitted(tmp_path):
    """The preprocessing of a small mixed table, fitted on its first 100 rows as `prepare` does."""
    from model.prepare import encode_table
    from model.table import read_typed

    params = mixed_params(tmp_path)
    frame = mixed_table(150, seed=4)
    frame.to_csv(tmp_path / "t.csv", index=False)
    table = read_typed(tmp_path / "t.csv", params.data)
    matrix, columns = encode_table(params.data, table.frame, np.arange(150), np.arange(100))
    return params, frame, matrix, {"features": params.data.feature_names, "columns": columns}


def test_encoding_is_codes_nan_and_train_only_statistics(tmp_path):
    params, frame, matrix, prep = fitted(tmp_path)
    cols = {c["name"]: c for c in prep["columns"]}
    island = params.data.feature_names.index("island")
    assert cols["island"]["categories"] == sorted(frame["island"].iloc[:100].unique())
    assert cols["sex"]["categories"] == ["female", "male"]  # declared, in declared order
    codes = matrix[:, island]
    assert np.array_equal(
        np.array(cols["island"]["categories"], dtype=object)[codes.astype(int)], frame["island"]
    )
    bill = params.data.feature_names.index("bill_length_mm")
    assert np.array_equal(np.isnan(matrix[:, bill]), frame["bill_length_mm"].isna().to_numpy())
    train_bill = frame["bill_length_mm"].iloc[:100]
    assert cols["bill_length_mm"]["fill"] == pytest.approx(train_bill.median())  # train rows only
    assert cols["flipper_length_mm"]["fill"] == 0.0  # constant
    adult = params.data.feature_names.index("adult")
    assert set(np.unique(matrix[:, adult])) <= {0.0, 1.0}


def test_the_module_imputes_one_hots_with_an_unknown_bucket_and_scales(tmp_path):
    params, _, matrix, prep = fitted(tmp_path)
    net = TabularNet(prep, 3, [4])
    names = params.data.feature_names
    row = matrix[:1].copy()
    row[0, names.index("bill_length_mm")] = np.nan
    row[0, names.index("island")] = -1.0  # unseen in training
    x = net.prep(torch.tensor(row, dtype=torch.float32))
    cols = {c["name"]: c for c in prep["columns"]}
    numeric = [n for n in names if cols[n]["type"] != "category"]
    bill = cols["bill_length_mm"]
    expected = (bill["fill"] - bill["mean"]) / bill["std"]
    assert x[0, numeric.index("bill_length_mm")].item() == pytest.approx(expected, abs=1e-5)
    one_hot = x[0, len(numeric) :]
    island_width = len(cols["island"]["categories"]) + 1
    assert one_hot[:island_width].tolist() == [0.0] * (island_width - 1) + [1.0]  # the unknown slot
    assert one_hot.sum().item() == 2.0  # one slot per category column
    scripted = torch.jit.script(net)  # what ships: the same numbers from TorchScript
    batch = torch.tensor(matrix, dtype=torch.float32)
    assert torch.equal(scripted(batch), net(batch)) and not torch.isnan(net(batch)).any()


def test_regression_output_is_in_the_label_units(tmp_path):
    _, _, _, prep = fitted(tmp_path)
    prep = {**prep, "task": "regression", "target": {"mean": 4000.0, "std": 500.0}}
    net = TabularNet(prep, 1, [4]).eval()
    x = torch.zeros(3, len(prep["features"]))
    assert torch.allclose(net(x), net.standardised(x) * 500.0 + 4000.0) and net(x).shape == (3, 1)


def test_class_weights():
    assert encoding.class_weights("none", ["a", "b"], [90, 10]) is None
    assert encoding.class_weights("auto", ["a", "b"], [90, 10]) == pytest.approx([100 / 180, 100 / 20])
    assert encoding.class_weights({"b": 3}, ["a", "b"], [90, 10]) == [1.0, 3.0]
    with pytest.raises(ParamsError, match=r"'c', not in data\.classes"):
        encoding.class_weights({"c": 3}, ["a", "b"], [90, 10])


def test_decoding_for_the_drift_reference():
    prep = {"columns": [{"name": "c", "type": "category", "categories": ["x", "y"]}]}
    frame = pd.DataFrame({"c": [0.0, 1.0, -1.0, np.nan]})
    assert encoding.decode_categories(frame, prep)["c"].tolist() == ["x", "y", "<unknown>", None]
    assert json.dumps(encoding.schema({"columns": [{**prep["columns"][0], "missing": "impute"}]}))
    schema = [*prep["columns"], {"name": "b", "type": "bool"}, {"name": "f", "type": "float"}]
    frame = frame.assign(b=[1.0, 0.0, np.nan, 1.0], f=[1.5, np.nan, 2.0, 3.0])
    assert encoding.raw_records(frame, schema)[:3] == [  # a sample request: what a client sends
        {"c": "x", "b": True, "f": 1.5},
        {"c": "y", "b": False, "f": None},
        {"c": "<unknown>", "b": None, "f": 2.0},
    ]


def test_class_weights_reach_the_loss(tmp_path):
    from dataclasses import replace

    from mlops.config.sections import Component, Train
    from model.train import fit

    params, frame, matrix, prep = fitted(tmp_path)
    labels = frame["species"].map({c: i for i, c in enumerate(params.data.classes)}).to_numpy()
    split = pd.DataFrame(matrix, columns=params.data.feature_names).assign(label=labels)
    prep["class_counts"] = encoding.class_counts(labels[:100], 3)
    tiny = Component("model.net.LitTabular", {"hidden": [4]})
    params = replace(params, train=Train(model=tiny, max_epochs=1, batch_size=50, class_weights="auto"))
    module, _ = fit(params, split.iloc[:100], split.iloc[100:], prep)
    expected = encoding.class_weights("auto", params.data.classes, prep["class_counts"])
    assert module.loss.weight.tolist() == pytest.approx(expected)
    assert min(expected) < 1 < max(expected)  # the table is imbalanced: the rare class weighs more
