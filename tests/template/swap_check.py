"""The forker's tests follow the data: swap in another table, run the pipeline, then run the forker's tests.

A forker replaces data/ and params.yaml `data:` and keeps the template's model, data, serving and monitoring
tests. Those tests take their columns, classes and rows from params.yaml and the table (tests/schema.py),
so they must pass on the new table with no edit. This check makes that so: a copy of this working tree
gets the wine table (tests/model/wine.py: 13 other columns, 3 classes instead of 2, another label and
project name, Parquet), `dvc repro` trains on it, and then pytest runs in the copy, on the copy's own
tests, with the marker expression pr.yml uses (`not slow and not template`) or the one given.

It takes minutes and is not part of `make test`: run it when you change the forker's tests.
Usage: python tests/template/swap_check.py [--keep DIR [--reuse]] [-m "not template"] [paths] [pytest options]
  --reuse: DIR holds a copy trained earlier: copy only this tree's tests/ into it and run them again.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.model.wine import use_wine
from tests.repo import ROOT, copy_project, env, sh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the copy here and keep it (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="reuse the trained copy in --keep DIR")
    parser.add_argument("-m", dest="marker", default="not slow and not template")
    parser.add_argument("paths", nargs="*", default=["tests"])
    args, pytest_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        repo = base / "repo"
        if args.reuse and (repo / "dvc.lock").exists():
            shutil.rmtree(repo / "tests")
            shutil.copytree(ROOT / "tests", repo / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy_project(repo, base / "remote")
            use_wine(repo)
            sh(["dvc", "repro"], repo)
            sh(["git", "add", "-A"], repo)
            sh(["git", "commit", "-q", "-m", "wine"], repo)
        print(f"swap-check: wine table trained in {repo}; running the forker's tests (-m {args.marker!r})")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", args.marker, *args.paths]
        run = subprocess.run([*cmd, *pytest_args], cwd=repo, env=env(PYTHONPATH=str(repo)))
        return run.returncode


if __name__ == "__main__":
    sys.exit(main())
