"""Benchmark: cold setup, first `dvc repro`, no-op `dvc repro`, and Lightning vs plain PyTorch.

Method, all in one run on a fresh copy of this working tree (a temp dir, its own DVC remote):
1. cold setup: a new venv + `pip install -c constraints.txt -e .[all]` (pip's download cache warm,
   as on a second CI run); skip with --reuse-venv to use the current interpreter's venv instead;
2. `mlops data` (the deterministic bootstrap), then the first `dvc repro` (all four stages);
3. a no-op `dvc repro`, median of 3;
4. benchmarks/train_loop.py in the same environment: the Lightning loop and a plain PyTorch loop on
   the same model, data, batches and epochs, alternating, median of 5, shown as a ratio.
Usage: python benchmarks/pipeline.py [--reuse-venv]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.workspace import copy_project, sh


def timed(cmd: list[str], cwd: Path, **env: str) -> float:
    start = time.perf_counter()
    sh(cmd, cwd, **env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse-venv", action="store_true", help="skip the cold setup, use this venv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_project(Path(tmp) / "repo", Path(tmp) / "remote")
        results: dict[str, float] = {}
        env: dict[str, str] = {}
        if not args.reuse_venv:
            venv = repo / ".venv"
            results["cold setup (venv + pip install, warm pip cache)"] = timed(
                [
                    "bash",
                    "-c",
                    f"{sys.executable} -m venv {venv} && {venv}/bin/pip install -q -c constraints.txt"
                    " -e '.[all]'",
                ],
                repo,
            )
            env["PATH"] = f"{venv}/bin:" + sh(["printenv", "PATH"], repo).stdout.strip()
        results["mlops data (bootstrap + push)"] = timed(["mlops", "data"], repo, **env)
        results["first dvc repro (4 stages)"] = timed(["dvc", "repro"], repo, **env)
        results["no-op dvc repro (median of 3)"] = statistics.median(
            timed(["dvc", "repro"], repo, **env) for _ in range(3)
        )
        print("pipeline timings (s):")
        for name, seconds in results.items():
            print(f"  {name:<50} {seconds:7.2f}")
        loop = sh(["python", str(repo / "benchmarks/train_loop.py")], repo, **env).stdout
        print(loop, end="")


if __name__ == "__main__":
    main()
