"""Benchmark: `mlops train` with torch's default thread count vs `train.threads: auto`, alone and beside
a CPU-bound job.

Method, all in one run, in one fresh copy of this working tree (benchmarks/stages.py makes the table and
params: a seeded 100k-row x 30-column table, `--params` overlay merged into params.yaml, default: the
bundled params.yaml's training settings with `--epochs` epochs):
1. `mlops validate` and `mlops prepare` once;
2. then `--repeats` rounds of four `mlops train` runs (the real stage, one process each, the copy's code):
   threads = default (torch's own choice: one per CPU this process may use, written as that number) or
   auto (model/threads.py), each without and with a burner. The order inside a round alternates, so a
   change in the machine's load hits every cell alike;
3. the burner: `--burners` processes, each a Python busy loop (one core each), started before the train
   and killed after it; each also stops by itself after --burn-limit s;
4. per cell: median wall and CPU seconds of the train process; load: the 1-minute load average at the
   start of each run (the machine may be shared: a load above the CPU count means other jobs ran too).
Wall ratio burner/alone shows how much a shared CPU slows training; default/auto shows what the setting
buys. Usage: python benchmarks/train_threads.py [--rows 100000] [--epochs 10] [--repeats 1]
       [--params FILE] [--burners 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.stages import configure, measured
from benchmarks.workspace import copy_project
from model.threads import available_cpus

BURN = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end: pass"


def set_threads(repo: Path, threads: int | str) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["threads"] = threads
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def train_once(repo: Path, log: Path, burners: int, limit: float) -> dict:
    burn = BURN.format(limit=limit)  # bounded by itself, even if this script dies
    procs = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(burners)]
    try:
        time.sleep(0.5 if burners else 0)  # the burners are running before training starts
        return measured("train", repo, log)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--params", type=Path, help="overlay (e.g. params.large.yaml); default: params.yaml")
    parser.add_argument("--burners", type=int, default=1)
    parser.add_argument("--burn-limit", type=float, default=900.0, help="seconds, a bound on each burner")
    args = parser.parse_args()
    overlay = (
        yaml.safe_load(args.params.read_text()) if args.params else {"train": {"max_epochs": args.epochs}}
    )
    default_threads = available_cpus()
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        repo = copy_project(Path(tmp) / "repo", Path(tmp) / "remote")
        configure(repo, args.rows, overlay, mixed=False)
        for stage in ("validate", "prepare"):
            result = measured(stage, repo, Path(tmp) / f"{stage}.log")
            if result["error"]:
                sys.exit(f"{stage} failed: {result['error']}")
        train = yaml.safe_load((repo / "params.yaml").read_text())["train"]
        print(
            f"{args.rows:,} rows, batch {train['batch_size']}, {train['max_epochs']} epochs; "
            f"default = {default_threads} threads (torch's own), auto = {train.get('threads')!r} resolved "
            f"below; burner = {args.burners} busy process(es); {os.cpu_count()} CPUs",
            flush=True,
        )
        cells = [(t, b) for t in ("default", "auto") for b in (0, args.burners)]
        results: dict[tuple, list[dict]] = {cell: [] for cell in cells}
        for round_ in range(args.repeats):
            for threads, burners in cells if round_ % 2 == 0 else reversed(cells):
                set_threads(repo, default_threads if threads == "default" else "auto")
                res = train_once(repo, Path(tmp) / "train.log", burners, args.burn_limit)
                if res["error"]:
                    sys.exit(f"train failed: {res['error']}")
                results[(threads, burners)].append(res)
                shared = "yes" if burners else "no"
                print(
                    f"  threads={threads:<7} burner={shared:<3} wall {res['wall_s']:7.1f} s"
                    f"  cpu {res['cpu_s']:7.1f} s  load {res['load_start']:.1f}->{res['load_end']:.1f}",
                    flush=True,
                )
    from model.threads import resolve

    med = {
        c: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s")} for c, rs in results.items()
    }
    print(f"\nmedian of {args.repeats} (auto = {resolve('auto')} thread(s) here):")
    print(f"{'threads':<10}{'alone s':>10}{'burner s':>10}{'slowdown':>10}")
    for threads in ("default", "auto"):
        alone, shared = med[(threads, 0)]["wall_s"], med[(threads, args.burners)]["wall_s"]
        print(f"{threads:<10}{alone:>10.1f}{shared:>10.1f}{shared / alone:>9.2f}x")
    for burners, label in ((0, "alone"), (args.burners, "burner")):
        ratio = med[("default", burners)]["wall_s"] / med[("auto", burners)]["wall_s"]
        print(f"default/auto wall, {label}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
