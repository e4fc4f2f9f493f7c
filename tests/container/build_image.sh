#!/usr/bin/env bash
# Build the serving image on a machine without Docker: podman + buildah, from a debootstrapped Debian base.
# This is what the container test runs; GitHub's runners build the same Dockerfile with their own base.
#
# Needs (apt, installed by the CI setup, not by this script): podman buildah runc debootstrap uidmap
# fuse-overlayfs, a torch CPU wheel in $WHEELS, and root (debootstrap, rootful podman).
#
# Usage (from the repository root):
#   tests/container/build_image.sh base         podman config + the debootstrapped base (cached in WORK_DIR)
#   tests/container/build_image.sh args         print the extra `podman build` arguments for this machine
#   tests/container/build_image.sh build TAG    both, then build the image (after `mlops archive`)
# Env:   WORK_DIR       podman storage + cached base image (default: ${XDG_CACHE_HOME:-$HOME/.cache}/mlops-podman)
#        MODEL_NAME MODEL_VERSION GIT_SHA   image build args (defaults: breast-cancer, 0, git HEAD)
#        WHEELS         directory holding torch-*.whl (default /opt/wheels)
#        DEBIAN_MIRROR  default: the first URI of /etc/apt/sources.list.d/debian.sources, else deb.debian.org
# Then use podman with: export CONTAINERS_STORAGE_CONF=$WORK_DIR/storage.conf CONTAINERS_CONF=$WORK_DIR/containers.conf
set -euo pipefail

ACTION=${1:?usage: build_image.sh base|args|build TAG}
WORK_DIR=${WORK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlops-podman}
WHEELS=${WHEELS:-/opt/wheels}
BASE=localhost/mlops-bookworm-base
mkdir -p "$WORK_DIR/storage" "$WORK_DIR/run"

# Storage in the work dir; runc + cgroupfs (crun fails on this kind of host's cgroup layout).
cat > "$WORK_DIR/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$WORK_DIR/storage"
runroot = "$WORK_DIR/run"
CONF
cat > "$WORK_DIR/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_STORAGE_CONF=$WORK_DIR/storage.conf CONTAINERS_CONF=$WORK_DIR/containers.conf

if ! podman image exists "$BASE"; then
  mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d "$WORK_DIR/rootfs.XXXX")
  echo "build_image: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK_DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK_DIR/debootstrap.log"; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    rm -f "$rootfs/etc/apt/sources.list"
  fi
  tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

# Docker format keeps the HEALTHCHECK (OCI has none). Offline: torch from the local wheel directory,
# mounted read-only into the RUN steps.
# Constant arguments, so podman's layer cache is reused from one build to the next.
build_args=(--format docker --pull=never --network host -v "$WHEELS:/wheels:ro" --build-arg BASE_IMAGE="$BASE"
  --build-arg TORCH_INDEX= --build-arg PIP_FIND_LINKS=/wheels
  --secret "id=extra_ca,src=/etc/ssl/certs/ca-certificates.crt")
case "$ACTION" in
  base) exit 0 ;;
  args) echo "${build_args[*]}"; exit 0 ;;
  build) TAG=${2:?usage: build_image.sh build TAG} ;;
  *) echo "unknown action $ACTION" >&2; exit 2 ;;
esac
podman build --force-rm "${build_args[@]}" \
  --build-arg MODEL_NAME="${MODEL_NAME:-breast-cancer}" \
  --build-arg MODEL_VERSION="${MODEL_VERSION:-0}" \
  --build-arg GIT_SHA="${GIT_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}" \
  -t "$TAG" .
podman image inspect "$TAG" --format 'build_image: {{.Id}} size {{.Size}} bytes'
