"""How long `mlops report` takes on a trained checkout: the PR comment waits for it (keep it under 15 s).

Method: in the current directory, which must hold a pipeline run (`dvc repro` done) and a `main` branch
with committed eval/ files, run `mlops report --base BASE` N times as a subprocess and print the wall
time and the CPU time (user + sys, from the child's rusage) of each run and their median. On a shared
machine wall time includes waiting for a core; CPU time is what the report itself costs.

Usage: python benchmarks/report_time.py [--base main] [--runs 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as out:
        for i in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            proc = subprocess.run(["mlops", "report", "--base", args.base, "--out", out], capture_output=True)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if proc.returncode not in (0, 1):  # 1: a gate failed, the report is still written
                raise SystemExit(proc.stderr.decode())
            walls.append(wall)
            cpus.append(cpu)
            print(f"run {i + 1}: wall {wall:.2f} s, cpu {cpu:.2f} s")
    print(f"median: wall {statistics.median(walls):.2f} s, cpu {statistics.median(cpus):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
