"""Bad data fails the `validate` stage under DVC, names column and rows, and loses nothing.

The table, its format (CSV or Parquet) and the columns come from params.yaml (tests/schema.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.repo import clone, sh
from tests.schema import FEATURES, LABEL, NUMERIC, SPEC, raw_table

pytestmark = pytest.mark.slow

DATA = str(SPEC.path)
CSV = SPEC.path.suffix.lower() in (".csv", ".txt")
STRICT = [f.name for f in SPEC.features if f.numeric and f.missing == "error"]  # NaN is an error there
KIND = {f.name: f.type for f in SPEC.features}


def snapshot(repo: Path) -> dict[str, str]:
    """md5 of every file under the later stages' outputs and the DVC cache."""
    files = [p for d in ("artifacts", "eval", ".dvc/cache") for p in (repo / d).rglob("*") if p.is_file()]
    return {str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def write_corrupt(path: Path, case: str) -> None:
    """Rewrite the project's table, in its own format, with one kind of fault."""
    if case == "empty file":
        path.write_bytes(b"")
        return
    frame = raw_table()
    if case == "missing column":
        frame = frame.drop(columns=FEATURES[1])
    elif case == "nan":
        frame[STRICT[0]] = frame[STRICT[0]].astype(object)
        frame.loc[2, STRICT[0]] = np.nan
    elif case == "wrong dtype":
        frame[NUMERIC[-1]] = frame[NUMERIC[-1]].astype(str)
        frame.loc[4, NUMERIC[-1]] = "abc"
    elif case == "unknown label":
        frame[LABEL] = frame[LABEL].astype(object)
        frame.loc[6, LABEL] = "unsure"
    if not CSV:
        frame.to_parquet(path, index=False)
        return
    frame.to_csv(path, index=False, sep=SPEC.sep, encoding=SPEC.encoding, lineterminator="\n")
    if case == "duplicated header":
        lines = path.read_text(encoding=SPEC.encoding).split("\n")
        header = lines[0].split(SPEC.sep)
        lines[0] = SPEC.sep.join([header[0], header[0], *header[2:]])
        path.write_text("\n".join(lines), encoding=SPEC.encoding)


EXPECTED = {
    "missing column": f"column {FEATURES[1]!r}: missing",
    "nan": f"column {STRICT[0]!r}: missing value (empty/NaN) at row 3" if STRICT else None,
    "wrong dtype": f"column {NUMERIC[-1]!r}: expected {KIND[NUMERIC[-1]]}, got non-numeric value 'abc'"
    " at row 5",
    "unknown label": f"column {LABEL!r} (label): unknown label 'unsure' at row 7" if SPEC.classes else None,
    "empty file": "file is empty (0 bytes)",
    "duplicated header": "column {!r}: appears 2 times in the header (positions 1, 2)",
}
WHY_NOT = {
    "nan": "no numeric feature has missing: error",
    "unknown label": "a regression label has no list of allowed labels",
    "duplicated header": "only a CSV header can repeat a name (a Parquet schema names each column once)",
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_bad_data_fails_validate_and_keeps_outputs_and_cache(case, trained_repo, dvc_remote, tmp_path):
    if EXPECTED[case] is None or (case == "duplicated header" and not CSV):
        pytest.skip(WHY_NOT[case])
    repo = clone(trained_repo, tmp_path / "clone", dvc_remote)
    sh(["dvc", "pull"], repo)
    before = snapshot(repo)
    data = repo / DATA
    header = data.read_text(encoding=SPEC.encoding).split("\n", 1)[0].split(SPEC.sep) if CSV else []
    write_corrupt(data, case)
    expected = EXPECTED[case].format(header[0].strip()) if case == "duplicated header" else EXPECTED[case]

    proc = sh(["dvc", "repro"], repo, check=False)

    assert proc.returncode != 0
    assert f"validate: {DATA} FAILED" in proc.stderr
    assert expected in proc.stderr
    assert "Running stage 'prepare'" not in proc.stdout
    after = snapshot(repo)
    # Earlier outputs and cached objects are untouched. (DVC may add the bad table's own hash to the cache.)
    assert {k: after.get(k) for k in before} == before
    assert [k for k in after if k not in before and not k.startswith(".dvc/cache/")] == []
    assert expected in (repo / "reports/validation.json").read_text()
