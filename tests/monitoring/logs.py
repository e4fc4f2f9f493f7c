"""Test data for the drift job: inference-log and feedback records in the handler's JSON-lines format."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.config.params import load_params
from model.dataset import read_table
from model.prepare import clean_frame


def table() -> pd.DataFrame:
    """The bundled table in the workspace: float features and the integer label."""
    params = load_params()
    return clean_frame(read_table(params.data.path), params.data)


def shifted(frame: pd.DataFrame, sd: float, reference: pd.DataFrame) -> pd.DataFrame:
    """Every feature moved by `sd` standard deviations of the reference."""
    features = [c for c in frame.columns if c != "label"]
    out = frame.copy()
    out[features] = out[features] + sd * reference[features].std().to_numpy()
    return out


def jittered(frame: pd.DataFrame, seed: int, scale: float = 0.01) -> pd.DataFrame:
    """Fresh rows of the same distribution (1% multiplicative noise), not copies of known ones."""
    features = [c for c in frame.columns if c != "label"]
    out = frame.copy()
    out[features] = out[features] * np.random.default_rng(seed).normal(
        1.0, scale, size=(len(out), len(features))
    )
    return out


def records(
    frame: pd.DataFrame,
    now: datetime | None = None,
    age: timedelta = timedelta(minutes=1),
    label_key: str = "prediction",
    batch: int = 4,
) -> list[dict]:
    """A record per row, `age` before `now`; label_key: "prediction" (inference log) or "label" (feedback).

    `batch` rows share a request_id, as the rows of one request do in the handler's log. The ids derive
    from the rows, so the log and the feedback of one frame join, and different frames do not collide.
    A "proba" column, if present, is the logged probability of the last class (else 1.0 for the label)."""
    params = load_params()
    ts = ((now or datetime.now(timezone.utc)) - age).isoformat()
    features = params.data.feature_names
    classes = [str(c) for c in params.data.classes]
    tag = hashlib.sha1(pd.util.hash_pandas_object(frame[features], index=False).values.tobytes()).hexdigest()
    out = []
    for i, (_, row) in enumerate(frame.iterrows()):
        label = classes[int(row["label"])]
        record = {
            "ts": ts,
            "request_id": f"{tag[:12]}-{i // batch}",
            "model_version": "1",
            "features": {f: float(row[f]) for f in features},
            label_key: label,
        }
        if label_key == "prediction":
            last = float(row["proba"]) if "proba" in row else float(label == classes[-1])
            record["probabilities"] = {classes[0]: 1.0 - last, classes[-1]: last}
        out.append(record)
    return out


def write_jsonl(path: Path, items: list, raw_lines: tuple[str, ...] = ()) -> Path:
    """Records as JSON lines, then `raw_lines` verbatim (for malformed input)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.writelines(json.dumps(item) + "\n" for item in items)
        fh.writelines(line + "\n" for line in raw_lines)
    return path


def production(prepared: Path, log: Path, feedback: Path, rows: int, seed: int, sd: float) -> None:
    """`rows` fresh held-out rows shifted by `sd`: their inference-log records appended to `log`, their
    labels to `feedback`. `prepared` is a trained checkout's artifacts/prepared."""
    held_out = pd.concat([pd.read_parquet(prepared / f"{s}.parquet") for s in ("val", "test")])
    frame = shifted(
        jittered(held_out.sample(rows, random_state=seed), seed),
        sd,
        pd.read_parquet(prepared / "train.parquet"),
    )
    write_jsonl(log, records(frame))
    write_jsonl(feedback, records(frame, label_key="label"))
