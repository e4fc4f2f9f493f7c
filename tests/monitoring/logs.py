"""Test data for the drift job: inference-log and feedback records in the handler's JSON-lines format,
production windows drawn from the project's table, and params.yaml edits that work on any table."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mlops.config import paths
from mlops.config.params import load_params
from model.dataset import read_table
from model.prepare import clean_frame


def table() -> pd.DataFrame:
    """The bundled table in the workspace: float features and the integer label."""
    params = load_params()
    return clean_frame(read_table(params.data.path), params.data)


WINDOW = 228  # rows in a test's production window: the bundled table's validation + test rows


def held_out(n: int = WINDOW, prepared: Path = paths.PREPARED_DIR, seed: int = 0) -> pd.DataFrame:
    """`n` production-like rows, so every test sees a window of the same size whatever the table: the
    validation and test rows (unseen by the reference), topped up on a small table by `pool`."""
    return pool(n, prepared, seed).iloc[:n].reset_index(drop=True)


def pool(n: int, prepared: Path = paths.PREPARED_DIR, seed: int = 0) -> pd.DataFrame:
    """The validation + test rows; when there are fewer than `n`, fresh jittered draws from the whole
    table make up the rest. Draws from the table the reference was split from add no drift (the K-S
    test is then conservative), unlike repeating the few held-out rows, which would fake significance."""
    rows = pd.concat([pd.read_parquet(prepared / f"{s}.parquet") for s in ("val", "test")], ignore_index=True)
    if len(rows) >= n:
        return rows
    everything = pd.concat([pd.read_parquet(prepared / "train.parquet"), rows], ignore_index=True)
    extra = jittered(everything.sample(n - len(rows), replace=True, random_state=seed), seed)
    return pd.concat([rows, extra], ignore_index=True)


def other_class(label: str) -> str:
    """Another class than `label` (the next one): a flipped label, on two classes or more."""
    classes = [str(c) for c in load_params().data.classes]
    return classes[(classes.index(label) + 1) % len(classes)]


def edit_params(changes: dict[str | tuple, object], path: Path = Path("params.yaml")) -> None:
    """Set keys of params.yaml, dotted ("monitoring.critical") or a tuple (a column name may hold a dot),
    to a value or to a function of the old one: through YAML, so the edit holds whatever layout the file
    has (a forker's, or one a tool rewrote)."""
    params = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        *parents, last = key if isinstance(key, tuple) else key.split(".")
        node = params
        for part in parents:
            node = node[part]
        assert last in node, f"params.yaml has no {key}"
        node[last] = value(node[last]) if callable(value) else value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


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
    Every class gets a logged probability: a "proba" column, if present, is the predicted class's (else
    1.0), the other classes share the rest."""
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
            top = float(row["proba"]) if "proba" in row else 1.0
            rest = (1.0 - top) / (len(classes) - 1)
            record["probabilities"] = {c: top if c == label else rest for c in classes}
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
    frame = shifted(
        jittered(pool(rows, prepared, seed).sample(rows, random_state=seed), seed),
        sd,
        pd.read_parquet(prepared / "train.parquet"),
    )
    write_jsonl(log, records(frame))
    write_jsonl(feedback, records(frame, label_key="label"))
