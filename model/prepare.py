"""DVC stage `prepare`: a seeded train/val/test split in the encoded-raw form, preprocessing fitted on train.

The splits hold what the exported model takes (model/encoding.py): one float per feature, categories as
codes (-1 unknown), NaN where a value is missing (`missing: drop_row` rows are left out), plus `label`
(the class index, or the number for regression). The vocabularies, fill values and standardisation are
fitted on the training rows only and written to preprocessing.json; `train` bakes them into the model,
so serving needs no separate preprocessing step and cannot drift from training.

Memory: the typed table (model.table) plus one float64 matrix of the kept rows; each split is written
from row indices, one split at a time. No per-row Python.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlops.config import paths
from mlops.config import values as raw
from mlops.config.errors import UserError
from mlops.config.params import DataSpec, load_params
from model import encoding
from model.table import read_typed

LABEL = "label"
ROW_GROUP = 1 << 17  # rows per Parquet row group of a split (DDP ranks read whole row groups)


def clean_frame(frame: pd.DataFrame, spec: DataSpec) -> pd.DataFrame:
    """A text table (model.dataset.read_table) as schema columns: numbers as float64, bool as 0/1,
    categories as their (raw) strings, label as its class index (or number). Assumes `validate` passed.
    Dates stay as their text. Values are read by mlops/config/values.py, as training and the handler read
    them; rows without a label are left out (data.label_missing: drop_row). The traffic generator and
    tests use it to get plausible raw request values."""
    out = pd.DataFrame(index=frame.index)
    for feature in spec.features:
        values = frame[feature.name]
        if feature.numeric:
            out[feature.name] = _each(values, raw.converter(feature.type))
        elif feature.type == "bool":
            out[feature.name] = _each(values, raw.converter("bool"))
        else:
            out[feature.name] = values.astype(str).str.strip()
    label = frame[spec.label]
    unlabelled = label.map(raw.is_null).to_numpy(dtype=bool)
    if spec.regression:
        out[LABEL] = _each(label, raw.converter("float"))
    else:
        index = {str(c): i for i, c in enumerate(spec.classes)}
        out[LABEL] = label.astype(str).str.strip().map(index)
    if unlabelled.any() and spec.label_missing == "drop_row":
        out = out[~unlabelled]
    if not spec.regression:
        out[LABEL] = out[LABEL].astype("int64")
    return out


def _each(values: pd.Series, convert) -> pd.Series:
    """convert (mlops/config/values.py) applied once per distinct value; float64."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    lookup = {v: convert(v) for v in pd.unique(values)}
    return values.map(lookup).astype("float64")


def split_indices(labels: np.ndarray | None, n: int, test_size: float, val_size: float, seed: int):
    """Seeded three-way split of row positions, stratified by class when `labels` is given (not for
    regression). val_size is a share of the whole table, like test_size. The order is shuffled."""
    rows = np.arange(n)
    strat = labels
    rest, test = train_test_split(rows, test_size=test_size, stratify=strat, random_state=seed)
    strat = labels[rest] if labels is not None else None
    train, val = train_test_split(
        rest, test_size=val_size / (1 - test_size), stratify=strat, random_state=seed
    )
    return train, val, test


def split(frame: pd.DataFrame, test_size: float, val_size: float, seed: int, stratify: bool = True):
    """The same split on an in-memory frame with a `label` column (tests, benchmarks)."""
    labels = frame[LABEL].to_numpy() if stratify else None
    train, val, test = split_indices(labels, len(frame), test_size, val_size, seed)
    return frame.iloc[train], frame.iloc[val], frame.iloc[test]


def fit_scaler(train: pd.DataFrame, features: list[str]) -> dict:
    """Preprocessing for an all-float encoded table (the bundled one), fitted on `train`."""
    from mlops.config.params import FeatureSpec

    columns = [
        encoding.fit_column(FeatureSpec(name), train[name].to_numpy(dtype=np.float64), None)
        for name in features
    ]
    return {"features": list(features), "task": "classification", "columns": columns}


def encode_table(spec: DataSpec, frame: pd.DataFrame, rows: np.ndarray, train: np.ndarray, consume=False):
    """Encoded-raw float64 matrix of `rows` (positions in `frame`) and the preprocessing, fitted on the
    positions `train` (indices into `rows`). `consume`: drop each column from `frame` once encoded, so
    the typed table and the matrix are not both held whole."""
    matrix = np.empty((len(rows), len(spec.features)), dtype=np.float64)
    columns = []
    for j, feature in enumerate(spec.features):
        values = frame.pop(feature.name) if consume else frame[feature.name]
        vocab = None
        if feature.type == "category":
            vocab = encoding.vocabulary(feature, values.iloc[rows[train]])
        matrix[:, j] = encoding.encode_column(feature, values, vocab)[rows]
        columns.append(encoding.fit_column(feature, matrix[train, j], vocab))
    return matrix, columns


def run() -> None:
    params = load_params()
    spec = params.data
    table = read_typed(spec.path, spec)
    frame = table.frame
    if table.bad_text or any(name not in frame.columns for name in [*spec.feature_names, spec.label]):
        raise UserError(f"{spec.path}: does not match the schema; run `mlops validate` for the details")
    drop = np.zeros(len(frame), dtype=bool)
    for feature in spec.features:
        if feature.missing == "drop_row":
            drop |= frame[feature.name].isna().to_numpy()
    unlabelled = frame[spec.label].isna().to_numpy()
    if spec.label_missing == "drop_row":
        drop |= unlabelled
    rows = np.flatnonzero(~drop)
    if spec.regression:
        labels = frame[spec.label].to_numpy(dtype=np.float64)[rows]
    else:
        index = pd.Index([str(c) for c in spec.classes], dtype=object)
        lookup = np.append(index.get_indexer(frame[spec.label].cat.categories), -1)
        labels = lookup[frame[spec.label].cat.codes.to_numpy()][rows]
        if (labels < 0).any():
            raise UserError(
                f"{spec.path}: a label is missing or unknown; run `mlops validate` for the details"
            )
    train, val, test = split_indices(
        None if spec.regression else labels,
        len(rows),
        test_size=float(params.split.test_size),
        val_size=float(params.split.val_size),
        seed=params.seed,
    )
    matrix, columns = encode_table(spec, frame, rows, train, consume=True)
    del frame, table
    preprocessing = {"features": spec.feature_names, "task": spec.task, "columns": columns}
    if spec.regression:
        train_labels = labels[train]
        std = float(train_labels.std())
        preprocessing["target"] = {"mean": float(train_labels.mean()), "std": std if std > 0 else 1.0}
    else:
        preprocessing["class_counts"] = encoding.class_counts(labels[train], len(spec.classes))

    import pyarrow as pa
    import pyarrow.parquet as pq

    paths.PREPARED_DIR.mkdir(parents=True, exist_ok=True)
    label_type = np.float64 if spec.regression else np.int64
    names = [*spec.feature_names, LABEL]
    schema = pa.schema(
        [(n, pa.float64()) for n in spec.feature_names] + [(LABEL, pa.from_numpy_dtype(label_type))]
    )
    for part, target in ((train, paths.TRAIN_SPLIT), (val, paths.VAL_SPLIT), (test, paths.TEST_SPLIT)):
        with pq.ParquetWriter(target, schema) as writer:  # a row group per slice: a slice's copy at a time
            for start in range(0, max(len(part), 1), ROW_GROUP):
                rows = part[start : start + ROW_GROUP]
                arrays = [pa.array(matrix[rows, j]) for j in range(matrix.shape[1])]
                arrays.append(pa.array(labels[rows].astype(label_type)))
                writer.write_table(pa.table(arrays, names=names))
                del arrays
    paths.PREPROCESSING.write_text(json.dumps(preprocessing, indent=2) + "\n")
    dropped = f"; {int(drop.sum())} rows with missing values dropped" if drop.any() else ""
    if drop.any() and unlabelled.any():
        dropped += f" ({int(unlabelled.sum())} without a label)"
    print(
        f"prepare: train={len(train)} val={len(val)} test={len(test)} rows{dropped} -> {paths.PREPARED_DIR}/"
    )
