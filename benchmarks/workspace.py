"""A throw-away copy of this working tree to run the project in, and commands run inside it.

The benchmarks measure the pipeline in such copies, and the tests that need a real checkout use the
same helpers (tests/repo.py imports them from here), so the benchmarks run with tests/ deleted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv running this process: mlops, dvc, act live here


def env(**extra: str) -> dict[str, str]:
    """A child process's environment: the venv first on PATH, no user git/DVC/MLflow config leaking in."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DVC_", "MLFLOW_"))}
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    base.update(
        {
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
        }
    )
    base.update(extra)
    return base


def sh(cmd: list[str] | str, cwd: Path, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
    """Run a command, capture output; a failure raises AssertionError with both streams in its message
    (a test reports it as a failed assertion, a benchmark stops on it)."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=env(**extra), text=True, capture_output=True, shell=isinstance(cmd, str)
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{cmd} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def source_files() -> list[str]:
    """Tracked plus untracked-but-not-ignored files: what a commit of this working tree would hold."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def copy_project(dst: Path, remote: Path) -> Path:
    """A fresh git repo on branch main holding this working tree, with its DVC remote at `remote`."""
    dst.mkdir(parents=True, exist_ok=True)
    for rel in source_files():
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    sh(["git", "init", "-q", "-b", "main"], dst)
    sh(["dvc", "remote", "add", "--local", "-f", "-d", "local", str(remote)], dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "template"], dst)
    return dst
