"""What merges is what was trained: CI reproduces what a PR changed, and the branch must hold the result.

`promote.yml` ships exactly what `dvc.lock` on main names. Each stage of a PR is judged against the base
branch's `dvc.lock` (`classify`):

- unchanged from base: its committed lock entry equals the base's, and its command, deps and params
  still match that entry. CI need not reproduce it; where its outputs are nowhere to be had (a fresh
  fork: no DVC remote, no cache) CI does not retrain it, and the report uses the committed `eval/`.
  A docs-only PR therefore passes with nothing to run.
- every other stage is reproduced by the run (restored from the cache or remote, else retrained), and
  the lock entry it produces must equal the committed one (`check`).

When they differ (params changed and the lock was not committed; a lock committed from another machine,
whose CPU trains other last bits; a hand-edited lock), the fix is one command: `mlops adopt RUN_ID`
takes the run's `dvc-outputs` artifact, verified, and commits its dvc.lock and git-tracked outputs. CI
is the source of truth for trained bytes. PR jobs never write the DVC remote (docs/security.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlops.config.errors import UserError
from mlops.config.git import git

LOCK = Path("dvc.lock")
DVC_YAML = Path("dvc.yaml")
ARTIFACT = "dvc-outputs"  # the PR run's outputs, run-cache and branch files (mlops.release.outputs.pack)
TITLE = "❌ Not mergeable yet: the branch does not hold what this run trained"


def git_tracked_outputs(dvc_yaml: Path = DVC_YAML) -> list[str]:
    """Outputs that live in git rather than the DVC cache (`cache: false`): metrics, plot data."""
    found: list[str] = []
    for stage in (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}).values():
        for kind in ("outs", "metrics", "plots"):
            for item in stage.get(kind, []) or []:
                if isinstance(item, dict):
                    found += [path for path, opts in item.items() if (opts or {}).get("cache") is False]
    return found


def lock_stages(ref: str | None) -> dict | None:
    """The `stages` of dvc.lock at git `ref` (None: the working tree); None when there is no dvc.lock."""
    if ref is None:
        return (yaml.safe_load(LOCK.read_text()) or {}).get("stages", {}) if LOCK.exists() else None
    shown = git("show", f"{ref}:{LOCK.as_posix()}", check=False)
    return (yaml.safe_load(shown) or {}).get("stages", {}) if shown is not None else None


def changed_paths(paths: list[str]) -> list[str]:
    """Those of `paths` whose working copy differs from HEAD (modified, added, deleted or untracked)."""
    out = git("status", "--porcelain=v1", "--untracked-files=all", "--", *paths)
    return sorted({line[3:].strip().strip('"') for line in out.splitlines() if line.strip()})


def changed_stages() -> tuple[list[str], bool]:
    """(stages whose dvc.lock entry differs between HEAD and the working tree, HEAD has a dvc.lock)."""
    head = lock_stages("HEAD")
    before, after = head or {}, lock_stages(None) or {}
    names = [*after, *(name for name in before if name not in after)]  # pipeline order, as dvc.lock has it
    return [name for name in names if before.get(name) != after.get(name)], head is not None


# -- which stages a PR changed, against the base branch's dvc.lock --------------------------------------


@dataclass
class Plan:
    base: str
    unchanged: list[str] = field(default_factory=list)  # as on base: not reproduced
    reproduce: dict[str, str] = field(default_factory=dict)  # stage -> why it is reproduced


def _inside(path: str, out: str) -> bool:
    return path == out or path.startswith(out.rstrip("/") + "/")


def _leaves(old, new, key: str) -> list[str]:
    """The dotted keys under `key` whose values differ (`train.lr`, not just `train`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [leaf for k in {*old, *new} for leaf in _leaves(old.get(k), new.get(k), f"{key}.{k}")]
    return [key] if old != new else []


def _changed_params(dep) -> list[str]:
    status = {k for found in dep.workspace_status().values() for k in found}
    if not status:
        return []
    recorded, actual = dep.hash_info.value or {}, dep.read_params()
    return sorted({leaf for k in status for leaf in _leaves(recorded.get(k), actual.get(k), k)} or status)


def _missing_git_outputs(stage) -> list[str]:
    """Outputs of `stage` kept in git, not in a cache (metrics, plot data), absent from the working tree:
    no cache or remote can restore them, so only a run can make them."""
    return [out.def_path for out in stage.outs if not out.use_cache and not Path(out.def_path).exists()]


def classify(base: str) -> Plan:
    """Split the pipeline's stages into unchanged-from-`base` and reproduced (with the reason).

    A stage is unchanged when its committed dvc.lock entry (HEAD, and the working tree agrees) equals
    `base`'s and its command, dependencies and params still match that entry. A dependency produced by
    another stage matches when that stage is unchanged: its outputs are then the ones the entry names,
    even where they are not on this machine, so nothing is hashed that a fresh fork does not have."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    if git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False) is None:
        raise UserError(f"{base} is not a commit in this clone: fetch it (actions/checkout: fetch-depth: 0)")
    base_lock, head_lock, work_lock = lock_stages(base), lock_stages("HEAD"), lock_stages(None)
    plan = Plan(base)
    with Repo(".") as repo:
        stages = {stage.name: stage for stage in repo.index.stages if getattr(stage, "cmd", None)}
        producer = [(out.def_path, stage.name) for stage in stages.values() for out in stage.outs]
        reasons: dict[str, str | None] = {}

        def why(name: str) -> str | None:
            if name in reasons:
                return reasons[name]
            stage, entry = stages[name], (head_lock or {}).get(name)
            reason = None
            if base_lock is None:
                reason = f"{base} has no dvc.lock"
            elif entry is None:
                reason = "the branch commits no dvc.lock entry for it"
            elif base_lock.get(name) != entry:
                reason = f"its dvc.lock entry differs from {base}'s"
            elif (work_lock or {}).get(name) != entry:
                reason = "its dvc.lock entry in the working tree is not the committed one"
            elif stage.changed_stage():
                reason = "its command changed"
            elif {o.def_path for o in stage.outs} != {o["path"] for o in entry.get("outs", [])}:
                reason = "its outputs in dvc.yaml are not the ones dvc.lock records"
            elif {d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)} != {
                d["path"] for d in entry.get("deps", [])
            }:
                reason = "its dependencies in dvc.yaml are not the ones dvc.lock records"
            elif missing := _missing_git_outputs(stage):
                reason = f"the branch does not commit its output {missing[0]}"
            else:
                for dep in stage.deps:
                    if isinstance(dep, ParamsDependency):
                        changed = _changed_params(dep)
                        if changed:
                            reason = f"params changed: {', '.join(sorted(changed))}"
                            break
                        continue
                    upstream = [n for out, n in producer if n != name and _inside(dep.def_path, out)]
                    if upstream:
                        redone = [n for n in upstream if why(n)]
                        if redone:
                            reason = f"it depends on stage '{redone[0]}', which is reproduced"
                            break
                        continue
                    status = dep.workspace_status()
                    if status:
                        reason = f"{dep.def_path} is {next(iter(status.values()))}"
                        break
            reasons[name] = reason
            return reason

        for name in stages:
            if why(name) is None:
                plan.unchanged.append(name)
            else:
                plan.reproduce[name] = str(reasons[name])
    return plan


def _dvc(*args: str, quiet: bool = False) -> subprocess.CompletedProcess:
    """This interpreter's DVC: works without an activated venv."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], text=True, capture_output=quiet)


def repro(base: str, pull: bool = False) -> int:
    """`dvc repro` of the stages a PR changed against `base`; the unchanged ones are not reproduced.

    Their outputs are restored when the cache (or, with `pull`, the remote) has them, so the report can
    read them; on a fresh fork they are not, and nothing retrains for that."""
    plan = classify(base)
    for name in plan.unchanged:
        print(f"Stage '{name}' is unchanged from {base}: not reproduced")
    for name, reason in plan.reproduce.items():
        print(f"Stage '{name}' is reproduced: {reason}")
    if plan.unchanged:
        restored = _dvc("pull" if pull else "checkout", *plan.unchanged, quiet=True).returncode == 0
        print(
            "Outputs of the unchanged stages: "
            + ("restored" if restored else "not all in the cache (the report uses the committed eval/)"),
            flush=True,
        )
    if not plan.reproduce:
        print(f"Every stage is unchanged from {base}: nothing to reproduce")
        return 0
    argv = ["repro", *(["--pull"] if pull else []), *plan.reproduce]
    print(f"$ dvc {' '.join(argv)}", flush=True)
    code = _dvc(*argv).returncode
    for name in [] if code else _still_missing(list(plan.reproduce)):
        # DVC can call a stage up to date although its git-tracked outputs are gone (its run-cache entry
        # matched): only running it makes them
        argv = ["repro", "--force", "--single-item", name]
        print(f"Stage '{name}': its git-tracked outputs are missing\n$ dvc {' '.join(argv)}", flush=True)
        code = _dvc(*argv).returncode
        if code:
            break
    return code


def _still_missing(names: list[str]) -> list[str]:
    """Those of the stages `names` whose git-tracked outputs are absent from the working tree."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        stages = {stage.name: stage for stage in repo.index.stages if getattr(stage, "cmd", None)}
    return [name for name in names if name in stages and _missing_git_outputs(stages[name])]


# -- the check, and the one fix ----------------------------------------------------------------------


def _event() -> dict:
    path = os.environ.get("GITHUB_EVENT_PATH")
    try:
        return json.loads(Path(path).read_text()) if path else {}
    except (OSError, ValueError):
        return {}


def fix_command() -> str:
    """The one command that puts what this run trained on the branch (run id from Actions)."""
    repo = os.environ.get("GITHUB_REPOSITORY")
    return f"mlops adopt {os.environ.get('GITHUB_RUN_ID', '<run id>')}" + (f" --repo {repo}" if repo else "")


def _pr_number() -> str:
    number = (_event().get("pull_request") or {}).get("number")
    if number:
        return str(number)
    found = re.fullmatch(r"refs/pull/(\d+)/merge", os.environ.get("GITHUB_REF", ""))
    return found[1] if found else "<PR number>"


def _is_fork() -> bool:
    head = ((_event().get("pull_request") or {}).get("head") or {}).get("repo") or {}
    return bool(head.get("full_name")) and head["full_name"] != os.environ.get("GITHUB_REPOSITORY")


def message(
    paths: list[str], stages: list[str], had_lock: bool, pushed: bool, plan: Plan | None = None
) -> str:
    """The markdown section shown at the top of the PR comment and in the job summary."""
    why = (
        "the branch has no `dvc.lock`"
        if not had_lock
        else "the committed `dvc.lock` is not what the params, code and data of this PR produce"
        if stages
        else "the git-tracked outputs differ from what the pipeline produced"
    )
    lines = [
        f"## {TITLE}",
        "",
        f"This run changed what the branch commits: {why}. On merge, promotion ships exactly what "
        "`dvc.lock` names, so this check fails until the branch holds what this run produced.",
        "",
        f"**Changed by the run:** {', '.join(f'`{p}`' for p in paths)}"
        + (f" (stages: {', '.join(f'`{s}`' for s in stages)})" if stages else ""),
    ]
    if plan is not None:
        if plan.unchanged:
            kept = ", ".join(f"`{s}`" for s in plan.unchanged)
            lines.append(f"**Unchanged from `{plan.base}`, not reproduced:** {kept}")
        lines += [f"*   `{name}` reproduced: {reason}" for name, reason in plan.reproduce.items()]
    lines += ["", "**To fix**, in a checkout of this PR's head commit (venv active):", "", "```bash"]
    lines += [fix_command(), "```", ""]
    if not pushed:
        lines += [
            f"> This run uploaded no `{ARTIFACT}` artifact, so there is nothing to adopt yet: re-run the "
            "failed job, then run the command above.",
            "",
        ]
    lines += [
        f"It downloads this run's `{ARTIFACT}` artifact, checks that it was made for your HEAD commit, puts "
        "its `dvc.lock`, metrics and trained model in place (no retraining), then commits and pushes them. "
        "CI is the source of truth for trained bytes: a model trained on another CPU can differ in its "
        "last bits, so adopt CI's instead of committing your own (docs/report.md).",
        "",
        "*   With a lock bot configured for this repository (docs/report.md), CI commits this itself: "
        "nothing to run.",
        f"*   {'This is a fork PR: a' if _is_fork() else 'For a fork PR, a'} maintainer can run "
        f"`gh pr checkout {_pr_number()} && {fix_command()}` (the PR must allow edits by maintainers).",
        "",
    ]
    return "\n".join(lines)


def _github_output(lock: str) -> None:
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        with open(out, "a") as f:
            f.write(f"lock={lock}\n")


def check(
    report: Path | None = None, summary: Path | None = None, pushed: bool = False, base: str | None = None
) -> int:
    """0 when the branch holds what the run produced; else 1, with the fix prepended to `report`.

    With `base`, the message also names the stages left as on base, which the run did not reproduce
    (their lock entries are untouched, so they pass by construction)."""
    stages, had_lock = changed_stages()
    paths = changed_paths([str(LOCK), *git_tracked_outputs()])
    if had_lock and not stages and str(LOCK) in paths:
        paths.remove(str(LOCK))  # the same entries, written out again: nothing to commit
    if not paths:
        print("lock-check: dvc.lock and the git-tracked outputs match what the pipeline produced")
        _github_output("ok")
        return 0
    plan = None
    if base:
        base_lock, head_lock = lock_stages(base) or {}, lock_stages("HEAD") or {}
        plan = Plan(
            base, unchanged=[s for s in head_lock if s not in stages and head_lock[s] == base_lock.get(s)]
        )
    text = message(paths, stages, had_lock, pushed, plan)
    print(f"::error title=dvc.lock::{TITLE}: {', '.join(paths)} changed by the run; fix: {fix_command()}")
    print(text)
    _github_output("stale")
    if report and report.exists():
        report.write_text(f"{text}\n{report.read_text()}")
    if summary:
        with summary.open("a") as out:
            out.write(text + "\n")
    return 1
