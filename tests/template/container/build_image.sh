#!/usr/bin/env bash
# Build the serving image on a machine without Docker: rootful podman + buildah, from a debootstrapped
# Debian base. This is what the container tests run, here as root and on GitHub's runner as `runner`.
#
# Needs (apt, installed by the CI setup, not by this script): podman buildah runc debootstrap
# debian-archive-keyring uidmap fuse-overlayfs, and root or passwordless sudo (debootstrap, rootful podman).
# Not root: debootstrap runs through sudo, and `podman` is a wrapper in $WORK_DIR/bin that runs the real
# one through sudo with this storage; put that directory first on PATH (podman_env() does, and so does
# the template workflow) so the tests and act use the same rootful storage.
# torch's CPU wheel: from $WHEELS when it holds one, else `pip download`ed once into $WORK_DIR/wheels from
# the PyTorch CPU index (PIP_EXTRA_INDEX_URL). Either way the Dockerfile's `pip install --require-hashes`
# checks it against serve/requirements.txt.
#
# Usage (from the repository root):
#   tests/template/container/build_image.sh base         podman config, the debootstrapped base and the torch wheel (cached in WORK_DIR)
#   tests/template/container/build_image.sh args         print the extra `podman build` arguments for this machine
#   tests/template/container/build_image.sh build TAG    both, then build the image (after `mlops archive`)
# Env:   WORK_DIR       podman storage + cached base image (default: ${XDG_CACHE_HOME:-$HOME/.cache}/mlops-podman)
#        MODEL_NAME MODEL_VERSION GIT_SHA   image build args (defaults: breast-cancer, 0, git HEAD)
#        WHEELS         directory holding torch-*.whl (default /opt/wheels; else WORK_DIR/wheels, downloaded)
#        DEBIAN_MIRROR  default: the first URI of /etc/apt/sources.list.d/debian.sources, else deb.debian.org
# Then use podman with: export CONTAINERS_STORAGE_CONF=$WORK_DIR/storage.conf CONTAINERS_CONF=$WORK_DIR/containers.conf
#   (and, not root, PATH=$WORK_DIR/bin:$PATH)
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

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo --non-interactive)
  # The real podman: the first on PATH that is not this wrapper (it may already be on PATH).
  real=$(PATH=$(tr : '\n' <<<"$PATH" | grep -vxF "$WORK_DIR/bin" | paste -sd: -) command -v podman) \
    || { echo "build_image: podman not found" >&2; exit 1; }
  mkdir -p "$WORK_DIR/bin"
  cat > "$WORK_DIR/bin/podman" <<WRAP
#!/bin/sh
# Rootful podman for a user with passwordless sudo (written by tests/template/container/build_image.sh).
exec sudo --non-interactive env CONTAINERS_STORAGE_CONF="\${CONTAINERS_STORAGE_CONF:-$WORK_DIR/storage.conf}" \\
  CONTAINERS_CONF="\${CONTAINERS_CONF:-$WORK_DIR/containers.conf}" "$real" "\$@"
WRAP
  chmod +x "$WORK_DIR/bin/podman"
  export PATH="$WORK_DIR/bin:$PATH"
fi

if ! podman image exists "$BASE"; then
  mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  mirror=${mirror:-http://deb.debian.org/debian}
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg  # debootstrap checks the Release signature with it
  [ -s "$keyring" ] || { echo "build_image: $keyring missing (apt-get install debian-archive-keyring)" >&2; exit 1; }
  rootfs=$(mktemp -d "$WORK_DIR/rootfs.XXXX")
  echo "build_image: debootstrap bookworm from $mirror"
  "${SUDO[@]}" debootstrap --variant=minbase --keyring="$keyring" bookworm "$rootfs" "$mirror" \
    >"$WORK_DIR/debootstrap.log" 2>&1 || { tail -20 "$WORK_DIR/debootstrap.log"; exit 1; }
  "${SUDO[@]}" sh -c 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' sh "$rootfs"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    "${SUDO[@]}" cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    "${SUDO[@]}" rm -f "$rootfs/etc/apt/sources.list"
  fi
  "${SUDO[@]}" tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE" >/dev/null
  "${SUDO[@]}" rm -rf "$rootfs"
fi

# torch's CPU wheel, the version the lock pins, for the image's Python (Debian bookworm: CPython 3.11).
torch_pin=$(grep -m1 -o "^torch==[^ ]*" "$(dirname "$0")/../../../serve/requirements.txt")
if ! compgen -G "$WHEELS/torch-*.whl" >/dev/null; then
  WHEELS=$WORK_DIR/wheels
  if ! compgen -G "$WHEELS/${torch_pin/==/-}-*.whl" >/dev/null; then
    echo "build_image: pip download $torch_pin into $WHEELS"
    PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL:-https://download.pytorch.org/whl/cpu} \
      python3 -m pip download --quiet "$torch_pin" --no-deps --only-binary :all: --python-version 3.11 \
      --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 -d "$WHEELS"
  fi
fi

# Docker format keeps the HEALTHCHECK (OCI has none). torch from the local wheel directory, mounted
# read-only into the RUN steps; the rest from PyPI; all of it checked against the lock's hashes.
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
