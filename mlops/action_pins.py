"""Every marketplace action is pinned to a full commit SHA and says which release that commit is.

A tag can be moved to other code; a commit cannot. `uses: owner/repo@<40 hex>  # vX.Y.Z` keeps the
pin immutable and readable. This check only sees the form: whether the SHA really is that tag's commit
needs the network (zizmor's online audits `impostor-commit` and `ref-version-mismatch`, README).
Run by pre-commit on .github/; `python -m mlops.action_pins [PATHS...]`, exit 1 on a bad pin.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[^@\s]+)?@[0-9a-f]{40}$")
VERSION = re.compile(r"^v\d+\.\d+\.\d+\b")


def problems(path: Path) -> list[str]:
    """`path:line: why` for each `uses:` that is not `owner/repo[/dir]@<40-hex sha>  # vX.Y.Z`."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        m = USES.match(line)
        if not m:
            continue
        ref, comment = m["ref"].strip("'\""), (m["comment"] or "").strip()
        if ref.startswith(("./", "docker://")):  # local actions and images are not tags
            continue
        if not PINNED.match(ref):
            found.append(f"{path}:{number}: {ref}: pin a full 40-hex commit SHA, not a tag or branch")
        elif not VERSION.match(comment):
            found.append(f"{path}:{number}: {ref}: add the release the SHA is, as `# vX.Y.Z`")
    return found


def workflow_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths or [".github"]:
        p = Path(name)
        files += sorted(f for f in p.rglob("*") if f.suffix in (".yml", ".yaml")) if p.is_dir() else [p]
    return files


def main(argv: list[str] | None = None) -> int:
    bad = [line for f in workflow_files(sys.argv[1:] if argv is None else argv) for line in problems(f)]
    print("\n".join(bad) or "action pins: every uses: is a commit SHA with its # vX.Y.Z", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
