"""DVC stage `validate`: check the table against the schema in params.yaml before anything trains on it.

Every problem names the column and the data rows (1-based, header excluded), so a bad file can be
fixed without a debugger. The report is written either way; the stage fails when there are errors.
"""

from __future__ import annotations

import csv
import difflib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops.config import paths
from mlops.config import values as raw
from mlops.config.errors import UserError
from mlops.config.params import DataSpec, load_params
from model.table import TypedTable, bool_codes, read_typed

MAX_ROWS_SHOWN = 10
# A declared category whose distinct values are at least this share of its rows (and at least
# NEAR_UNIQUE_MIN of them) is near-unique: an id or a timestamp, from which a model learns nothing.
NEAR_UNIQUE_RATIO = 0.5
NEAR_UNIQUE_MIN = 50
# YAML 1.1 reads these unquoted words as booleans (PyYAML: yes/no/on/off/true/false, any common case).
YAML_BOOLS = {True: ("yes", "on", "true", "y"), False: ("no", "off", "false", "n")}


def _rows(mask) -> str:
    rows = [int(i) + 1 for i in np.flatnonzero(np.asarray(mask))]
    shown = ", ".join(map(str, rows[:MAX_ROWS_SHOWN]))
    more = f" (+{len(rows) - MAX_ROWS_SHOWN} more)" if len(rows) > MAX_ROWS_SHOWN else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _header_errors(path: Path, spec: DataSpec) -> list[str]:
    if path.suffix.lower() not in (".csv", ".txt"):
        return []
    with path.open(newline="", encoding=spec.encoding, errors="replace") as fh:
        header = [name.strip() for name in next(csv.reader(fh, delimiter=spec.sep), [])]
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


def _yaml_hint(declared: list, seen, key: str) -> str:
    """A hint when YAML turned unquoted words into booleans or null (classes: [no, yes] reads as
    [False, True]): the spellings the data holds, quoted, as they should be written. Declared values
    arrive as YAML read them, or as their str() ("False")."""
    declared = [
        {"True": True, "False": False, "None": None}.get(v, v) if isinstance(v, str) else v for v in declared
    ]
    coerced = [v for v in declared if isinstance(v, bool) or v is None]
    if not coerced:
        return ""
    seen = [str(v) for v in seen]
    fixed = []
    for v in declared:
        if isinstance(v, bool):
            match = [s for s in seen if s.lower() in YAML_BOOLS[v]]
            v = match[0] if match else YAML_BOOLS[v][0]
        elif v is None:
            match = [s for s in seen if s.lower() in ("null", "none", "~")]
            v = match[0] if match else "null"
        fixed.append(f'"{v}"')
    what = "booleans" if any(isinstance(v, bool) for v in coerced) else "null"
    return (
        f". YAML reads unquoted yes/no/on/off/true/false/null as {what} ({', '.join(map(str, coerced))}"
        f" here), not as the words in your data: quote them in params.yaml, {key}: [{', '.join(fixed)}]"
    )


def _missing_columns(absent: list[str], header: list[str], path: Path, spec: DataSpec) -> list[str]:
    """One error per absent column, with the header actually read and the closest names in it; a
    header read as one column that holds another separator says which data.sep to set."""
    shown = ", ".join(repr(h) for h in header[:20]) + (
        f" (+{len(header) - 20} more)" if len(header) > 20 else ""
    )
    read = f"the header read from {path} has {len(header)} column{'s' if len(header) != 1 else ''}: {shown}"
    hints = []
    if len(header) == 1:
        for sep in (";", "\t", "|", ","):
            if sep != spec.sep and sep in header[0]:
                hints.append(f"it looks separated by {sep!r}: set data.sep: {sep!r} in params.yaml")
                break
    errors = []
    for name in absent:
        near = difflib.get_close_matches(name, header, n=3, cutoff=0.7)
        near += [h for h in header if h.lower() == name.lower() and h not in near]
        like = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        errors.append(f"column {name!r}: missing from {path} (required by params.yaml data){like}")
    return [*errors, f"{read}" + (f"; {hints[0]}" if hints else "")]


def _cardinality_warnings(table: TypedTable, spec: DataSpec) -> list[str]:
    """Near-unique categories (an id, a timestamp): the model cannot generalise from them."""
    warnings = []
    for feature in spec.features:
        if feature.type != "category" or feature.categories is not None or feature.name not in table.frame:
            continue
        values = table.frame[feature.name]
        present = int(values.notna().sum())
        counts = values.value_counts(sort=False)
        levels = int((counts.to_numpy() > 0).sum())
        if present == 0 or levels < NEAR_UNIQUE_MIN:
            continue
        sample = [str(v) for v in counts.index[counts.to_numpy() > 0][:20]]
        dates = sum(_is_date(v) for v in sample) >= len(sample) / 2
        if levels / present < NEAR_UNIQUE_RATIO and not dates:
            continue
        advice = (
            "its values look like dates: declare it type: date (or datetime), from which the model derives"
            " year, month, day, day of week and day of year (a date unseen in training is then no unknown)"
            if dates
            else "if it is a date or time declare type: date or datetime; if it is an id, drop it from"
            " data.features"
        )
        unique = " is near-unique" if levels / present >= NEAR_UNIQUE_RATIO else ""
        warnings.append(
            f"column {feature.name!r}: a category with {levels} distinct values in {present} rows"
            f" (ratio {levels / present:.2f}){unique}; {advice}"
        )
    return warnings


def _is_date(text: str) -> bool:
    try:
        raw.days(text, "datetime")
    except raw.Invalid:
        return False
    return True


def _check_numeric(name: str, values: pd.Series, spec, bad: pd.Series | None, what: str) -> list[str]:
    """values: float64 with NaN for missing and for unparsable cells (listed in `bad`)."""
    errors = []
    if bad is not None:
        mask = np.zeros(len(values), dtype=bool)
        mask[bad.index.to_numpy()] = True
        if getattr(spec, "temporal", False):
            example = "2024-01-31" if spec.type == "date" else "2024-01-31T13:45:00Z"
            errors.append(
                f"column {name!r}: expected {spec.type} (ISO 8601, e.g. {example}), got"
                f" {str(bad.iloc[0])!r} at {_rows(mask)}"
            )
            return errors
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
    hint = _yaml_hint(list(spec.categories), values.cat.categories, "categories")
    return [
        f"column {spec.name!r}: value {_quote(values[mask])} not in the declared categories"
        f" [{', '.join(spec.categories)}] at {_rows(mask)}{hint}"
    ]


def _check_feature(table: TypedTable, spec) -> tuple[list[str], np.ndarray]:
    """Errors for one feature column, and its missing-value mask (the missing policy decides)."""
    values = table.frame[spec.name]
    if spec.numeric or spec.temporal:
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


def label_missing(table: TypedTable, spec: DataSpec) -> np.ndarray:
    """Rows without a label (empty or a null spelling; not a label that is there but unreadable)."""
    missing = table.frame[spec.label].isna().to_numpy()
    bad = table.bad_text.get(spec.label)
    if bad is not None:
        missing[bad.index.to_numpy()] = False
    return missing


def _check_label(table: TypedTable, spec: DataSpec, keep: np.ndarray, min_per_class: int):
    """Errors, the label summary, and the rows dropped for a missing label (data.label_missing)."""
    values = table.frame[spec.label]
    errors = []
    missing = label_missing(table, spec)
    if missing.any() and spec.label_missing == "error":
        errors.append(
            f"column {spec.label!r} (label): missing label at {_rows(missing)} (data.label_missing: error;"
            " drop_row leaves these rows out)"
        )
    keep = keep & ~missing
    if spec.regression:
        errors += _check_numeric(spec.label, values, None, table.bad_text.get(spec.label), " (label)")
        ok = keep & np.isfinite(values.to_numpy(dtype=np.float64))
        summary = values[ok].describe()
        stats = {k: round(float(summary[k]), 6) for k in ("mean", "std", "min", "max")} if ok.any() else {}
        return errors, {"label": stats}, missing
    allowed = [str(c) for c in spec.classes]
    outside = ~values.cat.categories.isin(allowed)
    unknown = np.isin(values.cat.codes.to_numpy(), np.flatnonzero(outside))
    if unknown.any():
        errors.append(
            f"column {spec.label!r} (label): unknown label {_quote(values[unknown])}"
            f" at {_rows(unknown)};"
            f" allowed: {', '.join(allowed)}{_yaml_hint(spec.classes, values.cat.categories, 'classes')}"
        )
    counts = values[keep & ~unknown].value_counts()
    balance = {c: int(counts.get(c, 0)) for c in allowed}
    for cls, n in balance.items():
        if n < min_per_class:
            errors.append(
                f"column {spec.label!r} (label): class {cls!r} has {n} rows; the stratified split needs"
                f" at least {min_per_class}"
            )
    return errors, {"class_balance": balance}, missing


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
    errors = _header_errors(path, spec)
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
    if absent:
        errors += _missing_columns(absent, table.header, path, spec)
    report["warnings"] = _cardinality_warnings(table, spec)
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
    if spec.label in frame.columns:
        label_errors, summary, unlabelled = _check_label(table, spec, ~dropped, min_per_class)
        errors += label_errors
        report.update(summary)
        report["label_missing"] = {"rows": int(unlabelled.sum()), "policy": spec.label_missing}
        if spec.label_missing == "drop_row":
            dropped |= unlabelled
    report["rows_dropped"] = int(dropped.sum())
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
    for warning in report.get("warnings") or []:
        print(f"validate: warning: {warning}", file=sys.stderr)
    if report["ok"]:
        if "label" in report:
            what = "label " + ", ".join(f"{k}={v}" for k, v in report["label"].items())
        else:
            what = "classes " + ", ".join(f"{k}={v}" for k, v in report["class_balance"].items())
        unlabelled = (report.get("label_missing") or {}).get("rows", 0)
        dropped = f" ({report['rows_dropped']} with missing values dropped" if report["rows_dropped"] else ""
        if dropped and unlabelled:
            dropped += f", {unlabelled} of them without a label"
        dropped += ")" if dropped else ""
        print(f"validate: {report['file']} OK: {report['rows']} rows{dropped}; {what}")
        return 0
    print(f"validate: {report['file']} FAILED with {len(report['errors'])} problem(s):", file=sys.stderr)
    for err in report["errors"]:
        print(f"  - {err}", file=sys.stderr)
    return 1
