"""CODEOWNERS covers every file whose code runs in a job that holds credentials.

The list is derived, never written down, so it stays true as files move:

1. Jobs holding credentials, in every workflow: an `environment:` (its secrets and its deployment
   approval), a `secrets.*` other than GITHUB_TOKEN (job, step or workflow level, `secrets: inherit`), or
   a token that can write: any `<scope>: write` or `write-all` in the job's `permissions` (the workflow's
   when the job sets none; none at all means the repository's default, which may be read-write). Every
   write scope counts, not just id-token, contents, packages and pull-requests: `statuses: write` forges a
   green check and `actions: write` re-runs workflows. Read-only remote credentials count too (they read
   private data).
2. What those jobs run: their `run:` scripts and those of local composite actions (`uses: ./...`), read
   for `mlops <command>`, `python -m <module>`, `python <file>`, `make <target>` (the Makefile's recipe),
   `dvc ...` (.dvc/config and dvc.yaml, and for `dvc repro` its stages' `cmd`s), `pip install` (pyproject.toml
   and every `-c`/`-r` file), `pytest` (tests/), `pre-commit` (its config's local hooks), an image build
   (Dockerfile, .dockerignore and the files it COPYs) and any tracked script run by path.
3. The Python they execute: `mlops <command>` imports mlops.cli, registers every command module (their
   module-level imports run) and runs the command's handler module; from there the closure over the
   project's import graph (ast; packages mlops, model, serve, monitoring; imports inside functions count,
   and so does a `.py` file named by a string literal, e.g. the TorchServe handler packed into the .mar).

Then every such file must be matched by a CODEOWNERS rule that names an owner, with GitHub's semantics
(docs.github.com, "About code owners"): gitignore-style patterns without `!`, `[ ]` or `\\#`; the LAST
matching line wins; a line with a pattern and no owners leaves its paths without an owner; paths are case
sensitive; the file GitHub reads is the first of .github/CODEOWNERS, CODEOWNERS, docs/CODEOWNERS.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mlops", "model", "serve", "monitoring")  # the project's own import roots
LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")  # GitHub's search order


# -- GitHub's CODEOWNERS matching ------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    pattern: str
    owners: tuple[str, ...]
    line: int
    regex: re.Pattern  # matches the path itself, or a path below a matched directory


def _translate(pattern: str) -> re.Pattern:
    """A CODEOWNERS pattern as a regex over a repository-relative path (or one of its directories).

    gitignore rules: a slash at the start or in the middle anchors the pattern at the root, otherwise it
    matches at any depth; a trailing slash matches directories only; `*` and `?` stop at `/`; `**/`,
    `/**/` and `/**` span directories. A match on a directory covers everything below it, except for a
    pattern whose last part is a bare `*` (GitHub: `docs/*` owns docs/a.md, not docs/build/b.md)."""
    dir_only = pattern.endswith("/")
    body = pattern.strip("/")
    anchored = "/" in pattern.rstrip("/")
    out, i = [], 0
    while i < len(body):
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body.startswith("/**", i) and i + 3 == len(body):
            out.append("/.*")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    suffix = "/.+" if dir_only else "(?:/.+)?"
    if body.split("/")[-1] == "*" and not dir_only:
        suffix = ""
    return re.compile(prefix + "".join(out) + suffix)


def parse_codeowners(text: str) -> list[Rule]:
    rules = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()  # an inline comment follows the owners
        if not line or line.startswith("#"):
            continue
        pattern, *owners = line.split()
        rules.append(Rule(pattern, tuple(owners), number, _translate(pattern)))
    return rules


def unsupported(rules: list[Rule]) -> list[str]:
    """Lines using gitignore syntax that CODEOWNERS does not support (GitHub skips such lines)."""
    bad = []
    for rule in rules:
        if rule.pattern.startswith(("!", "\\#")) or "[" in rule.pattern or "]" in rule.pattern:
            bad.append(f"line {rule.line}: {rule.pattern}: no !, [ ] or \\# in CODEOWNERS")
        bad += [
            f"line {rule.line}: {o}: not @user, @org/team or an email" for o in rule.owners if "@" not in o
        ]
    return bad


def rule_for(rules: list[Rule], path: str) -> Rule | None:
    """The rule that decides `path`'s owners: the last one that matches."""
    for rule in reversed(rules):
        if rule.regex.fullmatch(path):
            return rule
    return None


def owners(rules: list[Rule], path: str) -> tuple[str, ...]:
    rule = rule_for(rules, path)
    return rule.owners if rule else ()


# -- files the project tracks ------------------------------------------------------------------------------
@cache
def _index(root: Path) -> dict[str, str]:
    """{path: git file mode} of the tracked files that exist."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-s", "-z"], capture_output=True, check=True)
    entries = (line.split("\t", 1) for line in out.stdout.decode().split("\0") if "\t" in line)
    return {path: meta.split()[0] for meta, path in entries if (root / path).exists()}


def tracked(root: Path = ROOT) -> frozenset[str]:
    return frozenset(_index(root))


def executable(path: str, root: Path = ROOT) -> bool:
    return _index(root).get(path) == "100755"


# -- the import graph ------------------------------------------------------------------------------------
def module_file(name: str, root: Path = ROOT) -> str | None:
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(root).as_posix()
    return None


def _module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports(path: str, root: Path = ROOT) -> tuple[frozenset[str], frozenset[str]]:
    """(module-level, all) project files `path` imports or names as a .py string literal."""
    tree = ast.parse((root / path).read_text(), filename=path)
    package = _module_name(path) if path.endswith("__init__.py") else _module_name(path).rpartition(".")[0]
    top: set[str] = set()
    every: set[str] = set()

    def add(names: list[str], level_top: bool) -> None:
        for name in names:
            found = module_file(name, root)
            if found:
                every.add(found)
                if level_top:
                    top.add(found)

    def walk(node: ast.AST, at_top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = at_top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                add([a.name for a in child.names], at_top)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*parent, *([base] if base else [])])
                add([base, *(f"{base}.{a.name}" for a in child.names)], at_top)
            elif (
                isinstance(child, ast.Constant)
                and isinstance(child.value, str)
                and child.value.endswith(".py")
            ):
                for candidate in ((Path(path).parent / child.value).as_posix(), child.value):
                    if candidate in tracked(root):
                        every.add(candidate)
                        if at_top:
                            top.add(candidate)
            walk(child, inner)

    walk(tree, True)
    return frozenset(top), frozenset(every)


def packages_of(path: str, root: Path = ROOT) -> set[str]:
    """The __init__.py files Python runs before `path` (its packages)."""
    parts = Path(path).parts[:-1]
    found = set()
    for i in range(1, len(parts) + 1):
        init = Path(*parts[:i], "__init__.py").as_posix()
        if (root / init).is_file():
            found.add(init)
    return found


def closure(start: set[str], registration_only: set[str] = frozenset(), root: Path = ROOT) -> set[str]:
    """Every project file executed by importing `start` (all imports followed, function-level too) and
    `registration_only` (module-level imports only: mlops.cli imports every command module to register it)."""
    full: set[str] = set()
    shallow: set[str] = set()
    todo = [(p, False) for p in start] + [(p, True) for p in registration_only]
    while todo:
        path, top_only = todo.pop()
        if path in full or (top_only and path in shallow):
            continue
        (shallow if top_only else full).add(path)
        top, every = imports(path, root)
        todo += [(p, top_only) for p in top if top_only] + [(p, False) for p in every if not top_only]
        todo += [(p, False) for p in packages_of(path, root)]
    return full | shallow


# -- `mlops <command>`: which module handles it ----------------------------------------------------------
def _handler_modules(parser: argparse.ArgumentParser) -> set[str]:
    found = set()
    handler = parser._defaults.get("handler")
    if handler is not None:
        found.add(handler.__module__)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _handler_modules(sub)
    return found


@cache
def mlops_commands() -> dict[str, frozenset[str]]:
    from mlops import cli

    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: frozenset(_handler_modules(p)) for name, p in sub.choices.items()}


def mlops_files(command: str | None, root: Path = ROOT, entry: str = "mlops.cli") -> set[str]:
    """`mlops <command>` (the console script, mlops.cli:main) or `python -m mlops <command>` (entry)."""
    from mlops import cli

    registered = {module_file(m, root) for m in cli.COMMAND_MODULES} - {None}
    handlers = {module_file(m, root) for m in mlops_commands().get(command or "", ())} - {None}
    return closure({module_file(entry, root)} | handlers, registered, root)


# -- what a job runs ---------------------------------------------------------------------------------------
@dataclass
class Found:
    files: set[str]
    why: dict[str, list[str]]  # every job (and command) that runs the file

    def add(self, paths, why: str) -> None:
        for p in paths:
            self.files.add(p)
            if why not in self.why.setdefault(p, []):
                self.why[p].append(why)


def _segments(script: str) -> list[list[str]]:
    """Simple commands of a shell script, as words (best effort: quotes kept together)."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        line = re.sub(r"(?<!\S)#.*$", "", line)
        for part in re.split(r"&&|\|\||[;|()`]|(?<!\S)[{}](?!\S)|\bthen\b|\bdo\b|\belse\b", line):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            while words and (re.fullmatch(r"\w+=\S*", words[0]) or words[0] in ("if", "!", "exec", "time")):
                words = words[1:]
            if words:
                out.append(words)
    return out


def _dvc_stage_commands(root: Path) -> list[str]:
    stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {}
    cmds = []
    for stage in stages.values():
        cmd = stage.get("cmd") or []
        cmds += cmd if isinstance(cmd, list) else [cmd]
    return cmds


def _make_recipes(root: Path, target: str, seen: set[str]) -> list[str]:
    if target in seen or not (root / "Makefile").is_file():
        return []
    seen.add(target)
    lines = (root / "Makefile").read_text().splitlines()
    recipes: list[str] = []
    for i, line in enumerate(lines):
        m = re.match(r"^([^\s:#=][^:=]*):(?!=)([^#]*)", line)
        if not m or target not in m[1].split():
            continue
        for dep in m[2].replace("##", " ").split():
            recipes += _make_recipes(root, dep.replace("$(VENV)", ".venv"), seen)
        for recipe in lines[i + 1 :]:
            if not recipe.startswith("\t"):
                break
            recipes.append(recipe.strip().lstrip("@-"))
    return recipes


def script_files(script: str, root: Path, found: Found, why: str, depth: int = 0) -> None:
    files = tracked(root)
    for words in _segments(script):
        head, args = words[0], words[1:]
        cmd = head.rsplit("/", 1)[-1]
        entry, interpreted = "mlops.cli", False
        if cmd in ("python", "python3") and len(args) >= 2 and args[0] == "-m":
            module, args = args[1], args[2:]
            if module in ("mlops", "mlops.cli", "mlops.__main__"):
                cmd, entry = "mlops", "mlops.__main__" if module == "mlops" else module
            elif module in ("pytest", "pip"):
                cmd = module
            elif module_file(module, root):
                found.add(closure({module_file(module, root)}, root=root), f"{why}: python -m {module}")
                continue
        elif cmd in ("python", "python3", "bash", "sh", "source", ".") and args:
            head, interpreted = args[0], True
        path = head.removeprefix("./")
        if path in files and (interpreted or executable(path, root)):  # a script run by path
            found.add({path}, f"{why}: runs {path}")
            if path.endswith(".py"):
                found.add(closure({path}, root=root), f"{why}: python {path}")
            continue
        if cmd == "mlops":
            command = next((a for a in args if not a.startswith("-")), None)
            found.add(mlops_files(command, root, entry), f"{why}: mlops {command}")
        elif cmd == "dvc":
            found.add({p for p in (".dvc/config", ".dvcignore", "dvc.yaml", "dvc.lock") if p in files}, why)
            if args[:1] in (["repro"], ["exp"]) and depth < 3:
                for stage_cmd in _dvc_stage_commands(root):
                    script_files(stage_cmd, root, found, f"{why}: dvc.yaml stage `{stage_cmd}`", depth + 1)
        elif cmd == "make" and depth < 3:
            found.add({"Makefile"} & files, why)
            for target in [a for a in args if not a.startswith("-") and "=" not in a] or ["help"]:
                for recipe in _make_recipes(root, target, set()):
                    script_files(recipe, root, found, f"{why}: make {target}", depth + 1)
        elif cmd in ("pip", "pip3") and args[:1] == ["install"]:
            deps = {
                a
                for i, a in enumerate(args)
                if i and args[i - 1] in ("-c", "-r", "--constraint", "--requirement")
            }
            local = any(a == "." or a.startswith((".[", "./", "-e.")) for a in args)
            project = {"pyproject.toml", "setup.py", "setup.cfg"} if local else set()
            found.add((deps | project) & files, f"{why}: pip install")
        elif cmd == "pytest":
            found.add(
                {p for p in files if p.startswith("tests/")} | ({"pyproject.toml"} & files), f"{why}: pytest"
            )
            found.add(
                closure({p for p in files if p.startswith("tests/") and p.endswith(".py")}, root=root), why
            )
        elif cmd == "pre-commit" and (root / ".pre-commit-config.yaml").is_file() and depth < 3:
            found.add({".pre-commit-config.yaml"}, f"{why}: pre-commit")
            config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text()) or {}
            for repo in config.get("repos") or []:
                for hook in repo.get("hooks") or []:
                    if repo.get("repo") == "local" and hook.get("entry"):
                        script_files(
                            hook["entry"], root, found, f"{why}: pre-commit hook {hook['id']}", depth + 1
                        )
        elif "build" in args[:2] and (cmd in ("docker", "podman", "buildah") or "ENGINE" in words[0]):
            found.add({p for p in ("Dockerfile", ".dockerignore") if p in files}, f"{why}: image build")
            found.add(_copied(root), f"{why}: COPY in the Dockerfile")


def _copied(root: Path) -> set[str]:
    if not (root / "Dockerfile").is_file():
        return set()
    sources = set()
    for line in (root / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        words = line.split()
        if words[:1] in (["COPY"], ["ADD"]) and not any(w.startswith("--from") for w in words):
            sources |= {w for w in words[1:-1] if not w.startswith("--")}
    return {p for p in tracked(root) if any(p == s or p.startswith(s.rstrip("/") + "/") for s in sources)}


# -- jobs holding credentials --------------------------------------------------------------------------------
SECRET = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)|secrets\[\s*'([^']+)'\s*\]")


def credentials(workflow: dict, job: dict) -> list[str]:
    """Why `job` holds credentials (empty: it holds none)."""
    reasons = []
    if job.get("environment"):
        env = job["environment"]
        reasons.append(f"environment {env.get('name') if isinstance(env, dict) else env}")
    text = yaml.safe_dump({"job": job, "env": workflow.get("env") or {}})
    names = {a or b for a, b in SECRET.findall(text)} - {"GITHUB_TOKEN"}
    if names:
        reasons.append("secrets " + ", ".join(sorted(names)))
    if job.get("secrets") == "inherit":
        reasons.append("secrets: inherit")
    perms = job["permissions"] if "permissions" in job else workflow.get("permissions")
    if perms is None:
        reasons.append("the repository's default token permissions (may be read-write)")
    elif perms == "write-all" or (isinstance(perms, dict) and "write" in perms.values()):
        writes = "write-all" if isinstance(perms, str) else [k for k, v in perms.items() if v == "write"]
        reasons.append(f"permissions {writes}")
    return reasons


def _scripts(job: dict, root: Path) -> list[str]:
    scripts = []
    uses = job.get("uses", "")
    if uses.startswith("./") and (root / uses.split("@")[0]).is_file():  # a local reusable workflow
        called = yaml.safe_load((root / uses.split("@")[0]).read_text()) or {}
        for inner in (called.get("jobs") or {}).values():
            scripts += _scripts(inner, root)
    for step in job.get("steps") or []:
        if step.get("run"):
            scripts.append(step["run"])
        local = str(step.get("uses", ""))
        if local.startswith("./"):
            for name in ("action.yml", "action.yaml"):
                action = root / local / name
                if action.is_file():
                    runs = (yaml.safe_load(action.read_text()) or {}).get("runs") or {}
                    scripts += _scripts({"steps": runs.get("steps") or []}, root)
    return scripts


def credentialed_files(root: Path = ROOT) -> dict[str, list[str]]:
    """{file: [why]} for every tracked project file whose code runs in a job holding credentials."""
    found = Found(set(), {})
    for wf_path in sorted((root / ".github" / "workflows").glob("*.y*ml")):
        workflow = yaml.safe_load(wf_path.read_text()) or {}
        for name, job in (workflow.get("jobs") or {}).items():
            reasons = credentials(workflow, job)
            if not reasons:
                continue
            why = f"{wf_path.name} job {name} ({'; '.join(reasons)})"
            found.add({wf_path.relative_to(root).as_posix()}, why)
            for uses in [job.get("uses", "")] + [str(s.get("uses", "")) for s in job.get("steps") or []]:
                if uses.startswith("./"):  # a local action or reusable workflow: its files are code too
                    local = uses.split("@")[0].removeprefix("./").rstrip("/")
                    found.add({p for p in tracked(root) if p == local or p.startswith(local + "/")}, why)
            for script in _scripts(job, root):
                script_files(script, root, found, why)
    return {p: found.why[p] for p in sorted(found.files) if p in tracked(root)}


def uncovered(codeowners_text: str, root: Path = ROOT) -> dict[str, list[str]]:
    """{file: why it needs an owner} for the credentialed files no CODEOWNERS rule gives an owner."""
    rules = parse_codeowners(codeowners_text)
    return {p: why for p, why in credentialed_files(root).items() if not owners(rules, p)}


def codeowners_path(root: Path = ROOT) -> Path:
    for name in LOCATIONS:
        if (root / name).is_file():
            return root / name
    pytest.fail("no CODEOWNERS file in .github/, the root or docs/")


# -- tests -------------------------------------------------------------------------------------------------
GITHUB_EXAMPLE = """\
# GitHub's documented examples (About code owners)
*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
/build/logs/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
"""


@pytest.mark.parametrize(
    "path, expected",
    [
        ("README.md", ("@global-owner1", "@global-owner2")),  # * everywhere
        ("src/deep/app.js", ("@js-owner",)),  # a later match wins; inline comment dropped
        ("main.go", ("docs@example.com",)),
        ("build/x/y.txt", ("@global-owner1", "@global-owner2")),
        ("build/logs/x/y.txt", ("@octocat",)),  # /build/logs/ matches, and so does the later **/logs
        ("src/build/logs/y.txt", ("@octocat",)),  # /build/logs/ is anchored at the root; **/logs is not
        ("docs/getting-started.md", ("@doctocat",)),  # /docs/ (a later line) wins over docs/*
        ("web/docs/getting-started.md", ("@global-owner1", "@global-owner2")),  # docs/* is anchored
        ("web/apps/x.py", ("@octocat",)),  # apps/ at any depth
        ("scripts/run.sh", ("@doctocat", "@octocat")),
        ("deeply/nested/logs/a.txt", ("@octocat",)),  # **/logs
        ("apps/main.py", ("@octocat",)),
        ("apps/github/main.py", ()),  # a rule without owners: nobody owns it
        ("Apps/main.py", ("@global-owner1", "@global-owner2")),  # case sensitive
    ],
)
def test_matcher_follows_githubs_documented_examples(path, expected):
    assert owners(parse_codeowners(GITHUB_EXAMPLE), path) == expected


def test_matcher_star_patterns_do_not_cross_directories():
    rules = parse_codeowners("* @all\n/docs/* @docs\n/model/*.py @py\n/mlops/** @deep\n/a/**/z.py @az\n")
    assert owners(rules, "docs/a.md") == ("@docs",)
    assert owners(rules, "docs/build/b.md") == ("@all",)  # docs/* stops at one level
    assert owners(rules, "model/registry.py") == ("@py",)
    assert owners(rules, "model/sub/x.py") == ("@all",)
    assert owners(rules, "mlops/cli/deploy.py") == ("@deep",)
    assert owners(rules, "a/z.py") == owners(rules, "a/b/c/z.py") == ("@az",)
    # a directory, no slash
    assert owners(parse_codeowners("/mlops @x\n"), "mlops/cli/__init__.py") == ("@x",)
    assert owners(parse_codeowners("/serve/ @x\n"), "serve") == ()  # trailing slash: directories only


def test_the_codeowners_file_uses_only_syntax_github_supports():
    rules = parse_codeowners(codeowners_path().read_text())
    assert rules and unsupported(rules) == []
    assert unsupported(parse_codeowners("!/x @a\n/y[ab] @a\n/z team\n")) == [
        "line 1: !/x: no !, [ ] or \\# in CODEOWNERS",
        "line 2: /y[ab]: no !, [ ] or \\# in CODEOWNERS",
        "line 3: team: not @user, @org/team or an email",
    ]


def test_the_derivation_finds_what_the_release_and_drift_jobs_run():
    """Sanity of the derivation on today's workflows: the files the outside review listed, found by
    reading the workflows and the import graph (not by listing them)."""
    files = credentialed_files()
    for path in (
        "mlops/cli/__init__.py",
        "mlops/cli/release.py",
        "mlops/cli/deploy.py",
        "mlops/report/gates.py",
        "mlops/config/tracking.py",
        "mlops/release/registry.py",
        "mlops/release/delivery.py",
        "serve/handler/entry.py",  # packed into the .mar by `mlops archive` (a string literal)
        "serve/handler/service.py",  # and what it imports
        "pyproject.toml",
        "constraints.txt",
        ".dvc/config",
        "dvc.yaml",
        ".github/workflows/promote.yml",
        ".github/actions/setup/action.yml",
    ):
        assert path in files, path
    assert any(p.startswith("monitoring/") for p in files)  # drift.yml runs mlops drift with secrets
    assert not any(p.startswith("benchmarks/") for p in files)  # no credentialed job runs them


def test_every_file_run_with_credentials_has_a_code_owner():
    missing = uncovered(codeowners_path().read_text())
    assert not missing, "CODEOWNERS gives no owner to:\n" + "\n".join(
        f"  {p}  <- {why[0]}" + (f" (and {len(why) - 1} more)" if len(why) > 1 else "")
        for p, why in missing.items()
    )


def test_the_check_reports_a_file_a_rule_no_longer_covers(tmp_path):
    """A CODEOWNERS copy missing one rule, and one whose later owner-less line un-owns a file."""
    text = codeowners_path().read_text()
    rules = parse_codeowners(text)
    rule = rule_for(rules, "mlops/cli/__init__.py")
    assert rule is not None and rule.owners
    lines = text.splitlines()
    without = "\n".join(line for i, line in enumerate(lines, start=1) if i != rule.line) + "\n"
    (tmp_path / "CODEOWNERS").write_text(without)
    missing = uncovered((tmp_path / "CODEOWNERS").read_text())
    assert "mlops/cli/__init__.py" in missing
    assert any(
        why.startswith("promote.yml job release (environment registry")
        for why in missing["mlops/cli/__init__.py"]
    )
    unowned = uncovered(text + "\n/mlops/report/gates.py\n")
    assert list(unowned) == ["mlops/report/gates.py"]


def test_a_new_credentialed_job_extends_the_list(tmp_path):
    """The list follows the workflows: a job with a write token that runs a script makes it need an owner."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "publish.sh").write_text("echo hi\n")
    (tmp_path / "tools" / "lint.sh").write_text("echo hi\n")
    wf = {
        "on": "push",
        "permissions": {"contents": "read"},
        "jobs": {
            "publish": {"permissions": {"statuses": "write"}, "steps": [{"run": "./tools/publish.sh --x"}]},
            "lint": {"steps": [{"run": "bash tools/lint.sh"}]},
            "notes": {"environment": "docs", "steps": [{"run": "echo see (tools/lint.sh)"}]},
        },
    }
    (tmp_path / ".github" / "workflows" / "x.yml").write_text(yaml.safe_dump(wf))
    (tmp_path / "tools" / "publish.sh").chmod(0o755)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    found = credentialed_files(tmp_path)
    assert "tools/publish.sh" in found and "permissions ['statuses']" in found["tools/publish.sh"][0]
    assert "tools/lint.sh" not in found  # read-only token, no secrets, no environment
