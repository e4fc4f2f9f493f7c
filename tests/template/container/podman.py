"""Podman for the container tests: the build script's storage, base image and build arguments.

The apt packages (podman buildah runc debootstrap debian-archive-keyring uidmap fuse-overlayfs) come from
the CI setup; without podman or debootstrap these tests skip, naming the tool, or fail with
MLOPS_REQUIRE_TOOLS=1. Podman is rootful: as a user with passwordless sudo (GitHub's runner) the build
script writes a `podman` wrapper that goes through sudo, and podman_env() puts it first on PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import missing_tool
from tests.repo import BIN, ROOT, sh

SCRIPT = ROOT / "tests/template/container/build_image.sh"
APT = "apt-get install podman buildah runc debootstrap debian-archive-keyring uidmap fuse-overlayfs"


def work_dir() -> Path:
    """Shared across sessions on purpose: the debootstrapped base and the layer cache take minutes."""
    return Path(os.environ.get("MLOPS_PODMAN_DIR") or Path.home() / ".cache/mlops-podman")


def podman_env() -> dict[str, str]:
    for tool in ("podman", "debootstrap"):
        if not shutil.which(tool):
            missing_tool(tool, APT)
    wd = work_dir()
    sh([str(SCRIPT), "base"], ROOT, WORK_DIR=str(wd))
    env = {
        "WORK_DIR": str(wd),
        "CONTAINERS_STORAGE_CONF": str(wd / "storage.conf"),
        "CONTAINERS_CONF": str(wd / "containers.conf"),
    }
    if (wd / "bin/podman").exists() and os.geteuid() != 0:
        env["PATH"] = os.pathsep.join([str(BIN), str(wd / "bin"), os.environ.get("PATH", "")])
    return env


LAYER_CACHE = "localhost/mlops-layer-cache:latest"


def keep_layers(image: str, env: dict[str, str]) -> None:
    """Remove `image` but keep its layers (apt, pip: minutes) for the next build, in this session (the
    promote workflow's first build) or a later one: `podman rmi` of the only tag also deletes the build's
    intermediate images, the layer cache. The cache tag moves to `image`; the image it left goes."""
    inspect = ["podman", "image", "inspect", "--format", "{{.Id}}"]
    old = sh([*inspect, LAYER_CACHE], ROOT, check=False, **env).stdout.strip()
    sh(["podman", "tag", image, LAYER_CACHE], ROOT, **env)
    sh(["podman", "rmi", image], ROOT, **env)  # an untag: the cache tag holds the image
    new = sh([*inspect, LAYER_CACHE], ROOT, check=False, **env).stdout.strip()
    if old and old != new:
        sh(["podman", "rmi", old], ROOT, check=False, **env)  # its layers that the new image shares stay


def build_args() -> str:
    return sh([str(SCRIPT), "args"], ROOT, **podman_env()).stdout.strip()
