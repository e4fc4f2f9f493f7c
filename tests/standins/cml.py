"""The real CML CLI (@dvcorg/cml), as the PR workflow gets it from setup-cml: never a stand-in.

`make cml` installs it into .venv/cml with `npm ci` from tools/cml/package-lock.json (the npm cache primed
from ../shared/vendor when present). Without it the tests that need it skip, naming it, or fail under
MLOPS_REQUIRE_TOOLS=1 (.ci/run, template.yml): a missing CLI never passes silently. A wrong version fails."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

VERSION = "0.20.6"  # what pr.yml pins with setup-cml's `version: v0.20.6`
WHERE = "cml/node_modules/.bin/cml"  # under the venv (`make cml`)
PLACES = (Path(sys.prefix) / WHERE, Path(__file__).resolve().parents[2] / ".venv" / WHERE)


@cache
def real_cml() -> Path:
    """Path of the real `cml` executable, checked to be version VERSION; AssertionError otherwise."""
    found = [Path(os.environ["CML_BIN"])] if os.environ.get("CML_BIN") else [p for p in PLACES if p.exists()]
    path = (found or [PLACES[-1]])[0]
    if not path.exists():
        from tests.conftest import missing_tool

        missing_tool(f"the real CML {VERSION} at {path}", "make cml")
    found = subprocess.run([str(path), "--version"], text=True, capture_output=True).stdout.strip()
    if found != VERSION:
        raise AssertionError(f"{path} is CML {found or '?'}, the workflow pins {VERSION}: run `make cml`")
    return path
