"""`mlops simulate-traffic`: production-like traffic for the demo, through the real server.

Rows come from the training table with 1% multiplicative jitter (fresh samples of the same
distribution, not copies the snapshot would skip as known). First `normal` rows as they are, then
`shifted` rows moved by `shift` training standard deviations on every monitored feature, as when an
upstream unit or device changes. The server logs each row (the drift job's input); the true labels
are written to the feedback location, as a labelling process would deliver them later.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mlops.config.errors import UserError
from mlops.config.params import Params
from model.dataset import read_table
from model.prepare import clean_frame
from monitoring.inference_log import log_files, read_jsonl
from monitoring.performance import row_key
from monitoring.policy import Policy

JITTER = 0.01


def make_rows(params: Params, columns: list[str], n: int, shift: float, rng) -> pd.DataFrame:
    """n rows with the label as its class name; `shift` standard deviations added to `columns`."""
    table = clean_frame(read_table(params.data.path), params.data)
    rows = table.iloc[rng.integers(0, len(table), size=n)].reset_index(drop=True)
    features = params.data.feature_names
    rows[features] = rows[features] * rng.normal(1.0, JITTER, size=(n, len(features)))
    rows[columns] = rows[columns] + shift * table[columns].std().to_numpy()
    rows["label"] = [str(params.data.classes[i]) for i in rows["label"]]
    return rows


def send(client, rows: pd.DataFrame, features: list[str], batch: int, feedback: Path) -> float:
    """POST the rows in batches; append each row's label to `feedback`. Returns seconds per request."""
    from serve.client import ServeError

    started, requests = time.perf_counter(), 0
    with feedback.open("a") as fh:
        for start in range(0, len(rows), batch):
            chunk = rows.iloc[start : start + batch]
            instances = chunk[features].to_dict(orient="records")
            try:
                client.predict(instances)
            except (ServeError, OSError) as err:
                raise UserError(
                    f"the server refused the traffic ({err}); is it up? `mlops serve start`"
                ) from None
            ts = datetime.now(timezone.utc).isoformat()
            request_id = str(uuid.uuid4())
            for row, label in zip(instances, chunk["label"], strict=True):
                fh.write(
                    json.dumps({"ts": ts, "request_id": request_id, "features": row, "label": label}) + "\n"
                )
            requests += 1
    return (time.perf_counter() - started) / max(requests, 1)


def run(
    params: Params, policy: Policy, normal: int, shifted: int, shift: float, batch: int, seed: int
) -> int:
    from serve.client import Client

    if "://" in policy.feedback:
        raise UserError(f"simulate-traffic writes labels to a local directory, not {policy.feedback}")
    client = Client.local()
    if not client.ping():
        raise UserError("no healthy server at the configured address; start it with `mlops serve start`")
    feedback = Path(policy.feedback)
    feedback.mkdir(parents=True, exist_ok=True)
    target = feedback / f"simulated-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.jsonl"
    rng = np.random.default_rng(seed)
    features = params.data.feature_names
    before = logged_rows(policy.inference_log)
    for name, n, offset in (("normal", normal, 0.0), ("shifted", shifted, shift)):
        if n <= 0:
            continue
        per_request = send(client, make_rows(params, policy.columns, n, offset, rng), features, batch, target)
        print(
            f"simulate-traffic: {n} {name} rows (shift {offset:g} sd) in batches of {batch}:"
            f" {per_request * 1000:.1f} ms/request"
        )
    client.close()
    logged = wait_for_log(policy.inference_log, before + max(normal, 0) + max(shifted, 0))
    matched = attach_request_ids(target, policy.inference_log, features)
    print(f"simulate-traffic: {matched} labels carry the request_id the server logged (the join key)")
    print(
        f"simulate-traffic: the server logged {logged - before} rows to {policy.inference_log};"
        f" labels -> {target}"
    )
    return 0


def logged_rows(location: str) -> int:
    """Rows in every log file, rotated and gzipped ones included (rotation must not look like loss): a
    request record counts its `rows`, a row record (older handlers) one; a cut line counts nothing."""
    total = 0
    for fs, path, kind in log_files(location)[1]:
        with fs.open(path, "rb", compression="gzip" if kind == "gzipped" else None) as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                rows = record.get("rows") if isinstance(record, dict) else None
                total += rows if type(rows) is int and isinstance(record.get("values"), list) else 1
    return total


def attach_request_ids(labels: Path, log: str, features: list[str]) -> int:
    """Give each label the request_id the server logged for its row, as a labelling process that keys
    its labels by request would: the handler assigns the id, and the response does not carry it."""

    rows, _ = read_jsonl(log, features, keys=("request_id",))
    ids = dict(zip(row_key(rows, features), rows["request_id"], strict=True))
    records = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
    frame = pd.DataFrame([r["features"] for r in records], columns=features)
    matched = 0
    for record, key in zip(records, row_key(frame, features), strict=True):
        if key in ids:
            record["request_id"], matched = ids[key], matched + 1
    labels.write_text("".join(json.dumps(r) + "\n" for r in records))
    return matched


def wait_for_log(location: str, expected: int, timeout: float = 10.0) -> int:
    """The handler flushes its log every second or so: wait until every sent row is there (or time out)."""
    deadline = time.monotonic() + timeout
    while (count := logged_rows(location)) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return count
