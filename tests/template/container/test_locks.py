"""The image's Python lock and CML's npm lock: every artifact pinned by hash, and a wrong hash refused."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing_tool
from tests.repo import ROOT
from tests.template.container.podman import work_dir

LOCK = ROOT / "serve/requirements.txt"
NPM_LOCK = ROOT / "tools/cml/package-lock.json"
VENDORED_CML = ROOT.parent / "shared/vendor"


def lock_entries(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of a pip-compile --generate-hashes file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", text):
        head = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", block)
        if head:
            name = re.sub(r"[-_.]+", "-", head.group(1)).lower()
            entries[name] = (head.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def torch_wheel() -> Path:
    """The local torch CPU wheel the image build uses (the build script's two places)."""
    for folder in (Path(os.environ.get("WHEELS", "/opt/wheels")), work_dir() / "wheels"):
        found = sorted(folder.glob("torch-*.whl"))
        if found:
            return found[0]
    missing_tool(
        "a torch CPU wheel", "in /opt/wheels; `tests/template/container/build_image.sh base` downloads one"
    )


def test_image_lock_pins_every_requirement_with_hashes():
    entries = lock_entries(LOCK.read_text())
    wanted = [line.split("==") for line in (ROOT / "serve/requirements.in").read_text().splitlines()]
    for name, version in (w for w in wanted if len(w) == 2 and not w[0].startswith("#")):
        assert entries[name.lower()][0] == version, name
    assert entries["torch"][0] == "2.13.0+cpu"
    assert "setuptools" in entries, "torch needs setuptools: without --allow-unsafe the hashed install fails"
    for name, (_, hashes) in entries.items():
        assert hashes, f"{name} has no hash"
    for banned in ("mlflow", "dvc", "evidently", "lightning"):
        assert banned not in entries
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install [^\n]*--require-hashes", dockerfile)
    assert "-r /opt/serve/requirements.txt" in dockerfile
    assert "!serve/requirements.txt" in (ROOT / ".dockerignore").read_text().splitlines()


def pip_offline(args: list[str], wheel: Path, lock: Path) -> subprocess.CompletedProcess:
    """pip with no config and no index: only the local wheel, checked against the lock's hashes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    cmd = [sys.executable, "-m", "pip", *args, "--isolated", "--no-index", "--find-links", str(wheel.parent)]
    cmd += ["--no-deps", "--require-hashes", "-r", str(lock), "--disable-pip-version-check"]
    return subprocess.run(cmd, env=env, text=True, capture_output=True)


def test_local_torch_wheel_matches_the_lock_and_a_wrong_hash_is_refused(tmp_path):
    """The lock's torch hash is the real wheel's, and pip refuses that same wheel once the hash is wrong."""
    wheel = torch_wheel()
    version, hashes = lock_entries(LOCK.read_text())["torch"]
    line = f"torch=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes)
    good = tmp_path / "good.txt"
    good.write_text(line + "\n")
    ok = pip_offline(["download", "-d", str(tmp_path / "dl")], wheel, good)
    assert ok.returncode == 0, ok.stderr
    assert hashlib.sha256((tmp_path / "dl" / wheel.name).read_bytes()).hexdigest() in hashes

    tampered = tmp_path / "tampered.txt"
    tampered.write_text(f"torch=={version} --hash=sha256:{'0' * 64}\n")
    target = tmp_path / "target"
    refused = pip_offline(["install", "--target", str(target)], wheel, tampered)
    assert refused.returncode != 0
    assert "DO NOT MATCH THE HASHES" in refused.stderr
    assert not any(target.glob("torch*")), "nothing may be installed from a wheel whose hash is wrong"


def test_cml_lock_has_an_integrity_for_every_package_and_pins_the_makefile_version():
    lock = json.loads(NPM_LOCK.read_text())
    packages = {k: v for k, v in lock["packages"].items() if k}
    assert len(packages) > 100
    for name, entry in packages.items():
        assert entry["integrity"].startswith("sha512-"), name
        assert entry["resolved"].startswith("https://registry.npmjs.org/"), name
    cml = packages["node_modules/@dvcorg/cml"]
    version = re.search(r"^CML_VERSION := (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert cml["version"] == version
    assert cml["resolved"] == f"https://registry.npmjs.org/@dvcorg/cml/-/cml-{version}.tgz"
    package = json.loads((NPM_LOCK.parent / "package.json").read_text())
    assert package["dependencies"] == {"@dvcorg/cml": version}
    harness = (ROOT / "tests/standins/cml.py").read_text()
    assert re.search(rf'^VERSION = "{re.escape(version)}"', harness, re.M), "tests/standins/cml.py's VERSION"


def test_dependabot_watches_both_locks():
    updates = yaml.safe_load((ROOT / ".github/dependabot.yml").read_text())["updates"]
    watched = {(u["package-ecosystem"], u.get("directory")) for u in updates}
    assert ("pip", "/" + str(LOCK.parent.relative_to(ROOT))) in watched
    assert ("npm", "/" + str(NPM_LOCK.parent.relative_to(ROOT))) in watched


def test_vendored_cml_tarball_is_the_one_the_lock_names():
    """`make cml` here primes npm's cache with this tarball: npm ci accepts it only under this integrity."""
    lock = json.loads(NPM_LOCK.read_text())
    cml = lock["packages"]["node_modules/@dvcorg/cml"]
    tgz = VENDORED_CML / f"dvcorg-cml-{cml['version']}.tgz"
    if not tgz.exists():
        pytest.skip(f"no vendored {tgz.name} (only this project's own CI has one)")
    digest = base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    assert cml["integrity"] == f"sha512-{digest}"
