"""Benchmark: wall time, CPU time and peak RSS of each pipeline stage at 10k, 100k and 1M rows x 30 columns.

Method, all in one run, each size in its own fresh copy of this working tree (benchmarks/workspace.py
copy_project, in a temp dir that is deleted after the size). With --baseline REV each size runs twice,
first on a copy of commit REV (git archive), then on the working tree, so both see the same machine load
within minutes of each other; the stages run the copy's own code (`python -m mlops` from the copy,
PYTHONPATH=copy), not the editable install:
1. a seeded synthetic table: two overlapping Gaussian classes over 30 features, written as Parquet
   (or CSV with --format csv) to data/. With --mixed, 3 of the 30 columns are categorical strings
   (5, 20 and 200 values), 2 are integers, 1 is a bool, and 3 float columns have 5% missing values with
   `missing: impute` (needs the issue-11 schema: `type:`, `missing:`); without it every column is a
   complete float;
2. params.yaml of the copy: `data:` points at that table, `report.slices` at its columns, and the
   overlay file (--params, default params.large.yaml) is merged into it key by key (a mapping merges,
   anything else replaces), so the copy runs the large-data settings of docs/large-data.md;
3. each stage runs as its own process, `mlops validate`, `prepare`, `train`, `evaluate`, in order, with
   no DVC in between (DVC's own hashing is not what is measured). Wall: clock around the process.
   CPU: user + system seconds of the process and its children. Peak RSS: `ru_maxrss` from wait4(), the
   resident high-water mark of the largest single process of the stage (every stage is one process here;
   a DDP run would be one per rank). Load: the 1-minute load average when the stage starts and ends;
   CPU/wall near 1 with a load above 2 means the stage waited for the shared CPU;
4. quality: the test accuracy and ROC AUC of the model next to the logistic-regression baseline that
   `evaluate` fits (the large-data settings must not buy speed with quality);
5. growth: per stage, the ratio of time and of peak RSS between consecutive sizes (10x rows each).
   Linear scaling shows x10 in time; memory shows less than x10 while the interpreter and torch (about
   0.4 GB) dominate, and approaches x10 once the table does.
The first failing stage stops that size (its error is printed). --json writes every number for docs.
Usage: python benchmarks/stages.py [--rows 10000 100000 1000000] [--params params.large.yaml]
       [--mixed] [--format csv] [--baseline REV [--baseline-skip STAGE:ROWS...]] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.workspace import ROOT, copy_project, env, sh

STAGES = ["validate", "prepare", "train", "evaluate"]
LABEL, CLASSES = "target", ["negative", "positive"]
N_FEATURES = 30
CATEGORIES = {"c_small": 5, "c_medium": 20, "c_large": 200}  # --mixed: column -> number of values
INTS, BOOLS, WITH_NA = ["i_count", "i_level"], ["b_flag"], ["f00", "f01", "f02"]
NA_SHARE = 0.05


def feature_schema(mixed: bool) -> dict[str, dict]:
    """The `data.features` block: every column float (the schema every version reads), or mixed types."""
    if not mixed:
        return {f"f{i:02d}": {"dtype": "float"} for i in range(N_FEATURES)}
    n_float = N_FEATURES - len(CATEGORIES) - len(INTS) - len(BOOLS)
    schema: dict[str, dict] = {}
    for i in range(n_float):
        name = f"f{i:02d}"
        schema[name] = {"type": "float", "missing": "impute"} if name in WITH_NA else {"type": "float"}
    schema.update({name: {"type": "category"} for name in CATEGORIES})
    schema.update({name: {"type": "int"} for name in INTS})
    schema.update({name: {"type": "bool"} for name in BOOLS})
    return schema


def synthetic_table(path: Path, schema: dict[str, dict], rows: int, seed: int) -> None:
    """Two Gaussian classes shifted apart in every numeric column; categories and ints depend on the
    class too, so every column carries some signal. Written as Parquet (float32 on disk) or CSV."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    columns: dict[str, np.ndarray] = {}
    for name, spec in schema.items():
        kind = spec.get("type", spec.get("dtype", "float"))
        if kind == "float":
            shift = rng.normal(0.0, 0.6)
            values = (rng.normal(0.0, 1.0, rows) + y * shift).astype("float32") * 3 + 10
            if spec.get("missing") == "impute":
                values[rng.random(rows) < NA_SHARE] = np.nan
            columns[name] = values
        elif kind == "category":
            n = CATEGORIES[name]
            codes = (rng.integers(0, n, rows) + y * (n // 3)) % n
            columns[name] = np.array([f"{name}_{k}" for k in range(n)], dtype=object)[codes]
        elif kind == "int":
            columns[name] = rng.poisson(3 + 2 * y).astype("int64")
        else:
            columns[name] = rng.random(rows) < (0.3 + 0.3 * y)
    frame = pd.DataFrame(columns)
    frame[LABEL] = np.asarray(CLASSES, dtype=object)[y]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def merge(base: dict, overlay: dict) -> dict:
    """The overlay's keys win; a mapping in both merges recursively, anything else is replaced."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def configure(repo: Path, rows: int, overlay: dict, mixed: bool, fmt: str = "parquet") -> float:
    """Write the table and the params of one size; returns the table's size on disk in MB."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    schema = feature_schema(mixed)
    table = repo / "data" / f"synthetic.{fmt}"
    synthetic_table(table, schema, rows, int(params.get("seed", 0)))
    params["data"] = {
        "path": f"data/synthetic.{fmt}",
        "label": LABEL,
        "classes": CLASSES,
        "features": schema,
    }
    report = params.setdefault("report", {})
    report["slices"] = [{"column": "f03", "bins": 3}, {"column": "f04", "bins": 2}]
    params = merge(params, overlay)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return table.stat().st_size / 1e6


def copy_commit(rev: str, dst: Path) -> Path:
    """A fresh git repo holding commit `rev` of this repository (what copy_project does for the tree)."""
    dst.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive.stdout, check=True)
    sh(["git", "init", "-q", "-b", "main"], dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-q", "-m", f"baseline {rev}"], dst)
    return dst


def measured(stage: str, cwd: Path, log: Path) -> dict:
    """Run one stage of the copy's code; wall, CPU and peak RSS of its process tree, the load average."""
    cmd = [sys.executable, "-m", "mlops", stage]
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env(PYTHONPATH=str(cwd)), stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    lines = log.read_text(errors="replace").strip().splitlines()
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "error": "" if proc.returncode == 0 else (lines or ["?"])[-1][:160],
    }


def test_quality(repo: Path) -> dict[str, float]:
    """Test accuracy and ROC AUC of the model and of the logistic-regression baseline (eval/metrics.json):
    the large-batch settings must not cost quality. On this table the linear model is close to the best
    possible, so the MLP should match it."""
    metrics = json.loads((repo / "eval/metrics.json").read_text())
    linear = (metrics.get("baseline") or {}).get("logistic_regression") or {}
    out = {name: metrics[name] for name in ("accuracy", "roc_auc") if name in metrics}
    out.update({f"logistic {name}": linear[name] for name in ("accuracy", "roc_auc") if name in linear})
    return out


def run_size(rows: int, overlay: dict, mixed: bool, stages: list[str], rev: str | None, fmt: str) -> dict:
    """One size on one code version: `rev` (a commit) or None (the working tree)."""
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        if rev:
            repo = copy_commit(rev, Path(tmp) / "repo")
        else:
            repo = copy_project(Path(tmp) / "repo", Path(tmp) / "remote")
        size_mb = configure(repo, rows, overlay, mixed, fmt)
        code = rev or "working tree"
        print(f"\n{rows:,} rows x {N_FEATURES} columns, {code}: {fmt} {size_mb:.0f} MB", flush=True)
        results: dict[str, dict] = {}
        for stage in stages:
            result = measured(stage, repo, Path(tmp) / f"{stage}.log")
            results[stage] = result
            status = f"FAILED: {result['error']}" if result["error"] else "ok"
            print(
                f"  {stage:<9} wall {result['wall_s']:7.1f} s  cpu {result['cpu_s']:7.1f} s"
                f"  peak {result['peak_mb']:7.0f} MB"
                f"  load {result['load_start']:.1f}->{result['load_end']:.1f}"
                f"  {status}",
                flush=True,
            )
            if result["error"]:
                print("    " + "\n    ".join((Path(tmp) / f"{stage}.log").read_text().splitlines()[-15:]))
                break
        quality = test_quality(repo) if "evaluate" in results and not results["evaluate"]["error"] else {}
        if quality:
            print("  quality: " + ", ".join(f"{k} {v:.4f}" for k, v in quality.items()), flush=True)
        return {
            "rows": rows,
            "code": code,
            "format": fmt,
            "file_mb": size_mb,
            "stages": results,
            "quality": quality,
        }


def cell(result: dict | None) -> str:
    if not result or result["error"]:
        return f"{'-':>22}"
    return f"{result['wall_s']:>11.1f}{result['peak_mb']:>11.0f}"


def total(run: dict, stages: list[str]) -> dict | None:
    done = [run["stages"].get(s) for s in stages]
    if not all(done) or any(d["error"] for d in done):
        return None
    return {"wall_s": sum(d["wall_s"] for d in done), "peak_mb": max(d["peak_mb"] for d in done), "error": ""}


def table(runs: list[dict], stages: list[str]) -> None:
    """Stages down, sizes across; then the growth factor between consecutive sizes."""
    print(f"\n{runs[0]['code']}:")
    print(f"{'stage':<10}" + "".join(f"{r['rows']:>22,}" for r in runs))
    print(f"{'':<10}" + "".join(f"{'wall s':>11}{'peak MB':>11}" for _ in runs))
    for stage in stages:
        print(f"{stage:<10}" + "".join(cell(run["stages"].get(stage)) for run in runs))
    print(f"{'total':<10}" + "".join(cell(total(run, stages)) for run in runs))
    if len(runs) < 2:
        return
    print("growth between sizes (time ratio, peak RSS ratio):")
    for stage in stages:
        parts = []
        for small, big in itertools.pairwise(runs):
            a, b = small["stages"].get(stage), big["stages"].get(stage)
            if not (a and b) or a["error"] or b["error"]:
                continue
            factor = big["rows"] / small["rows"]
            time_ratio, rss_ratio = b["wall_s"] / a["wall_s"], b["peak_mb"] / a["peak_mb"]
            parts.append(f"x{factor:g} rows: time x{time_ratio:.1f}, RSS x{rss_ratio:.1f}")
        print(f"  {stage:<9} " + ("; ".join(parts) or "-"))


def side_by_side(base: list[dict], current: list[dict], stages: list[str]) -> None:
    """Per size and stage: the baseline, the working tree, and working tree / baseline."""
    heads = f"{'base s':>9}{'base MB':>9}{'now s':>9}{'now MB':>9}{'time':>7}{'RSS':>7}"
    print(f"\n{'size':>10} {'stage':<10}{heads}")
    for old, new in zip(base, current, strict=True):
        common = [s for s in stages if s in old["stages"] and s in new["stages"]]
        whole = "total" if common == stages else "subtotal"  # over the stages both ran
        for stage in [*stages, whole]:
            a = total(old, common) if stage == whole else old["stages"].get(stage)
            b = total(new, common) if stage == whole else new["stages"].get(stage)
            line = f"{old['rows']:>10,} {stage:<10}"
            for res in (a, b):
                ok = res and not res["error"]
                line += f"{res['wall_s']:>9.1f}{res['peak_mb']:>9.0f}" if ok else f"{'-':>18}"
            if a and b and not a["error"] and not b["error"]:
                line += f"{b['wall_s'] / a['wall_s']:>6.2f}x{b['peak_mb'] / a['peak_mb']:>6.2f}x"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--params", type=Path, default=ROOT / "params.large.yaml", help="overlay merged in")
    parser.add_argument("--mixed", action="store_true", help="categorical, int, bool and NA columns")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet", help="the table's file")
    parser.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    parser.add_argument("--baseline", metavar="REV", help="also run commit REV, size by size, side by side")
    parser.add_argument(
        "--baseline-skip",
        nargs="+",
        default=[],
        metavar="STAGE:ROWS",
        help="leave out a stage of the baseline at one size (e.g. evaluate:1000000, known to need 15 GB)",
    )
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()
    overlay = yaml.safe_load(args.params.read_text()) or {}
    for name in [n for n in os.environ if n.startswith("MLFLOW_")]:
        del os.environ[name]  # the copy's embedded sqlite store, never a server the caller points at
    commit = sh(["git", "rev-parse", "--short", "HEAD"], ROOT).stdout.strip()
    baseline = (
        sh(["git", "rev-parse", "--short", args.baseline], ROOT).stdout.strip() if args.baseline else None
    )
    print(
        f"HEAD {commit} (+ working tree), baseline {baseline}, overlay {args.params.name}: "
        f"{json.dumps(overlay)}; mixed={args.mixed}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    started = time.perf_counter()
    base: list[dict] = []
    current: list[dict] = []
    for rows in args.rows:
        if baseline:
            stages = [s for s in args.stages if f"{s}:{rows}" not in args.baseline_skip]
            base.append(run_size(rows, overlay, args.mixed, stages, baseline, args.format))
        current.append(run_size(rows, overlay, args.mixed, args.stages, None, args.format))
    for runs in (base, current):
        if runs:
            table(runs, args.stages)
    if base:
        side_by_side(base, current, args.stages)
    print(f"\nbenchmark duration: {time.perf_counter() - started:.0f} s, load now {os.getloadavg()[0]:.1f}")
    if args.json:
        document = {
            "head": commit,
            "baseline": baseline,
            "mixed": args.mixed,
            "base": base,
            "current": current,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
