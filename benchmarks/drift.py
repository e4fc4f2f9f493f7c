"""Benchmark `mlops drift`: a 1,000,000-row inference log (30 features) against a 100,000-row reference.

Method
- Data: rows of the bundled table drawn with replacement, with 1% multiplicative noise, so the columns
  keep their real shapes and correlations. The reference (100k rows) is the training split the job
  reads; the window is a JSON-lines inference log in the handler's format (about 1 GB for 1M rows).
- Timing: `mlops drift` as a subprocess, end to end (start-up, reading and parsing the log, sampling,
  Evidently, the HTML report). Peak memory: the child's max RSS (getrusage). Runs one at a time.
- Two policies: the default (monitoring.max_rows = 100000: the window is sampled down, seeded) and
  the full window (max_rows null).
- Sampling's effect on detection: Evidently on the full 1M-row window and on the 100k sample, for
  shifts of 0 to 0.05 standard deviations on 10 of the 30 columns; the drifted-column counts are
  printed side by side (in-process, without the log parsing, which sampling does not change).

Run: `python benchmarks/drift.py [--rows N] [--skip-full]` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE_ROWS = 100_000
SHIFTS = (0.0, 0.01, 0.015, 0.02, 0.05)
SHIFTED_COLUMNS = 10


def population(n: int, rng) -> pd.DataFrame:
    """n rows like the bundled table: features (float) and the integer label."""
    from mlops.config.params import load_params
    from model.dataset import bundled_frame
    from model.prepare import clean_frame

    base = clean_frame(bundled_frame(), load_params(ROOT / "params.yaml").data)
    rows = base.iloc[rng.integers(0, len(base), size=n)].reset_index(drop=True)
    features = [c for c in rows.columns if c != "label"]
    rows[features] = rows[features] * rng.normal(1.0, 0.01, size=(n, len(features)))
    return rows


def write_log(path: Path, frame: pd.DataFrame, classes: list[str]) -> None:
    """The handler's JSON-lines records, written in blocks with one format string (fast)."""
    features = [c for c in frame.columns if c != "label"]
    ts = datetime.now(timezone.utc).isoformat()
    fields = ",".join(f'"{f}":%r' for f in features)
    template = (
        f'{{"ts":"{ts}","request_id":"r%d","model_version":"1","features":{{{fields}}},"prediction":"%s"}}\n'
    )
    values, labels = frame[features].to_numpy().tolist(), frame["label"].to_numpy()
    with path.open("w") as fh:
        for start in range(0, len(values), 50_000):
            fh.write(
                "".join(
                    template % (i, *values[i], classes[labels[i]])
                    for i in range(start, min(start + 50_000, len(values)))
                )
            )


def timed_drift(work: Path, max_rows: int | None) -> tuple[float, float, str]:
    """(seconds, peak MB, decision) of one `mlops drift` subprocess in `work`."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["monitoring"]["max_rows"] = max_rows
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # a fresh parent per run, so RUSAGE_CHILDREN's max RSS belongs to this run alone
    probe = (
        "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(p.returncode)"
    )
    mlops = str(Path(sys.executable).parent / "mlops")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", probe, mlops, "drift", "--window", "all"],
        cwd=work,
        text=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(proc.stderr)
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    decision = proc.stdout.strip().splitlines()[-1].split(": ")[1]
    return seconds, peak_kib / 1024, decision


def drifted_columns(reference: pd.DataFrame, current: pd.DataFrame) -> int:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = [c for c in reference.columns if c != "label"]
    definition = DataDefinition(numerical_columns=cols)
    snapshot = Report([DataDriftPreset(columns=cols, num_method="ks", num_threshold=0.05)]).run(
        current_data=Dataset.from_pandas(current[cols], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[cols], data_definition=definition),
    )
    return int(snapshot.dict()["metrics"][0]["value"]["count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-full", action="store_true", help="skip the unsampled run and comparison")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    classes = ["benign", "malignant"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(ROOT / "params.yaml", work / "params.yaml")
        (work / "artifacts/prepared").mkdir(parents=True)
        (work / "logs/inference").mkdir(parents=True)
        reference = population(REFERENCE_ROWS, rng)
        reference.to_parquet(work / "artifacts/prepared/train.parquet", index=False)
        current = population(args.rows, rng)
        started = time.perf_counter()
        write_log(work / "logs/inference/bench.jsonl", current, classes)
        size = (work / "logs/inference/bench.jsonl").stat().st_size / 1e9
        print(
            f"data: reference {REFERENCE_ROWS:,} rows; window {args.rows:,} rows x 30 features,"
            f" {size:.2f} GB of JSON lines (written in {time.perf_counter() - started:.0f} s)"
        )
        policies = [("sampled to 100,000 rows (default max_rows)", 100_000)]
        if not args.skip_full:
            policies.append(("full window (max_rows: null)", None))
        for name, max_rows in policies:
            seconds, peak, decision = timed_drift(work, max_rows)
            print(f"mlops drift, {name}: {seconds:.1f} s wall, peak RSS {peak:,.0f} MB, decision {decision}")
        if args.skip_full:
            return
        print(f"detection, full window vs 100k sample (drifted columns of 30; {SHIFTED_COLUMNS} shifted):")
        features = [c for c in current.columns if c != "label"]
        sd = reference[features[:SHIFTED_COLUMNS]].std().to_numpy()
        sample = np.sort(np.random.default_rng(1).choice(len(current), size=100_000, replace=False))
        for shift in SHIFTS:
            moved = current.copy()
            moved[features[:SHIFTED_COLUMNS]] += shift * sd
            full, sampled = drifted_columns(reference, moved), drifted_columns(reference, moved.iloc[sample])
            print(f"  shift {shift:<5} sd: full {full:2d}, sampled {sampled:2d}")


if __name__ == "__main__":
    main()
