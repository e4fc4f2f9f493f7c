"""DVC stage `validate`: check the table against the schema in params.yaml before anything trains on it.

Every problem names the column and the data rows (1-based, header excluded), so a bad file can be
fixed without a debugger. The report is written either way; the stage fails when there are errors.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops import paths
from mlops.errors import UserError
from mlops.params import DataSpec, load_params
from model.table import TypedTable, bool_codes, read_typed

MAX_ROWS_SHOWN = 10


def _rows(mask) -> str:
    rows = [int(i) + 1 for i in np.flatnonzero(np.asarray(mask))]
    shown = ", ".join(map(str, rows[:MAX_ROWS_SHOWN]))
    more = f" (+{len(rows) - MAX_ROWS_SHOWN} more)" if len(rows) > MAX_ROWS_SHOWN else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _header_errors(path: Path) -> list[str]:
    if path.suffix.lower() not in (".csv", ".txt"):
        return []
    with path.open(newline="") as fh:
        header = next(csv.reader(fh), [])
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(header, start=1):
        positions.setdefault(name, []).append(i)
    return [
        f"column {name!r}: appears {len(pos)} times in the header (positions {', '.join(map(str, pos))})"
        for name, pos in positions.items()
        if len(pos) > 1
    ]


def _quote(values: pd.Series) -> str:
    return ", ".join(repr(str(v)) for v in pd.unique(values.astype(str))[:5])


def _check_numeric(name: str, values: pd.Series, spec, bad: pd.Series | None, what: str) -> list[str]:
    """values: float64 with NaN for missing and for unparsable cells (listed in `bad`)."""
    errors = []
    if bad is not None:
        mask = np.zeros(len(values), dtype=bool)
        mask[bad.index.to_numpy()] = True
        errors.append(
            f"column {name!r}{what}: expected {getattr(spec, 'type', 'a number')}, got non-numeric value"
            f" {str(bad.iloc[0])!r} at {_rows(mask)}"
        )
    array = values.to_numpy(dtype=np.float64)
    infinite = np.isinf(array)
    if infinite.any():
        errors.append(f"column {name!r}{what}: infinite value at {_rows(infinite)}")
    if spec is None:
        return errors
    finite = np.isfinite(array)
    if spec.type == "int":
        fractional = finite & (array != np.round(array))
        if fractional.any():
            errors.append(f"column {name!r}: expected int, got a fraction at {_rows(fractional)}")
    with np.errstate(invalid="ignore"):
        if spec.min is not None and (low := finite & (array < spec.min)).any():
            errors.append(f"column {name!r}: below min {spec.min} at {_rows(low)}")
        if spec.max is not None and (high := finite & (array > spec.max)).any():
            errors.append(f"column {name!r}: above max {spec.max} at {_rows(high)}")
    return errors


def _check_text(spec, values: pd.Series) -> list[str]:
    """category: values outside declared categories; bool: values that are not true/false."""
    if spec.type == "bool":
        invalid = bool_codes(values)[1]
        if invalid.any():
            return [
                f"column {spec.name!r}: expected bool (true/false, 1/0, yes/no), got"
                f" {_quote(values[invalid])} at {_rows(invalid)}"
            ]
        return []
    if spec.categories is None:
        return []
    outside = ~values.cat.categories.isin(list(spec.categories))
    if not outside.any():
        return []
    mask = np.isin(values.cat.codes.to_numpy(), np.flatnonzero(outside))
    return [
        f"column {spec.name!r}: value {_quote(values[mask])} not in the declared categories"
        f" [{', '.join(spec.categories)}] at {_rows(mask)}"
    ]


def _check_feature(table: TypedTable, spec) -> tuple[list[str], np.ndarray]:
    """Errors for one feature column, and its missing-value mask (the missing policy decides)."""
    values = table.frame[spec.name]
    if spec.numeric:
        errors = _check_numeric(spec.name, values, spec, table.bad_text.get(spec.name), "")
        missing = values.isna().to_numpy()
        if spec.name in table.bad_text:
            missing[table.bad_text[spec.name].index.to_numpy()] = False
    else:
        errors = _check_text(spec, values)
        missing = values.isna().to_numpy()
    if spec.missing == "error" and missing.any():
        errors.append(f"column {spec.name!r}: missing value (empty/NaN) at {_rows(missing)}")
    return errors, missing


def _check_label(table: TypedTable, spec: DataSpec, keep: np.ndarray, min_per_class: int):
    values = table.frame[spec.label]
    errors = []
    missing = values.isna().to_numpy()
    if spec.regression:
        bad = table.bad_text.get(spec.label)
        if bad is not None:
            missing[bad.index.to_numpy()] = False
        if missing.any():
            errors.append(f"column {spec.label!r} (label): missing label at {_rows(missing)}")
        errors += _check_numeric(spec.label, values, None, bad, " (label)")
        ok = keep & np.isfinite(values.to_numpy(dtype=np.float64))
        summary = values[ok].describe()
        stats = {k: round(float(summary[k]), 6) for k in ("mean", "std", "min", "max")} if ok.any() else {}
        return errors, {"label": stats}
    if missing.any():
        errors.append(f"column {spec.label!r} (label): missing label at {_rows(missing)}")
    allowed = [str(c) for c in spec.classes]
    outside = ~values.cat.categories.isin(allowed)
    unknown = np.isin(values.cat.codes.to_numpy(), np.flatnonzero(outside))
    if unknown.any():
        errors.append(
            f"column {spec.label!r} (label): unknown label {_quote(values[unknown])}"
            f" at {_rows(unknown)};"
            f" allowed: {', '.join(allowed)}"
        )
    counts = values[keep & ~unknown & ~missing].value_counts()
    balance = {c: int(counts.get(c, 0)) for c in allowed}
    for cls, n in balance.items():
        if n < min_per_class:
            errors.append(
                f"column {spec.label!r} (label): class {cls!r} has {n} rows; the stratified split needs"
                f" at least {min_per_class}"
            )
    return errors, {"class_balance": balance}


def validate_table(path: Path, spec: DataSpec, min_per_class: int = 3) -> dict:
    """Return a report dict: ok, errors (each naming column and rows), row counts, missing values per
    column, and the class balance (classification) or the label's range (regression)."""
    path = Path(path)
    report: dict = {"file": str(path), "rows": 0, "ok": False, "errors": [], "class_balance": {}}
    if not path.exists():
        report["errors"] = [f"{path}: file not found (data.path in params.yaml)"]
        return report
    if path.stat().st_size == 0:
        report["errors"] = [f"{path}: file is empty (0 bytes): expected a header and rows"]
        return report
    errors = _header_errors(path)
    try:
        table = read_typed(path, spec)
    except (pa.ArrowInvalid, OSError, UserError) as err:
        report["errors"] = [*errors, f"{path}: cannot be parsed: {err}"]
        return report
    frame = table.frame
    report["rows"] = len(frame)
    if frame.empty:
        report["errors"] = [*errors, f"{path}: has a header but no data rows"]
        return report
    expected = [*spec.feature_names, spec.label]
    absent = [c for c in expected if c not in frame.columns]
    errors += [f"column {c!r}: missing from {path} (required by params.yaml data)" for c in absent]
    dropped = np.zeros(len(frame), dtype=bool)
    report["missing"] = {}
    for feature in spec.features:
        if feature.name in frame.columns:
            feature_errors, missing = _check_feature(table, feature)
            errors += feature_errors
            if missing.any():
                report["missing"][feature.name] = {"rows": int(missing.sum()), "policy": feature.missing}
            if feature.missing == "drop_row":
                dropped |= missing
    report["rows_dropped"] = int(dropped.sum())
    if spec.label in frame.columns:
        label_errors, summary = _check_label(table, spec, ~dropped, min_per_class)
        errors += label_errors
        report.update(summary)
    if len(frame) and dropped.all():
        errors.append(f"{path}: every row has a missing value in a drop_row column; nothing is left")
    report["errors"] = errors
    report["ignored_columns"] = [c for c in table.header if c not in expected]
    report["ok"] = not errors
    return report


def run() -> int:
    params = load_params()
    report = validate_table(params.data.path, params.data)
    paths.VALIDATION_REPORT.parent.mkdir(parents=True, exist_ok=True)
    paths.VALIDATION_REPORT.write_text(json.dumps(report, indent=2) + "\n")
    if report["ok"]:
        if "label" in report:
            what = "label " + ", ".join(f"{k}={v}" for k, v in report["label"].items())
        else:
            what = "classes " + ", ".join(f"{k}={v}" for k, v in report["class_balance"].items())
        dropped = f" ({report['rows_dropped']} with missing values dropped)" if report["rows_dropped"] else ""
        print(f"validate: {report['file']} OK: {report['rows']} rows{dropped}; {what}")
        return 0
    print(f"validate: {report['file']} FAILED with {len(report['errors'])} problem(s):", file=sys.stderr)
    for err in report["errors"]:
        print(f"  - {err}", file=sys.stderr)
    return 1
