"""Bad data fails the `validate` stage under DVC, names column and rows, and loses nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.repo import clone, sh

pytestmark = pytest.mark.slow

DATA = "data/breast_cancer.csv"


def snapshot(repo: Path) -> dict[str, str]:
    """md5 of every file under the later stages' outputs and the DVC cache."""
    files = [p for d in ("artifacts", "eval", ".dvc/cache") for p in (repo / d).rglob("*") if p.is_file()]
    return {str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def corrupt(lines: list[str], case: str) -> list[str]:
    header = lines[0].split(",")
    row = lambda i: lines[i].split(",")  # noqa: E731
    if case == "missing column":
        return [",".join(r for j, r in enumerate(line.split(",")) if j != 1) for line in lines]
    if case == "nan":
        cells = row(3)
        cells[0] = "NaN"
        lines[3] = ",".join(cells)
    elif case == "wrong dtype":
        cells = row(5)
        cells[2] = "abc"
        lines[5] = ",".join(cells)
    elif case == "unknown label":
        cells = row(7)
        cells[-1] = "unsure"
        lines[7] = ",".join(cells)
    elif case == "empty file":
        return []
    elif case == "duplicated header":
        lines[0] = ",".join([header[0], header[0], *header[2:]])
    return lines


EXPECTED = {
    "missing column": "column 'mean_texture': missing",
    "nan": "column 'mean_radius': missing value (empty/NaN) at row 3",
    "wrong dtype": "column 'mean_perimeter': expected float, got non-numeric value 'abc' at row 5",
    "unknown label": "column 'diagnosis' (label): unknown label 'unsure' at row 7",
    "empty file": "file is empty (0 bytes)",
    "duplicated header": "column 'mean_radius': appears 2 times in the header (positions 1, 2)",
}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_bad_data_fails_validate_and_keeps_outputs_and_cache(case, trained_repo, dvc_remote, tmp_path):
    repo = clone(trained_repo, tmp_path / "clone", dvc_remote)
    sh(["dvc", "pull"], repo)
    before = snapshot(repo)
    data = repo / DATA
    lines = corrupt(data.read_text().splitlines(), case)
    data.write_text("\n".join(lines) + ("\n" if lines else ""))

    proc = sh(["dvc", "repro"], repo, check=False)

    assert proc.returncode != 0
    assert "validate: data/breast_cancer.csv FAILED" in proc.stderr
    assert EXPECTED[case] in proc.stderr
    assert "Running stage 'prepare'" not in proc.stdout
    after = snapshot(repo)
    # Earlier outputs and cached objects are untouched. (DVC may add the bad table's own hash to the cache.)
    assert {k: after.get(k) for k in before} == before
    assert [k for k in after if k not in before and not k.startswith(".dvc/cache/")] == []
    assert EXPECTED[case] in (repo / "reports/validation.json").read_text()
