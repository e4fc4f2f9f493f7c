"""What merges is what was trained: after `dvc repro` on a PR, the branch must already hold its results.

`promote.yml` ships exactly what `dvc.lock` on main names, so a PR whose committed `dvc.lock` (or the
git-tracked outputs: metrics and plot data) differs from what the pipeline just produced must not merge
green. That happens when params, code or data changed and the lock was not committed (missing), or was
committed from an earlier state (stale), or when the outputs it names were never pushed, so CI had to
retrain. The check fails with the exact commands that fix the branch: download the run's `dvc-outputs`
artifact into the DVC cache and restore from it (PR jobs cannot write the DVC remote: docs/security.md).
It is deliberately a check and not a bot commit: it works the same for fork PRs, and needs no token that
can push (docs/review.md).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from mlops.errors import UserError

LOCK = Path("dvc.lock")
DVC_YAML = Path("dvc.yaml")
ARTIFACT = "dvc-outputs"  # the PR run's outputs and run-cache (mlops.outputs.pack)
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


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], text=True, capture_output=True)


def changed_paths(paths: list[str]) -> list[str]:
    """Those of `paths` whose working copy differs from HEAD (modified, added, deleted or untracked)."""
    proc = _git("status", "--porcelain=v1", "--untracked-files=all", "--", *paths)
    if proc.returncode:
        raise UserError(f"git status failed: {proc.stderr.strip()}")
    return sorted({line[3:].strip().strip('"') for line in proc.stdout.splitlines() if line.strip()})


def changed_stages() -> tuple[list[str], bool]:
    """(stages whose dvc.lock entry differs between HEAD and the working tree, HEAD has a dvc.lock)."""
    head = _git("show", f"HEAD:{LOCK}")
    before = (yaml.safe_load(head.stdout) or {}).get("stages", {}) if head.returncode == 0 else {}
    after = (yaml.safe_load(LOCK.read_text()) or {}).get("stages", {}) if LOCK.exists() else {}
    names = [*after, *(name for name in before if name not in after)]  # pipeline order, as dvc.lock has it
    return [name for name in names if before.get(name) != after.get(name)], head.returncode == 0


def download_command() -> str:
    """`gh run download` of this run's `dvc-outputs` artifact into the DVC cache (run id from Actions)."""
    run = os.environ.get("GITHUB_RUN_ID", "<run id>")
    repo = os.environ.get("GITHUB_REPOSITORY")
    where = f" --repo {repo}" if repo else ""
    return f"gh run download {run}{where} --name {ARTIFACT} --dir .dvc/cache"


def fix_commands(pushed: bool) -> list[str]:
    """What the PR author runs on the branch to commit what CI trained (or to train it themselves).

    PR jobs never write the DVC remote (docs/security.md): the run hands its outputs and run-cache over
    as the workflow artifact `dvc-outputs`, laid out as `.dvc/cache` is. `pushed` says it was uploaded."""
    if pushed:  # this run uploaded its outputs and run-cache: restoring them needs no retraining
        restore = [
            f"{download_command()}   # what this run trained",
            "dvc repro --pull       # restored from the run-cache: no retraining",
        ]
    else:  # the run uploaded nothing (it failed before): the author trains
        restore = [
            "dvc pull               # data and the outputs main has",
            "dvc repro              # runs the stages your change affects",
        ]
    return [
        "git pull",
        *restore,
        "git add dvc.lock " + " ".join(sorted({p.split("/")[0] for p in git_tracked_outputs()})),
        'git commit -m "dvc.lock and metrics of the trained pipeline"',
        "git push",
    ]


def message(paths: list[str], stages: list[str], had_lock: bool, pushed: bool) -> str:
    """The markdown section shown at the top of the PR comment and in the job summary."""
    why = (
        "the branch has no `dvc.lock`"
        if not had_lock
        else "the committed `dvc.lock` does not match the params, code and data of this PR"
        if stages
        else "the git-tracked outputs differ from what the pipeline produced"
    )
    lines = [
        f"## {TITLE}",
        "",
        f"`dvc repro` changed what the branch commits: {why}. On merge, promotion ships exactly what "
        "`dvc.lock` names, so this check fails until the branch holds the trained results.",
        "",
        f"**Changed by the run:** {', '.join(f'`{p}`' for p in paths)}"
        + (f" (stages: {', '.join(f'`{s}`' for s in stages)})" if stages else ""),
        "",
        "**To fix**, on your branch:",
        "",
        "```bash",
        *fix_commands(pushed),
        "```",
        "",
    ]
    return "\n".join(lines)


def check(report: Path | None = None, summary: Path | None = None, pushed: bool = False) -> int:
    """0 when the branch holds what `dvc repro` produced; else 1, with the fix prepended to `report`."""
    paths = changed_paths([str(LOCK), *git_tracked_outputs()])
    if not paths:
        print("lock-check: dvc.lock and the git-tracked outputs match what the pipeline produced")
        return 0
    stages, had_lock = changed_stages()
    text = message(paths, stages, had_lock, pushed)
    print(f"::error title=dvc.lock::{TITLE}: {', '.join(paths)} changed by dvc repro")
    print(text)
    if report and report.exists():
        report.write_text(f"{text}\n{report.read_text()}")
    if summary:
        with summary.open("a") as out:
            out.write(text + "\n")
    return 1
