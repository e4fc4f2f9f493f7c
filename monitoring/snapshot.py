"""The next data snapshot: the current training table plus the labelled production records (feedback).

Feedback comes as JSON lines ({"ts", "request_id", "features": {...}, "label": "<class>"}, the inference
log's shape plus the true label) or as CSV/Parquet tables with the training schema's columns. Records
already in the table are skipped, so a re-run or a merged snapshot never duplicates rows. The result
must pass the same `validate` as training data; if it does not, the table is restored and nothing changes.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops.errors import UserError
from mlops.params import DataSpec
from model.dataset import read_table
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

    @property
    def rows(self) -> int:
        return self.previous_rows + self.new_rows


def _feedback_tables(location: str, spec: DataSpec) -> list[pd.DataFrame]:
    frames = []
    for fs, path in list_files(location, (".csv", ".parquet")):
        with fs.open(path, "rb") as fh:
            frame = pd.read_parquet(fh) if path.endswith(".parquet") else pd.read_csv(fh)
        absent = [c for c in [*spec.feature_names, spec.label] if c not in frame.columns]
        if absent:
            raise UserError(
                f"{path}: feedback table lacks column(s) {', '.join(absent)} (schema: params.yaml data)"
            )
        frames.append(frame[[*spec.feature_names, spec.label]])
    return frames


def read_feedback(location: str, spec: DataSpec) -> tuple[pd.DataFrame, ReadStats, int]:
    """All labelled records at `location` as one table in the training schema (features, label)."""
    records, stats = read_jsonl(location, spec.feature_names, keys=("label",), required=("label",))
    records = records[[*spec.feature_names, "label"]].rename(columns={"label": spec.label})
    tables = _feedback_tables(location, spec)
    return pd.concat([records, *tables], ignore_index=True), stats, len(tables)


def _keys(frame: pd.DataFrame, spec: DataSpec) -> pd.Series:
    """Row identity: numeric features (so '14.10' == 14.1) and the label text. astype, unlike
    pd.to_numeric, parses text to the exact nearest float, so rows written by repr() match on re-read."""
    try:
        values = frame[spec.feature_names].astype("float64")
    except ValueError as err:
        raise UserError(f"a non-numeric feature value in the data or the feedback: {err}") from None
    parts = [values[c].map(repr) for c in spec.feature_names] + [frame[spec.label].astype(str).str.strip()]
    return pd.concat(parts, axis=1).agg("|".join, axis=1)


def _as_text(frame: pd.DataFrame, spec: DataSpec) -> pd.DataFrame:
    """New rows as CSV text the way the table is read (every cell a string), floats round-trip exact."""
    out = frame.copy()
    for c in spec.feature_names:
        out[c] = [repr(float(v)) if pd.notna(v) else "" for v in pd.to_numeric(out[c], errors="coerce")]
    out[spec.label] = out[spec.label].astype(str)
    return out


def build(spec: DataSpec, feedback: str) -> Snapshot:
    """Append new labelled records to the table at spec.path in place; validate; restore it on failure."""
    path = Path(spec.path)
    previous = read_table(path)
    incoming, stats, tables = read_feedback(feedback, spec)
    keys = _keys(incoming, spec)
    new = incoming[~keys.isin(set(_keys(previous, spec))) & ~keys.duplicated()]
    snapshot = Snapshot(
        path=path,
        previous_rows=len(previous),
        new_rows=len(new),
        duplicates=len(incoming) - len(new),
        feedback=stats,
        tables=tables,
        class_balance={},
    )
    if new.empty:
        return snapshot
    with tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / path.name
        shutil.copy2(path, backup)
        if path.suffix.lower() in (".parquet", ".pq"):
            combined = pd.concat(
                [previous, new.astype(previous[new.columns].dtypes.to_dict())], ignore_index=True
            )
            combined.to_parquet(path, index=False)
        else:
            combined = pd.concat([previous, _as_text(new, spec)], ignore_index=True).fillna("")
            combined.to_csv(path, index=False, lineterminator="\n")
        report = validate_table(path, spec)
        if not report["ok"]:
            shutil.copy2(backup, path)
            problems = "\n  - ".join(report["errors"][:10])
            raise UserError(f"the new snapshot fails validation; {path} is left unchanged:\n  - {problems}")
    snapshot.class_balance = report["class_balance"]
    return snapshot
