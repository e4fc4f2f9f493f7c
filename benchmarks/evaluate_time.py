"""How long `mlops evaluate` takes on the bundled data, and how much of it is imports (target: <= 4 s).

Method: in the current directory, which must hold a pipeline run (`dvc repro` done: artifacts/model and
artifacts/prepared), run `mlops evaluate` N times as a subprocess and print wall and CPU time (user +
sys, from the child's rusage) of each run and their median; then `python -X importtime -c "import
model.evaluate"` once, listing the heaviest modules it imports directly. On a shared machine wall time
includes waiting for a core; CPU time is what evaluate itself costs. eval/ is rewritten in place (the
same bytes: evaluate is deterministic).

Usage: python benchmarks/evaluate_time.py [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import time


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    walls, cpus = [], []
    for i in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(["mlops", "evaluate"], capture_output=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode:
            raise SystemExit(proc.stderr.decode())
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        walls.append(wall)
        cpus.append(cpu)
        print(f"run {i + 1}: wall {wall:.2f} s, cpu {cpu:.2f} s")
    print(f"median: wall {statistics.median(walls):.2f} s, cpu {statistics.median(cpus):.2f} s")
    print("heaviest imports (cumulative s): " + ", ".join(f"{m} {s:.2f}" for m, s in heaviest_imports()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
