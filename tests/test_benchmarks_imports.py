"""The benchmarks import nothing from tests/: a forker who deletes tests/ (or tests/template/) runs them.

Imports are read with `ast`, lazy ones inside functions too, so the check needs none of the libraries
the benchmarks use.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of_tests(root: Path) -> list[str]:
    """`path:line: module` for every import of the `tests` package in root/benchmarks/*.py."""
    bad = []
    for path in sorted((root / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            where = path.relative_to(root).as_posix()
            bad += [f"{where}:{node.lineno}: {name}" for name in names if name.split(".")[0] == "tests"]
    return bad


def test_benchmarks_import_nothing_from_tests():
    bad = imports_of_tests(ROOT)
    assert not bad, "benchmarks must run without tests/ (move the helper to benchmarks/):\n" + "\n".join(bad)


def test_the_check_finds_top_level_and_lazy_imports(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "bad.py").write_text(
        "import os\nimport tests.repo as repo\n\n\ndef f():\n    from tests.template.scale import servers\n"
    )
    (tmp_path / "benchmarks" / "ok.py").write_text("from benchmarks.workspace import sh\nimport testsuite\n")
    assert imports_of_tests(tmp_path) == [
        "benchmarks/bad.py:2: tests.repo",
        "benchmarks/bad.py:6: tests.template.scale",
    ]
