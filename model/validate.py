"""DVC stage `validate`: check the table against the schema in params.yaml before anything trains on it.

Every problem names the column and the data rows (1-based, header excluded), so a bad file can be
fixed without a debugger. The report is written either way; the stage fails when there are errors.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from mlops import paths
from mlops.errors import UserError
from mlops.params import DataSpec, load_params
from model.dataset import read_table

MAX_ROWS_SHOWN = 10


def _rows(mask: pd.Series) -> str:
    rows = [int(i) + 1 for i in np.flatnonzero(mask.to_numpy())]
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


def _missing(values: pd.Series) -> pd.Series:
    text = values.astype(str).str.strip().str.lower()
    return values.isna() | text.isin(["", "nan", "na", "null", "none"])


def _check_feature(frame: pd.DataFrame, spec) -> list[str]:
    col = frame[spec.name]
    errors = []
    missing = _missing(col)
    if missing.any():
        errors.append(f"column {spec.name!r}: missing value (empty/NaN) at {_rows(missing)}")
    numeric = pd.to_numeric(col.where(~missing), errors="coerce")
    bad_type = numeric.isna() & ~missing
    if bad_type.any():
        example = col[bad_type].iloc[0]
        errors.append(
            f"column {spec.name!r}: expected {spec.dtype}, got non-numeric value {example!r}"
            f" at {_rows(bad_type)}"
        )
    finite = np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
    infinite = pd.Series(~finite, index=col.index) & numeric.notna()
    if infinite.any():
        errors.append(f"column {spec.name!r}: infinite value at {_rows(infinite)}")
    ok = numeric.notna() & ~infinite
    if spec.dtype == "int":
        fractional = ok & (numeric != numeric.round())
        if fractional.any():
            errors.append(f"column {spec.name!r}: expected int, got a fraction at {_rows(fractional)}")
    if spec.min is not None and (low := ok & (numeric < spec.min)).any():
        errors.append(f"column {spec.name!r}: below min {spec.min} at {_rows(low)}")
    if spec.max is not None and (high := ok & (numeric > spec.max)).any():
        errors.append(f"column {spec.name!r}: above max {spec.max} at {_rows(high)}")
    return errors


def _check_label(frame: pd.DataFrame, spec: DataSpec, min_per_class: int) -> tuple[list[str], dict]:
    col = frame[spec.label]
    errors = []
    missing = _missing(col)
    if missing.any():
        errors.append(f"column {spec.label!r} (label): missing label at {_rows(missing)}")
    allowed = {str(c) for c in spec.classes}
    text = col.astype(str).str.strip()
    unknown = ~missing & ~text.isin(allowed)
    if unknown.any():
        values = sorted(set(text[unknown]))[:5]
        errors.append(
            f"column {spec.label!r} (label): unknown label {', '.join(map(repr, values))}"
            f" at {_rows(unknown)};"
            f" allowed: {', '.join(map(str, spec.classes))}"
        )
    counts = Counter(text[~missing & ~unknown])
    balance = {str(c): counts.get(str(c), 0) for c in spec.classes}
    for cls, n in balance.items():
        if n < min_per_class:
            errors.append(
                f"column {spec.label!r} (label): class {cls!r} has {n} rows; the stratified split needs"
                f" at least {min_per_class}"
            )
    return errors, balance


def validate_table(path: Path, spec: DataSpec, min_per_class: int = 3) -> dict:
    """Return a report dict: ok, errors (each naming column and rows), row count and class balance."""
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
        frame = read_table(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UserError) as err:
        report["errors"] = [*errors, f"{path}: cannot be parsed: {err}"]
        return report
    report["rows"] = len(frame)
    if frame.empty:
        report["errors"] = [*errors, f"{path}: has a header but no data rows"]
        return report
    expected = [*spec.feature_names, spec.label]
    absent = [c for c in expected if c not in frame.columns]
    errors += [f"column {c!r}: missing from {path} (required by params.yaml data)" for c in absent]
    for feature in spec.features:
        if feature.name in frame.columns:
            errors += _check_feature(frame, feature)
    if spec.label in frame.columns:
        label_errors, report["class_balance"] = _check_label(frame, spec, min_per_class)
        errors += label_errors
    report["errors"] = errors
    report["ignored_columns"] = [c for c in frame.columns if c not in expected]
    report["ok"] = not errors
    return report


def run() -> int:
    params = load_params()
    report = validate_table(params.data.path, params.data)
    paths.VALIDATION_REPORT.parent.mkdir(parents=True, exist_ok=True)
    paths.VALIDATION_REPORT.write_text(json.dumps(report, indent=2) + "\n")
    if report["ok"]:
        balance = ", ".join(f"{k}={v}" for k, v in report["class_balance"].items())
        print(f"validate: {report['file']} OK: {report['rows']} rows; classes {balance}")
        return 0
    print(f"validate: {report['file']} FAILED with {len(report['errors'])} problem(s):", file=sys.stderr)
    for err in report["errors"]:
        print(f"  - {err}", file=sys.stderr)
    return 1
