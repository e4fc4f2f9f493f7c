"""A tiny real DVC project for the lock loop: prepare -> train -> evaluate, seconds to run.

`train` writes weights that depend on `train.lr` and on the variable MACHINE, which stands for the CPU
kind: the same inputs on "another machine" give other model bytes, as real training may.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from tests.repo import sh

PY = sys.executable
SCRIPTS = {
    "prepare.py": "import pathlib\np = pathlib.Path('prepared'); p.mkdir(exist_ok=True)\n"
    "(p / 'rows.txt').write_text(pathlib.Path('data.txt').read_text().upper())\n",
    "train.py": "import os, pathlib, yaml\nlr = yaml.safe_load(open('params.yaml'))['train']['lr']\n"
    "m = pathlib.Path('model'); m.mkdir(exist_ok=True)\n"
    "(m / 'weights.bin').write_text(f\"{lr} {os.environ.get('MACHINE', 'ci')} \"\n"
    "    + pathlib.Path('prepared/rows.txt').read_text())\n",
    "evaluate.py": "import json, pathlib\nw = pathlib.Path('model/weights.bin').read_text()\n"
    "pathlib.Path('eval').mkdir(exist_ok=True)\n"
    "pathlib.Path('eval/metrics.json').write_text(json.dumps({'score': len(w), 'w': w}) + '\\n')\n",
}
PIPELINE = {
    "stages": {
        "prepare": {"cmd": f"{PY} prepare.py", "deps": ["prepare.py", "data.txt"], "outs": ["prepared"]},
        "train": {
            "cmd": f"{PY} train.py",
            "deps": ["prepared", "train.py"],
            "params": ["train"],
            "outs": ["model"],
        },
        "evaluate": {
            "cmd": f"{PY} evaluate.py",
            "deps": ["model", "evaluate.py"],
            "metrics": [{"eval/metrics.json": {"cache": False}}],
        },
    }
}


def run(cmd: list[str] | str, cwd: Path, check: bool = True, **extra: str):
    return sh(cmd, cwd, check=check, DVC_NO_ANALYTICS="1", **extra)


def make(root: Path) -> Path:
    """main: the pipeline reproduced by "CI" and committed; checked out on branch `feature`."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in SCRIPTS.items():
        (root / name).write_text(text)
    (root / "data.txt").write_text("a\nb\n")
    (root / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": 0.1}}))
    (root / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (root / "README.md").write_text("project\n")
    run(["git", "init", "-q", "-b", "main"], root)
    run([PY, "-m", "dvc", "init", "-q"], root)
    run([PY, "-m", "dvc", "repro"], root)
    commit(root, "pipeline")
    run(["git", "checkout", "-q", "-b", "feature"], root)
    return root


def commit(root: Path, message: str) -> str:
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], root)
    return run(["git", "rev-parse", "HEAD"], root).stdout.strip()


def cold(root: Path) -> None:
    """A fresh fork's runner: no DVC cache and no DVC-tracked outputs (git-tracked ones are committed)."""
    for path in ("prepared", "model", ".dvc/cache"):
        sh(["rm", "-rf", path], root)


def lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def chdir_env(monkeypatch, root: Path) -> None:
    """Run the library in-process inside `root`, as the CLI would there."""
    monkeypatch.chdir(root)
    for name in [k for k in os.environ if k.startswith(("GIT_", "GITHUB_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "test")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "test@example.com")
