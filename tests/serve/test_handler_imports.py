"""The .mar runs in the slim serving image: the handler package imports torch, the standard library,
mlops/config/values.py and itself, and the archive carries every module of it."""

import ast
import sys

from mlops.release import archive

PACKAGE = archive.HANDLER_PACKAGE
OWN = ("serve.handler", "mlops.config.values")
OPTIONAL = {"orjson"}  # faster JSON where installed; serve/handler/jsonio.py falls back to json
LAZY = {"ts"}  # TorchServe's own package, present wherever a worker runs; imported inside a function


def imports(tree: ast.AST):
    """(module imported, inside a function, inside a try that catches ImportError) for each import."""

    def walk(node, in_function, guarded):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, in_function, guarded
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                for alias in child.names:
                    yield (
                        f"{base}.{alias.name}" if base in ("serve", "mlops.config") else base,
                        in_function,
                        guarded,
                    )
            elif isinstance(child, ast.Try):
                catches = any(
                    isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in child.handlers
                )
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), in_function, guarded or catches)
                for part in (*child.handlers, *child.orelse, *child.finalbody):
                    yield from walk(part, in_function, guarded)
            else:
                inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                yield from walk(child, inner, guarded)

    yield from walk(tree, False, False)


def test_the_handler_imports_only_torch_the_standard_library_and_itself():
    wrong = []
    for path in sorted(PACKAGE.glob("*.py")):
        for name, in_function, guarded in imports(ast.parse(path.read_text())):
            root = name.split(".")[0]
            if root in sys.stdlib_module_names or root == "torch" or name.startswith(OWN):
                continue
            if (root in OPTIONAL and guarded) or (root in LAZY and in_function):
                continue
            wrong.append(f"{path.name}: {name}")
    assert not wrong, wrong


def test_the_import_check_catches_what_it_must():
    """The walk above sees an unguarded optional import and a repository import."""
    source = "import orjson\nfrom mlops import params\ntry:\n    import orjson\nexcept ImportError:\n    pass"
    found = list(imports(ast.parse(source)))
    assert ("orjson", False, False) in found and ("orjson", False, True) in found
    assert ("mlops", False, False) in found


def test_the_archive_lays_out_every_module_at_its_import_path(tmp_path):
    staged = archive.stage_handler(tmp_path / "code")
    packed = {p.relative_to(staged).as_posix() for p in staged.rglob("*.py")}
    assert packed == {f"serve/handler/{p.name}" for p in PACKAGE.glob("*.py")} | {"mlops/config/values.py"}
    assert archive.HANDLER.parent == PACKAGE and (PACKAGE / archive.HANDLER.name).is_file()
