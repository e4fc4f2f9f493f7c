"""Podman for the container tests: the build script's storage, base image and build arguments.

The apt packages (podman buildah runc debootstrap uidmap fuse-overlayfs) and /opt/wheels come from the
CI setup; without podman or debootstrap these tests skip, naming the tool, or fail with
MLOPS_REQUIRE_TOOLS=1.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import missing_tool
from tests.repo import ROOT, sh

SCRIPT = ROOT / "tests/container/build_image.sh"


def work_dir() -> Path:
    """Shared across sessions on purpose: the debootstrapped base and the layer cache take minutes."""
    return Path(os.environ.get("MLOPS_PODMAN_DIR") or Path.home() / ".cache/mlops-podman")


def podman_env() -> dict[str, str]:
    for tool in ("podman", "debootstrap"):
        if not shutil.which(tool):
            missing_tool(tool, "apt-get install podman buildah runc debootstrap uidmap fuse-overlayfs")
    wd = work_dir()
    sh([str(SCRIPT), "base"], ROOT, WORK_DIR=str(wd))
    return {
        "WORK_DIR": str(wd),
        "CONTAINERS_STORAGE_CONF": str(wd / "storage.conf"),
        "CONTAINERS_CONF": str(wd / "containers.conf"),
    }


def build_args() -> str:
    return sh([str(SCRIPT), "args"], ROOT, **podman_env()).stdout.strip()
