"""Podman for the container tests: the build script's storage, base image and build arguments.

The apt packages (podman buildah runc debootstrap uidmap fuse-overlayfs) and /opt/wheels come from the
CI setup; without podman these tests fail in CI and are skipped elsewhere, with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.repo import ROOT, sh

SCRIPT = ROOT / "tests/container/build_image.sh"


def work_dir() -> Path:
    """Shared across sessions on purpose: the debootstrapped base and the layer cache take minutes."""
    return Path(os.environ.get("MLOPS_PODMAN_DIR") or Path.home() / ".cache/mlops-podman")


def podman_env() -> dict[str, str]:
    if not shutil.which("podman") or not shutil.which("debootstrap"):
        if os.environ.get("CI"):
            pytest.fail("podman/debootstrap missing: .ci/run must install podman buildah runc debootstrap")
        pytest.skip("podman and debootstrap are not installed")
    wd = work_dir()
    sh([str(SCRIPT), "base"], ROOT, WORK_DIR=str(wd))
    return {
        "WORK_DIR": str(wd),
        "CONTAINERS_STORAGE_CONF": str(wd / "storage.conf"),
        "CONTAINERS_CONF": str(wd / "containers.conf"),
    }


def build_args() -> str:
    return sh([str(SCRIPT), "args"], ROOT, **podman_env()).stdout.strip()
