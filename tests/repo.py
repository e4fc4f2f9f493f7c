"""Helpers for tests that need a real project checkout: copy, clone, run commands in it.

Copying the tree and running commands in it live in benchmarks/workspace.py, which the benchmarks
use too (they must run without tests/); cloning a copy is for tests only.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.workspace import BIN, ROOT, copy_project, env, sh, source_files

__all__ = ["BIN", "ROOT", "clone", "copy_project", "env", "sh", "source_files"]


def clone(src: Path, dst: Path, remote: Path) -> Path:
    """`git clone` plus the same DVC remote (config.local is not cloned)."""
    sh(["git", "clone", "-q", str(src), str(dst)], src.parent)
    sh(["dvc", "remote", "add", "--local", "-f", "-d", "local", str(remote)], dst)
    return dst
