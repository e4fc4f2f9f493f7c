"""The next data snapshot: the current training table plus the labelled production records (feedback).

Feedback comes as JSON lines ({"ts", "request_id", "features": {...}, "label": "<class>"}, the inference
log's shape plus the true label; raw values: category strings, null for missing) or as CSV/Parquet tables
with the training schema's columns (and any others). Records already in the table are skipped, so a
re-run or a merged snapshot never duplicates rows. Columns outside the schema are never left empty in a
new row: see `_outside_schema`. The result must pass the same `validate` as training data; if it does
not, the table is restored and nothing changes.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlops.config.errors import UserError
from mlops.config.params import DataSpec
from model.dataset import read_table
from model.table import FALSE, NULLS, TRUE
from model.validate import validate_table
from monitoring.inference_log import ReadStats, list_files, read_jsonl


@dataclass
class Snapshot:
    path: Path
    previous_rows: int
    new_rows: int
    duplicates: int
    feedback: ReadStats
    tables: int  # feedback CSV/Parquet files read
    class_balance: dict
    dropped_columns: list[str] = field(default_factory=list)  # columns outside the schema left out
    left_out: dict = field(default_factory=dict)  # feedback rows not taken, by reason (see `clean`)

    @property
    def rows(self) -> int:
        return self.previous_rows + self.new_rows


def _feedback_tables(location: str, spec: DataSpec) -> list[pd.DataFrame]:
    """Feedback tables with ALL their columns: a column outside the schema is carried into the snapshot."""
    frames = []
    for fs, path in list_files(location, (".csv", ".parquet")):
        with fs.open(path, "rb") as fh:
            frame = (
                pd.read_parquet(fh)
                if path.endswith(".parquet")
                else pd.read_csv(fh, dtype=str, keep_default_na=False, na_values=[])
            )
        absent = [c for c in [*spec.feature_names, spec.label] if c not in frame.columns]
        if absent:
            raise UserError(
                f"{path}: feedback table lacks column(s) {', '.join(absent)} (schema: params.yaml data)"
            )
        frames.append(frame)
    return frames


def read_feedback(location: str, spec: DataSpec) -> tuple[pd.DataFrame, ReadStats, int]:
    """All labelled records at `location` as one table: the schema's columns (raw values: category
    strings, None for a missing cell), and whatever other columns feedback tables hold."""
    types = {f.name: f.type for f in spec.features}
    records, stats = read_jsonl(
        location, spec.feature_names, keys=("label", "request_id"), required=("label",), types=types
    )
    keep = [*spec.feature_names, "label", *(c for c in ("request_id", "ts") if c in records.columns)]
    records = records[keep].rename(columns={"label": spec.label})
    tables = _feedback_tables(location, spec)
    return pd.concat([records, *tables], ignore_index=True), stats, len(tables)


def clean(incoming: pd.DataFrame, spec: DataSpec, served: set[str] | None = None):
    """The feedback rows fit for training, and a count of those left out: a label that is no class (one
    bad label no longer refuses the whole snapshot), a record for a request the inference log never
    served (when `served` ids are given), and an older label of a row labelled again (the latest by ts
    wins, as in the performance rule; the superseded ones are counted as conflicting or repeated)."""
    left: dict[str, int] = {}
    frame = incoming
    if not spec.regression:
        text = frame[spec.label].astype(str).str.strip()
        bad = ~text.isin({str(c) for c in spec.classes})
        left["unknown_labels"] = int(bad.sum())
        frame = frame[~bad]
    if served is not None and "request_id" in frame:
        unserved = frame["request_id"].notna() & ~frame["request_id"].isin(served)
        left["not_served"] = int(unserved.sum())
        frame = frame[~unserved]
    if "ts" in frame and "request_id" in frame and len(frame):  # agg on no rows gives a frame, not a series
        features = pd.concat([_cell_text(frame[f.name], f.type, f.name) for f in spec.features], axis=1).agg(
            "|".join, axis=1
        )
        row = frame["request_id"].fillna("").astype(str) + "#" + features
        order = frame.assign(_row=row).sort_values("ts", kind="stable", na_position="first")
        later = order.duplicated("_row", keep="last")
        labels = order.groupby("_row")[spec.label].transform("nunique")
        left["conflicting"] = int((later & (labels > 1)).sum())
        frame = order[~later].drop(columns="_row").sort_index()
    return frame.drop(columns=[c for c in ("request_id", "ts") if c in frame]), {
        k: v for k, v in left.items() if v
    }


def _missing(values: pd.Series) -> pd.Series:
    return values.isna() | values.astype(str).str.strip().isin(NULLS)


def _number_text(values: pd.Series, name: str) -> pd.Series:
    """Numbers as the shortest text that reads back to the same float ('14.10' and 14.1 both '14.1');
    astype, unlike pd.to_numeric, parses text to the exact nearest float. Missing: ''."""
    blank = _missing(values)
    try:
        numbers = values.where(~blank, None).astype("float64")
    except (ValueError, TypeError) as err:
        raise UserError(f"column {name!r}: a non-numeric value in the data or the feedback: {err}") from None
    return numbers.map(repr).where(~blank, "")


def _cell_text(values: pd.Series, kind: str, name: str) -> pd.Series:
    """One schema column as the canonical text the CSV holds (and row identity compares)."""
    if kind in ("float", "int"):
        return _number_text(values, name)
    blank = _missing(values)
    text = values.astype(str).str.strip()
    if kind == "bool":
        low = text.str.lower()
        text = low.where(~low.isin(TRUE), "true").where(~low.isin(FALSE), "false")
    return text.where(~blank, "")


def _columns(spec: DataSpec) -> list[tuple[str, str]]:
    label_kind = "float" if spec.regression else "category"
    return [(f.name, f.type) for f in spec.features] + [(spec.label, label_kind)]


def _keys(frame: pd.DataFrame, spec: DataSpec) -> pd.Series:
    """Row identity: the schema columns' canonical text, joined."""
    parts = [_cell_text(frame[name], kind, name) for name, kind in _columns(spec)]
    return pd.concat(parts, axis=1).agg("|".join, axis=1)


def _as_text(frame: pd.DataFrame, spec: DataSpec, columns: list[str]) -> pd.DataFrame:
    """New rows as CSV text the way the table is read (every cell a string), floats round-trip exact;
    `columns` in the table's order (other columns carried from feedback tables as they came)."""
    out = pd.DataFrame(index=frame.index)
    kinds = dict(_columns(spec))
    for name in columns:
        if name in kinds:
            out[name] = _cell_text(frame[name], kinds[name], name)
        else:
            out[name] = frame[name].where(frame[name].notna(), "").astype(str)
    return out


def _outside_schema(previous: pd.DataFrame, new: pd.DataFrame, spec: DataSpec) -> list[str]:
    """The columns of the table outside the schema that the new snapshot leaves out.

    A new row never gets an empty cell in such a column. One that every new row carries (feedback
    tables may) is kept. One the new rows cannot fill (the inference log holds only the schema's
    features) is left out of the new snapshot, so the table stays consistent, every row complete.
    Training never read it (it is not in params.yaml); the previous data version keeps it, and the
    PR body names it."""
    schema = {*spec.feature_names, spec.label}
    return [
        name
        for name in previous.columns
        if name not in schema and (name not in new.columns or new[name].isna().any())
    ]


def build(spec: DataSpec, feedback: str, served: set[str] | None = None) -> Snapshot:
    """Append new labelled records to the table at spec.path in place; validate; restore it on failure.
    Only clean rows are taken (see `clean`); `left_out` says what was not."""
    path = Path(spec.path)
    previous = read_table(path)
    incoming, stats, tables = read_feedback(feedback, spec)
    received = len(incoming)
    incoming, left_out = clean(incoming, spec, served)
    keys = _keys(incoming, spec)
    new = incoming[~keys.isin(set(_keys(previous, spec))) & ~keys.duplicated()]
    snapshot = Snapshot(
        path=path,
        previous_rows=len(previous),
        new_rows=len(new),
        duplicates=received - sum(left_out.values()) - len(new),  # repeats and rows already in the data
        feedback=stats,
        tables=tables,
        class_balance={},
        left_out=left_out,
    )
    if new.empty:
        return snapshot
    snapshot.dropped_columns = _outside_schema(previous, new, spec)
    columns = [c for c in previous.columns if c not in snapshot.dropped_columns]
    with tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / path.name
        shutil.copy2(path, backup)
        if path.suffix.lower() in (".parquet", ".pq"):
            typed = new[columns].astype(previous[columns].dtypes.to_dict(), errors="ignore")
            combined = pd.concat([previous[columns], typed], ignore_index=True)
            combined.to_parquet(path, index=False)
        else:
            combined = pd.concat([previous[columns], _as_text(new, spec, columns)], ignore_index=True)
            combined.to_csv(path, index=False, lineterminator="\n")
        report = validate_table(path, spec)
        if not report["ok"]:
            shutil.copy2(backup, path)
            problems = "\n  - ".join(report["errors"][:10])
            raise UserError(f"the new snapshot fails validation; {path} is left unchanged:\n  - {problems}")
    snapshot.class_balance = report.get("class_balance") or report.get("label") or {}
    return snapshot
