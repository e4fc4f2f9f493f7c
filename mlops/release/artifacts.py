"""What a promotion ships and records: the reviewed files and their hashes, the commit, the fallback baseline.

Every file of the train stage's output must match its md5 in dvc.lock, so the registered version is the
exact bytes a PR reviewed. The commit and its parent are read from git: the version is tagged with the
checked-out commit, and a fresh registry's baseline is the previous commit's metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops.config import paths
from mlops.config.errors import UserError
from mlops.config.git import git

LOCK = Path("dvc.lock")


DATA_DVC = Path("data.dvc")


DVC_CACHE = Path(".dvc/cache/files/md5")


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _lock_outs(lock: Path = LOCK) -> dict[str, dict]:
    if not lock.exists():
        raise UserError(
            f"{lock} not found: promotion ships what `dvc repro` recorded; run the pipeline first"
        )
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {out["path"]: out for stage in stages.values() for out in stage.get("outs", [])}


def _expected_files(out: dict) -> dict[str, str]:
    """{relative file path: md5} for one dvc.lock output; a directory's list lives in the DVC cache."""
    path, digest = out["path"], out["md5"]
    if not digest.endswith(".dir"):
        return {path: digest}
    manifest = DVC_CACHE / digest[:2] / digest[2:]
    if not manifest.exists():
        raise UserError(f"DVC has no file list for {path} ({digest}) in {DVC_CACHE}: run `dvc pull` first")
    return {f"{path}/{entry['relpath']}": entry["md5"] for entry in read_manifest(manifest, digest)}


def locked_md5(file: Path, lock: Path = LOCK) -> str:
    """The md5 dvc.lock records for one file, itself an output or inside a directory output."""
    rel = file.as_posix()
    for path, out in _lock_outs(lock).items():
        if rel == path or rel.startswith(path + "/"):
            found = _expected_files(out).get(rel)
            if found:
                return found
    raise UserError(f"{lock} records no output holding {rel}: run `dvc repro` and commit dvc.lock")


def read_manifest(manifest: Path, digest: str) -> list[dict]:
    """A `.dir` file list, trusted only when its bytes hash to the name dvc.lock gave it.

    The list decides which md5 each file must have; a list swapped in the cache or the remote (with
    matching tampered files) would otherwise make every file check pass. DVC names the list by the md5
    of its exact bytes, so one md5 over the file proves it is the reviewed list."""
    data = manifest.read_bytes()
    actual = hashlib.md5(data).hexdigest()
    if actual != digest.removesuffix(".dir"):
        raise UserError(
            f"the DVC file list {manifest} is not the one dvc.lock names: its md5 is {actual}, "
            f"dvc.lock says {digest}; refusing to trust it (tampered cache or remote?). "
            "Delete it and `dvc pull` from the trusted remote."
        )
    try:
        entries = json.loads(data)
    except ValueError as err:
        raise UserError(f"the DVC file list {manifest} is not JSON: {err}") from None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("relpath"), str) and isinstance(e.get("md5"), str)
        for e in entries
    ):
        raise UserError(f"the DVC file list {manifest} is not a list of {{relpath, md5}} entries")
    return entries


def verify_reviewed_artifacts(lock: Path = LOCK) -> dict[str, str]:
    """Refuse unless the model files and the metrics are byte-for-byte what dvc.lock recorded."""
    outs = _lock_outs(lock)
    wanted = {str(paths.MODEL_DIR), str(paths.METRICS)}
    missing = wanted - outs.keys()
    if missing:
        raise UserError(
            f"{lock} records no output {', '.join(sorted(missing))}: run `dvc repro` and commit dvc.lock"
        )
    expected: dict[str, str] = {}
    for name in sorted(wanted):
        expected.update(_expected_files(outs[name]))
    problems = []
    for rel, digest in expected.items():
        if not Path(rel).exists():
            problems.append(f"{rel}: missing (run `dvc pull`)")
        elif (actual := md5(Path(rel))) != digest:
            problems.append(f"{rel}: md5 {actual} != {digest} in {lock}")
    if problems:
        raise UserError(
            "the model on disk is not the reviewed one; refusing to promote:\n  " + "\n  ".join(problems)
        )
    return expected


def git_sha() -> str:
    """The commit checked out here. GITHUB_SHA only without git: a variable left in a shell (or an
    Actions run's, in `act`) must not name a commit that is not the one whose files are promoted."""
    return git("rev-parse", "HEAD", check=False) or os.environ.get("GITHUB_SHA") or "unknown"


def uncommitted() -> list[str]:
    """Tracked files that differ from HEAD (staged or not). Untracked files are no commit's content.

    A promotion records `git_sha`, the commit the model and metrics belong to. With uncommitted changes
    (a branch whose retrained dvc.lock is not committed yet) no commit holds what is promoted, and the
    sha would name the commit the branch started from, main's."""
    out = git("status", "--porcelain=v1", "--untracked-files=no", check=False)
    return sorted(line[3:].strip() for line in (out or "").splitlines() if line.strip())


def require_clean(allow_dirty: bool) -> bool:
    """Refuse a dirty tree unless `allow_dirty`; returns whether it is dirty (recorded as git_dirty)."""
    changed = uncommitted()
    if changed and not allow_dirty:
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        raise UserError(
            f"uncommitted changes ({shown}): no commit holds what would be promoted, so its git sha would "
            "be wrong. Commit them first, or pass --allow-dirty to promote anyway with git_dirty=true "
            "recorded on the version"
        )
    if changed:
        print(f"promote: uncommitted changes in {len(changed)} file(s): recording git_dirty=true")
    return bool(changed)


def data_md5() -> str:
    if not DATA_DVC.exists():
        return "unknown"
    outs = (yaml.safe_load(DATA_DVC.read_text()) or {}).get("outs") or [{}]
    return str(outs[0].get("md5", "unknown"))


@dataclass
class Baseline:
    name: str  # "champion" (v3) or "main@<sha>"; shown in gate lines and the summary
    metrics: dict | None
    source: str  # a sentence for the job summary


def previous_commit_baseline(sha: str) -> Baseline:
    """Metrics of the first parent of `sha` on main, from git (the fallback for a fresh registry)."""
    parent = git("rev-parse", f"{sha}^", check=False) if sha != "unknown" else None
    text = git("show", f"{parent}:{paths.METRICS.as_posix()}", check=False) if parent else None
    if not text:
        return Baseline(
            "champion",
            None,
            "no champion in the registry and no previous commit with "
            f"{paths.METRICS}: first promotion, regression gates skipped",
        )
    return Baseline(
        f"main@{parent[:7]}",
        json.loads(text),
        f"no champion in the registry (fresh store); baseline is {paths.METRICS} "
        f"of the previous commit on main, {parent[:7]}, read from git",
    )


def _parent_params(sha: str) -> dict:
    """params.yaml of the first parent of `sha` ({} when unknown): did this merge set the floors itself?"""
    parent = git("rev-parse", f"{sha}^", check=False) if sha != "unknown" else None
    text = git("show", f"{parent}:params.yaml", check=False) if parent else None
    return (yaml.safe_load(text) or {}) if text else {}


RELEASE_REF = "refs/heads/main"


def require_release_ref() -> None:
    """In GitHub Actions, only main may register or move the alias: a dispatch from a branch is refused.

    The workflow refuses it too (`if:` on the job), and the `registry` environment should be limited to
    main (docs/security.md); this is the check that holds when a branch edits its own copy of the
    workflow but still reaches this code with credentials."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return  # a person on a laptop: their registry, their call
    ref = os.environ.get("GITHUB_REF", "")
    if ref != RELEASE_REF:
        raise UserError(
            f"promotion runs only from {RELEASE_REF} (this run is on {ref or 'an unknown ref'}): "
            "merge the change to main; an unreviewed branch never moves the registry"
        )
