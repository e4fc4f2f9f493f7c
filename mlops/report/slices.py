"""Slices of the test split from params.yaml `report.slices`: where does the model do worse?

A slice spec is a feature column taken as categorical (`{column: grade}`: one slice per value) or cut
into quantile bins (`{column: mean_radius, bins: 3}`; labels `q1 6.98–12.2`: from the lower edge
included to the upper edge excluded, the last bin includes both). Bin edges come from the whole
prepared table, not the test split, so they do not move when the split seed changes and `main` and the
PR slice alike.

The splits hold category codes and NaN (the exported model's input): a category column slices by its
values' names (the vocabulary in artifacts/model/meta.json), code -1 as "unknown"; a missing value is
a slice "missing" of its own, in either kind of spec.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

from mlops.report.uncertainty import Interval, intervals, point_metrics, recentre

PREFIX = "slice:"  # column prefix of slice labels in eval/predictions.csv
MISSING, UNKNOWN = "missing", "unknown"  # labels of a NaN value and of an unseen category (code -1)


def _check(specs: list, columns: list[str]) -> list[dict]:
    """Valid specs; one naming a column the data does not have is skipped with a printed warning, so
    bringing your own data stays an edit of the `data:` section only (the stage log says what to fix)."""
    checked = []
    for i, spec in enumerate(specs or []):
        spec = {"column": spec} if isinstance(spec, str) else dict(spec or {})
        column = spec.get("column")
        if column not in columns:
            print(
                f"evaluate: report.slices[{i}].column {column!r} is not a feature column, slice skipped "
                f"(slices can use: {', '.join(columns)})"
            )
            continue
        bins = spec.get("bins")
        if bins is not None and (not isinstance(bins, int) or bins < 2):
            raise ValueError(f"params.yaml: report.slices[{i}].bins must be an integer >= 2, got {bins!r}")
        checked.append({"column": column, "bins": bins})
    return checked


def _edge(x: float) -> str:
    return f"{x:.3g}"


def _by_value(values: pd.Series, vocabulary: list | None) -> pd.Series:
    """One label per distinct value: a category's name from its code, else the number itself."""
    if vocabulary is None:
        return values.map(lambda v: MISSING if pd.isna(v) else f"{v:g}" if isinstance(v, float) else str(v))
    names = np.array([*map(str, vocabulary), UNKNOWN, MISSING], dtype=object)
    codes = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(codes) & (codes >= 0) & (codes < len(vocabulary))
    index = np.where(known, np.nan_to_num(codes, nan=0).astype(np.int64), len(vocabulary))
    index[np.isnan(codes)] = len(vocabulary) + 1
    return pd.Series(names[index], index=values.index)


def assign(
    test: pd.DataFrame, table: pd.DataFrame, specs: list, vocabularies: dict[str, list] | None = None
) -> pd.DataFrame:
    """Slice label of every test row, one column `slice:<column>` per spec. `vocabularies`: the
    category columns' values in code order (meta.json's schema); other columns slice by number."""
    out = pd.DataFrame(index=test.index)
    vocabularies = vocabularies or {}
    for spec in _check(specs, [c for c in test.columns if c != "label"]):
        column, bins = spec["column"], spec["bins"]
        values = test[column]
        if bins is None or column in vocabularies:
            labels = _by_value(values, vocabularies.get(column))
        else:
            whole = table[column].to_numpy(dtype=float)
            edges = np.unique(np.nanquantile(whole, np.linspace(0, 1, bins + 1)))
            inner = edges[1:-1]
            numbers = values.to_numpy(dtype=float)
            index = np.searchsorted(inner, numbers, side="right")
            names = np.array(
                [f"q{i + 1} {_edge(lo)}–{_edge(hi)}" for i, (lo, hi) in enumerate(itertools.pairwise(edges))]
                + [MISSING],
                dtype=object,
            )
            index[np.isnan(numbers)] = len(names) - 1
            labels = pd.Series(names[index], index=test.index)
        out[PREFIX + column] = labels.astype(str)
    return out


def key(label: str) -> str:
    """A metrics.json key for a slice label: `q1 6.98–11.7` -> `q1`; other labels sanitised."""
    head = label.split(" ")[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", head) or "_"


def slice_table(
    y: np.ndarray,
    proba: np.ndarray,
    labels: pd.DataFrame,
    metrics: tuple[str, ...],
    resamples: int,
    confidence: float,
    seed: int,
    sample: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per slice: rows (and a binary model's positives), each metric and its interval (NaN where
    undefined, e.g. one class).

    `sample`: a boolean mask of the rows the intervals are drawn from (evaluate's bounded sample of a
    large test split); the point values always use every row of the slice."""
    rows = []
    binary = proba.shape[1] == 2 and not np.issubdtype(np.asarray(y).dtype, np.floating)
    for column in labels.columns:
        for label in sorted(labels[column].unique()):
            mask = (labels[column] == label).to_numpy()
            values = point_metrics(y[mask], proba[mask], metrics)
            drawn = mask if sample is None else mask & sample
            spans: dict[str, Interval | None] = (
                intervals(y[drawn], proba[drawn], resamples, confidence, seed, metrics)
                if drawn.sum()
                else dict.fromkeys(metrics)
            )
            if drawn.sum() and drawn.sum() < mask.sum():  # around the slice's value on all its rows
                spans = recentre(spans, values, point_metrics(y[drawn], proba[drawn], metrics))
            row = {"slice": column[len(PREFIX) :], "bin": label, "rows": int(mask.sum())}
            if binary:
                row["positives"] = int(np.sum(y[mask] == 1))
            for m in metrics:
                span = spans[m]
                row[m] = values[m]
                row[f"{m}_low"] = span.low if span else np.nan
                row[f"{m}_high"] = span.high if span else np.nan
            rows.append(row)
    return pd.DataFrame(rows).round(6)
