"""How long `mlops evaluate` takes on the bundled data, and how much of it is imports (target: <= 4 s).

Method: in the current directory, which must hold a pipeline run (`dvc repro` done: artifacts/prepared,
artifacts/model, artifacts/seeds where the train stage writes seed models, and artifacts/baselines where
the baselines stage writes the reference models' test predictions), run `mlops evaluate` N
times as a subprocess and print wall and CPU time (user + sys, from the child's rusage) of each run and
their median; then `python -X importtime -c "import model.evaluate"` once, listing the heaviest modules
it imports directly. On a shared machine wall time includes waiting for a core; CPU time is what
evaluate itself costs. eval/ is rewritten in place (the same bytes: evaluate is deterministic).

With --baseline REV the comparison is side by side instead, in one run: two temporary copies, commit REV
(git archive) and this working tree (its tracked and untracked files), each given this directory's
artifacts/prepared (the same split) and its own params.yaml. In each copy `mlops train` runs first
(--train-runs times; timed the same way: the train stage that also fits the `report.seeds` models is
slower than one that does not), then `mlops baselines` where the copy's dvc.yaml has that stage (also
--train-runs times; a copy without it fits the baselines inside evaluate), and then `mlops evaluate`
(--runs times), the copies alternating run by run so both
see the same machine load. Each runs its copy's own code (`python -m mlops`, PYTHONPATH=copy, cwd=copy;
MLflow into a sqlite file in the copy). Last, one more evaluate per copy inside `python -c` prints the
training, tracking, plotting and attribution libraries left in sys.modules (Lightning, MLflow,
matplotlib, Captum). The copies are deleted afterwards; this directory is not written.

Usage: python benchmarks/evaluate_time.py [--runs 3] [--baseline REV [--train-runs 1]]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.workspace import ROOT, source_files

HEAVY = ("pytorch_lightning", "lightning", "lightning_fabric", "mlflow", "matplotlib", "captum", "sklearn")


def heaviest_imports(top: int = 6) -> list[tuple[str, float]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import model.evaluate"],
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|   (\S+)$", line)  # what model.evaluate imports
        if match:
            rows.append((match.group(2), int(match.group(1)) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:top]


def timed(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys of the child and its children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{cmd} in {cwd}:\n{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def current(runs: int) -> int:
    walls, cpus = [], []
    for i in range(runs):
        wall, cpu = timed(["mlops", "evaluate"])
        walls.append(wall)
        cpus.append(cpu)
        print(f"run {i + 1}: wall {wall:.2f} s, cpu {cpu:.2f} s")
    print(f"median: wall {statistics.median(walls):.2f} s, cpu {statistics.median(cpus):.2f} s")
    print("heaviest imports (cumulative s): " + ", ".join(f"{m} {s:.2f}" for m, s in heaviest_imports()))
    return 0


def make_copy(dst: Path, rev: str | None) -> Path:
    """Commit `rev` (git archive) or the working tree, with this directory's prepared split."""
    dst.mkdir(parents=True)
    if rev:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dst, filter="data")
    else:
        for rel in source_files():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)
    shutil.copytree(Path("artifacts/prepared"), dst / "artifacts/prepared")
    return dst


def side_by_side(rev: str, runs: int, train_runs: int) -> int:
    label = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True)
    sides = {f"old ({label.stdout.strip()})": rev, "new (working tree)": None}
    order = ("train", "baselines", "evaluate")
    times: dict[str, dict[str, list[tuple[float, float]]]] = {s: {t: [] for t in order} for s in sides}
    with tempfile.TemporaryDirectory(prefix="evaluate-time-") as tmp:
        copies = {s: make_copy(Path(tmp) / f"side{i}", r) for i, (s, r) in enumerate(sides.items())}
        stages = {s: set(yaml.safe_load((c / "dvc.yaml").read_text())["stages"]) for s, c in copies.items()}

        def env(copy: Path) -> dict:
            keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
            return {**keep, "PYTHONPATH": str(copy), "MLFLOW_TRACKING_URI": f"sqlite:///{copy}/mlflow.db"}

        for stage, count in (("train", train_runs), ("baselines", train_runs), ("evaluate", runs)):
            for i in range(count):
                for side, copy in copies.items():
                    if stage not in stages[side]:
                        continue
                    wall, cpu = timed([sys.executable, "-m", "mlops", stage], copy, env(copy))
                    times[side][stage].append((wall, cpu))
                    print(f"{stage} run {i + 1}, {side}: wall {wall:.2f} s, cpu {cpu:.2f} s", flush=True)
        probe = (
            "import sys; from model.evaluate import run; run(); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
        )
        loaded = {}
        for side, copy in copies.items():
            out = subprocess.run(
                [sys.executable, "-c", probe], cwd=copy, env=env(copy), capture_output=True, text=True
            )
            loaded[side] = out.stdout.strip().splitlines()[-1] if out.returncode == 0 else out.stderr[-300:]
    print(f"\n| median of runs (cpu / wall) | {' | '.join(sides)} |\n|---|---|---|")
    for stage in order:
        cells = [
            f"{statistics.median(c for _, c in times[s][stage]):.2f} s / "
            f"{statistics.median(w for w, _ in times[s][stage]):.2f} s"
            if times[s][stage]
            else "(no such stage)"
            for s in sides
        ]
        count = max(len(times[s][stage]) for s in sides)
        print(f"| `mlops {stage}` ({count} runs) | {' | '.join(cells)} |")
    print(f"| libraries evaluate leaves loaded | {' | '.join(loaded[s] for s in sides)} |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="also run commit REV, side by side")
    parser.add_argument("--train-runs", type=int, default=1)
    args = parser.parse_args()
    if args.baseline:
        return side_by_side(args.baseline, args.runs, args.train_runs)
    return current(args.runs)


if __name__ == "__main__":
    raise SystemExit(main())
