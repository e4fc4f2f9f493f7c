"""The "encoded raw" form every model input takes, and the preprocessing fitted on the training split.

Encoded raw (the contract between prepare, the exported model and the handler): one float per feature,
in params order. float/int as is, bool as 0/1, a category as its index in the column's vocabulary and -1
for a value not in it, a date or datetime as days since 1970-01-01 (mlops/config/values.py parses the text, in
training and in the handler alike; the model derives DATE_PARTS from it), NaN for a missing value.
Everything learned from data (vocabularies, fill values, the standardisation) is fitted here on train
only, written to artifacts/prepared/preprocessing.json, and baked into the exported TorchScript module
by model/net.py, so serving applies exactly it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops.config import values as raw
from mlops.config.params import FeatureSpec
from mlops.config.sections import Train
from model.table import bool_codes

UNKNOWN = -1.0
# What the model derives from a date column (model/net.py computes them inside the exported module):
# days since 1970-01-01 (the trend), year, month 1-12, day of month 1-31, day of week 0-6 (Monday = 0),
# day of year 1-366; a datetime also hour, the time of day in hours (0 <= hour < 24, fractional).
DATE_PARTS = ("days", "year", "month", "day", "weekday", "yearday")
DATETIME_PARTS = (*DATE_PARTS, "hour")


def date_parts(days: np.ndarray, kind: str = "date") -> np.ndarray:
    """[n] days since 1970-01-01 -> [n, len(parts)] float64, the same arithmetic as model/net.py's
    (Hinnant's civil-from-days on whole days; exact for years 1-9999)."""
    whole = np.floor(days)
    z = whole.astype(np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    before = year - 1  # days from 0000-03-01 to 1 January of `year`, as above with month = 1
    era1 = np.floor_divide(before, 400)
    yoe1 = before - era1 * 400
    jan1 = era1 * 146097 + yoe1 * 365 + yoe1 // 4 - yoe1 // 100 + 306 - 719468
    weekday = np.mod(z - 719468 + 3, 7)  # 1970-01-01 was a Thursday (3)
    parts = [whole, year, month, day, weekday, z - 719468 - jan1 + 1]
    if kind == "datetime":
        parts.append((days - whole) * 24.0)
    return np.stack([np.asarray(p, dtype=np.float64) for p in parts], axis=1)


def vocabulary(spec: FeatureSpec, train: pd.Series) -> list[str]:
    """The declared categories, else the values seen in train, sorted (stable across runs)."""
    if spec.categories is not None:
        return list(spec.categories)
    counts = train.value_counts(sort=False)
    return sorted(str(v) for v in counts.index[counts.to_numpy() > 0])


def encode_column(spec: FeatureSpec, values: pd.Series, vocab: list[str] | None) -> np.ndarray:
    """One column of the typed table (model.table) in encoded-raw float64."""
    if spec.numeric or spec.temporal:  # a date column was parsed to days by model.table
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if spec.type == "bool":
        return bool_codes(values)[0]
    index = pd.Index(vocab or [], dtype=object)
    lookup = np.append(index.get_indexer(values.cat.categories.astype(str)), np.nan).astype(np.float64)
    return lookup[values.cat.codes.to_numpy()]  # pandas code -1 (missing) picks the trailing NaN


def _fill(spec: FeatureSpec, column: np.ndarray, vocab: list[str] | None) -> float:
    present = column[~np.isnan(column)]
    strategy = spec.impute
    if strategy == "constant":
        value = spec.fill_value
        if spec.type == "category":
            return float(vocab.index(str(value))) if str(value) in (vocab or []) else UNKNOWN
        if spec.temporal:
            return raw.days(str(value), spec.type)
        return float(value)
    if present.size == 0:
        return 0.0
    if strategy == "median" and spec.type != "category":
        return float(np.median(present))
    values, counts = np.unique(present, return_counts=True)
    return float(values[np.argmax(counts)])  # the most frequent; ties go to the smallest code/value


def fit_column(spec: FeatureSpec, column: np.ndarray, vocab: list[str] | None) -> dict:
    """Fill value and (numeric, bool) standardisation, from the training rows of one encoded column.

    Every column gets a fill value, also under `missing: error | drop_row`: such rows never reach the
    model offline and the handler refuses them, but the module should never emit NaN."""
    fill = _fill(spec, column, vocab)
    entry: dict = {"name": spec.name, "type": spec.type, "missing": spec.missing, "fill": fill}
    if spec.type == "category":
        entry["categories"] = list(vocab or [])
    elif spec.temporal:  # the model standardises each derived part (DATE_PARTS) with these
        filled = np.where(np.isnan(column), fill, column)
        parts = date_parts(filled, spec.type) if filled.size else np.zeros((1, len(DATETIME_PARTS)))
        std = parts.std(axis=0)
        entry["parts"] = list(DATETIME_PARTS if spec.type == "datetime" else DATE_PARTS)
        entry["mean"] = [float(m) for m in parts.mean(axis=0)][: len(entry["parts"])]
        entry["std"] = [float(s) if s > 0 else 1.0 for s in std][: len(entry["parts"])]
    else:
        filled = np.where(np.isnan(column), fill, column)
        std = float(filled.std()) if filled.size else 1.0
        entry["mean"] = float(filled.mean()) if filled.size else 0.0
        entry["std"] = std if std > 0 else 1.0  # a constant column must not divide by zero
    entry["min"], entry["max"] = spec.min, spec.max
    return entry


def schema(preprocessing: dict) -> list[dict]:
    """meta.json's `schema`: per feature, in order, what a request value may be."""
    out = []
    for col in preprocessing["columns"]:
        entry = {"name": col["name"], "type": col["type"], "missing": col["missing"]}
        if col["type"] == "category":
            entry["categories"] = list(col["categories"])
        entry["min"], entry["max"] = col.get("min"), col.get("max")
        out.append(entry)
    return out


def decode_categories(frame: pd.DataFrame, preprocessing: dict) -> pd.DataFrame:
    """Encoded category codes back to their strings (-1 -> "<unknown>", NaN stays NaN); bool stays 0/1.
    The drift job compares the training split, stored encoded, with raw logged requests this way."""
    out = frame.copy()
    for col in preprocessing["columns"]:
        if col["type"] == "category" and col["name"] in out.columns:
            names = np.array([*col["categories"], "<unknown>"], dtype=object)
            codes = out[col["name"]].to_numpy(dtype=np.float64)
            missing = np.isnan(codes)
            index = np.where(missing, -1, codes).astype(np.int64)
            index[(index < 0) | (index >= len(col["categories"]))] = len(col["categories"])
            values = names[index]
            values[missing] = None
            out[col["name"]] = values
    return out


def raw_records(frame: pd.DataFrame, schema: list[dict]) -> list[dict]:
    """Encoded rows as a client sends them (meta.json's `schema`, or preprocessing.json's `columns`):
    category strings, true/false, null for a missing value. For sample requests and tests."""
    out = decode_categories(frame[[c["name"] for c in schema]], {"columns": schema})
    for col in schema:
        values = out[col["name"]]
        if col["type"] == "bool":
            flags = values.to_numpy(dtype=np.float64)
            out[col["name"]] = np.where(np.isnan(flags), None, flags == 1.0).astype(object)
        elif col["type"] in raw.DATE_TYPES:
            days = values.to_numpy(dtype=np.float64)
            texts = [None if np.isnan(d) else raw.date_text(float(d), col["type"]) for d in days]
            out[col["name"]] = pd.Series(texts, index=out.index, dtype=object)
        elif col["type"] != "category":
            out[col["name"]] = values.astype(object).where(values.notna(), None)
    return out.to_dict(orient="records")


def class_counts(labels: np.ndarray, n_classes: int) -> list[int]:
    return np.bincount(labels.astype(np.int64), minlength=n_classes).tolist()


DEFAULT_CLASS_WEIGHTS = Train.class_weights  # mlops/config/sections.py says why it is `none`


def class_weights(setting, classes: list, counts: list[int]) -> list[float] | None:
    """train.class_weights: none, auto (n / (classes x count): each class weighs the same in the loss;
    buys minority recall with accuracy and calibration), or {label: weight} (unlisted labels weigh 1)."""
    from mlops.config.params import ParamsError

    if setting is None or str(setting).lower() in ("none", "null", "false"):
        return None
    names = [str(c) for c in classes]
    if isinstance(setting, str) and setting.lower() == "auto":
        total = sum(counts)
        return [total / (len(counts) * c) if c else 0.0 for c in counts]
    if isinstance(setting, dict):
        unknown = sorted(set(map(str, setting)) - set(names))
        if unknown:
            raise ParamsError(
                f"params.yaml: train.class_weights names {', '.join(map(repr, unknown))}, not in data.classes"
            )
        weights = {str(k): v for k, v in setting.items()}
        out = []
        for name in names:
            w = weights.get(name, 1.0)
            if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
                raise ParamsError(f"params.yaml: train.class_weights.{name} must be a number >= 0; got {w!r}")
            out.append(float(w))
        return out
    raise ParamsError(
        f"params.yaml: train.class_weights must be auto, none or {{label: weight}}; got {setting!r}"
    )
