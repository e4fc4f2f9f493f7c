"""Imports run one way between the product's folders, and no product module grows past 500 lines.

A forker's code (`model/`) and the run and watch sides (`serve/`, `monitoring/`) sit between the
template's machinery: the config below everything, the CLI above everything. A folder may import itself
and the folders listed before it; anything else would let a change in one room break another without
a test of that room noticing, and lets cycles grow. The test reads the imports with `ast` (lazy imports
inside functions too), so it needs none of the heavy libraries.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom first. A module may import its own folder and any folder of an earlier rank.
LAYERS: list[tuple[str, ...]] = [
    ("mlops.config",),  # params, paths, errors, raw values, git, the MLflow connection
    ("mlops.github", "mlops.report"),  # GitHub plumbing; the PR report and its statistics (files, not code)
    ("model",),  # the forker's data, features, network, training, evaluation
    ("serve",),  # the handler and the local server
    ("mlops.release",),  # promotion, the lock check, artifacts, archive, image, delivery
    ("monitoring",),  # drift, performance, the retraining PR
    ("mlops.cli",),  # the one entry point
]
SAME_FOLDER = {"mlops.__main__": "mlops.cli"}  # `python -m mlops` is the CLI
PRODUCT = ("mlops", "model", "serve", "monitoring")
MAX_LINES = 500


def folder_of(module: str) -> str | None:
    """The layer folder `module` belongs to (the longest listed prefix), or None outside the product."""
    if module in SAME_FOLDER:
        return SAME_FOLDER[module]
    best = None
    for layer in LAYERS:
        for name in layer:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best)):
                best = name
    return best


RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def modules() -> dict[str, Path]:
    found = {}
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in `path`; `from pkg import mod` counts as pkg.mod."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            out.append((node.lineno, base))
    return out


def violations() -> list[str]:
    """One line per offending import statement: where, what, and which rule it breaks."""
    bad: dict[tuple[str, int], str] = {}
    for module, path in modules().items():
        where, own = path.relative_to(ROOT).as_posix(), folder_of(module)
        if own is None:
            if module not in PRODUCT:  # the packages' own __init__ holds no code
                bad[(where, 0)] = f"{where}: {module} is in no layer (add its folder to LAYERS)"
            continue
        for line, target in imports(path, module):
            other = folder_of(target) if target.split(".")[0] in PRODUCT else None
            if other is None or other == own or RANK[other] < RANK[own]:
                continue
            how = "same layer" if RANK[other] == RANK[own] else "upwards"
            text = f"{where}:{line}: {module} imports {target} ({own} may not import {other}: {how})"
            if len(text) > len(bad.get((where, line), "")):  # `from a import b`: name the module, a.b
                bad[(where, line)] = text
    return sorted(bad.values())


def test_imports_run_one_way_between_folders():
    bad = violations()
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_layers_name_real_folders():
    for layer in LAYERS:
        for name in layer:
            parts = name.split(".")
            assert (ROOT.joinpath(*parts)).is_dir() or ROOT.joinpath(*parts).with_suffix(".py").is_file(), (
                name
            )


def test_no_product_module_over_500_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules().values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by concern (at most {MAX_LINES} lines each): {long}"


def test_the_check_reports_an_upward_import_with_its_line(tmp_path, monkeypatch):
    """The rule itself, on a tree of its own: a lazy import of the CLI from the config is caught."""
    for name, text in {
        "mlops/config/bad.py": "import os\n\n\ndef f():\n    from mlops.cli import main\n",
        "mlops/cli/__init__.py": "from mlops.config import bad\n",
        "model/ok.py": "from mlops.config.bad import f\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert violations() == [
        "mlops/config/bad.py:5: mlops.config.bad imports mlops.cli.main"
        " (mlops.config may not import mlops.cli: upwards)"
    ]
