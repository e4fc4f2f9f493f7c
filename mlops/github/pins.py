"""Every marketplace action is pinned to a full commit SHA, says which release that commit is, and is
kept fresh by Dependabot.

A tag can be moved to other code; a commit cannot. `uses: owner/repo@<40 hex>  # vX.Y.Z` keeps the
pin immutable and readable. Dependabot (.github/dependabot.yml) moves such a pin and rewrites its
comment only when the comment, after `#`, ends with the version of the pinned commit: anything after the
version (`# v4.2.2 pinned`, a second `# zizmor: ...`) and the comment goes stale while the SHA moves. So
the comment must be exactly `# vX.Y.Z`, and each directory holding pins (`/` for .github/workflows, the
folder of each composite action) must be in the github-actions entry's `directory`/`directories`.
This check only sees the form: whether the SHA really is that tag's commit needs the network (zizmor's
online audits `impostor-commit` and `ref-version-mismatch`, README).
Run by pre-commit on .github/; `python -m mlops.github.pins [PATHS...]`, exit 1 on a bad pin.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

import yaml

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#(?P<comment>.*))?$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[^@\s]+)?@[0-9a-f]{40}$")
VERSION = re.compile(r"v\d+\.\d+\.\d+")  # the whole comment: what Dependabot recognises and rewrites
DEPENDABOT = (".github/dependabot.yml", ".github/dependabot.yaml")


def _repository(path: Path) -> tuple[Path, str] | None:
    """(repository root, the Dependabot directory that covers `path`) when `path` is under .github/."""
    path = path.resolve()
    for parent in path.parents:
        if parent.name == ".github":
            root = parent.parent
            rel = path.relative_to(root).parent.as_posix()
            return root, "/" if rel == ".github/workflows" else "/" + rel
    return None


def dependabot_directories(root: Path) -> list[str] | None:
    """The github-actions entries' directories in .github/dependabot.yml (None: no such file)."""
    for name in DEPENDABOT:
        if (root / name).is_file():
            config = yaml.safe_load((root / name).read_text()) or {}
            dirs: list[str] = []
            for update in config.get("updates") or []:
                if update.get("package-ecosystem") == "github-actions":
                    dirs += [update["directory"]] if update.get("directory") else []
                    dirs += list(update.get("directories") or [])
            return ["/" + d.strip("/") if d.strip("/") else "/" for d in dirs]
    return None


def _covered(directory: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(directory, p) for p in patterns)


def problems(path: Path) -> list[str]:
    """`path:line: why` for each `uses:` that is not `owner/repo[/dir]@<40-hex sha>  # vX.Y.Z`, and for
    pins in a directory Dependabot does not watch."""
    found = []
    pins = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        m = USES.match(line)
        if not m:
            continue
        ref, comment = m["ref"].strip("'\""), (m["comment"] or "").strip()
        if ref.startswith(("./", "docker://")):  # local actions and images are not tags
            continue
        pins += 1
        if not PINNED.match(ref):
            found.append(f"{path}:{number}: {ref}: pin a full 40-hex commit SHA, not a tag or branch")
        elif not comment:
            found.append(f"{path}:{number}: {ref}: add the release the SHA is, as `# vX.Y.Z`")
        elif not VERSION.fullmatch(comment):
            found.append(
                f"{path}:{number}: {ref}: the comment must be exactly `# vX.Y.Z` (got `# {comment}`): "
                "Dependabot rewrites a version comment only when it ends with the version"
            )
    where = _repository(path) if pins else None
    if where:
        root, directory = where
        watched = dependabot_directories(root)
        if watched is None:
            found.append(f"{path}: no .github/dependabot.yml: nothing keeps these pins fresh")
        elif not _covered(directory, watched):
            found.append(
                f"{path}: {directory} is not in the github-actions `directories` of .github/dependabot.yml: "
                "Dependabot never updates these pins"
            )
    return found


def workflow_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths or [".github"]:
        p = Path(name)
        files += sorted(f for f in p.rglob("*") if f.suffix in (".yml", ".yaml")) if p.is_dir() else [p]
    return files


def main(argv: list[str] | None = None) -> int:
    bad = [line for f in workflow_files(sys.argv[1:] if argv is None else argv) for line in problems(f)]
    ok = "action pins: every uses: is a commit SHA with its # vX.Y.Z, in a directory Dependabot watches"
    print("\n".join(bad) or ok, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
