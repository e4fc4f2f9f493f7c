"""Wall time of pr.yml's `train` job (train and report) on this machine, retraining vs run-cache hit.

Method
------
1. "main": a fresh git repo of this working tree, after `mlops data`, `dvc repro` and
   `dvc push --run-cache` to a temporary local DVC remote (what merged PRs leave behind).
2. Two PRs, each a fresh clone of main: one changes `train.lr` (retrains), one changes only README.md
   (every stage is restored from the run-cache). Each runs pr.yml up to the `train` job under act, with
   the tests/github harness (API test server, stand-in actions), the remote given as DVC_REMOTE_URL.
   act would also run the jobs `train` needs (lint, test); the clone's pr.yml drops that `needs` line
   (uncommitted), so only the measured job runs and its steps are exactly pr.yml's.
3. The job's wall time is from its first to its last log line, as act streams them; the steps' own
   durations come from act's log.
4. Python: the setup-python stand-in reuses this venv's installed packages, so the job's "Install the
   project" step only installs the project itself. A real runner with a warm pip cache also unpacks the
   wheels; `--fresh-install` measures that too: a new venv, `pip install -e .[train]` from the warm cache.

Run: `python benchmarks/pr_job.py [--fresh-install]`. Numbers vary with machine load; run it on an idle box.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.github.act import Act, pr_checkout, pull_request_event  # noqa: E402
from tests.github.server import FakeGitHub, make_certificate  # noqa: E402
from tests.repo import copy_project, sh  # noqa: E402


def step_times(output: str, job: str) -> list[tuple[str, str]]:
    found = re.findall(rf"^\[[^/\]]+/{job}\]\s+✅\s+Success - Main (.+?) \[([\d.]+m?s)\]$", output, re.M)
    return [(name[:70], took) for name, took in found if not name.startswith(("actions/setup-python", '"'))]


def run_pr(work: Path, main: Path, remote: Path, github, name: str, edit) -> float:
    repo = pr_checkout(main, work / name, remote, branch=name)
    edit(repo)
    sh(["git", "commit", "-q", "-am", name], repo)
    workflow = repo / ".github/workflows/pr.yml"
    workflow.write_text(workflow.read_text().replace("    needs: test\n", "", 1))
    event = pull_request_event(repo, number=1)
    github.add_pull("acme/model", name, head_sha=event["pull_request"]["head"]["sha"], number=1)
    result = Act(work / f"{name}-act", github).run(
        repo,
        "pull_request",
        event,
        workflow="pr.yml",
        job="train",
        variables={"DVC_REMOTE_URL": str(remote)},
    )
    if result.returncode != 0:
        raise SystemExit(f"{name}: act failed\n{result!r}")
    seconds = result.job_seconds["train"]
    hit = "Running stage 'train'" not in result.output
    print(f"\n{name}: train job {seconds:.1f} s ({'run-cache hit' if hit else 'retrained'})")
    for step, took in step_times(result.output, "train"):
        print(f"  {took:>14}  {step}")
    return seconds


def fresh_install(work: Path) -> float:
    venv = work / "fresh-venv"
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin/pip", "install", "-q", "-c", "constraints.txt", "-e", ".[train]"], cwd=ROOT, check=True
    )
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh-install", action="store_true", help="also time a fresh venv install")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pr-job-bench-") as tmp:
        work = Path(tmp)
        remote = work / "dvc-remote"
        main_repo = copy_project(work / "main", remote)
        for cmd in (["mlops", "data"], ["dvc", "repro"], ["dvc", "push", "--run-cache"]):
            sh(cmd, main_repo)
        sh(["git", "add", "-A"], main_repo)
        sh(["git", "commit", "-q", "-m", "train"], main_repo)
        with FakeGitHub(*make_certificate(work / "tls")) as github:

            def lower_lr(repo: Path) -> None:
                params = repo / "params.yaml"
                params.write_text(params.read_text().replace("lr: 0.003", "lr: 0.002", 1))

            def readme(repo: Path) -> None:
                path = repo / "README.md"
                path.write_text((path.read_text() if path.exists() else "") + "\nwording\n")
                sh(["git", "add", "README.md"], repo)

            retrain = run_pr(work, main_repo, remote, github, "retrain", lower_lr)
            hit = run_pr(work, main_repo, remote, github, "readme-only", readme)
        print(
            f"\ntrain job: retrain {retrain:.1f} s (target <= 60 s), "
            f"run-cache hit {hit:.1f} s (target <= 15 s)"
        )
        if args.fresh_install:
            print(
                f"fresh venv `pip install -e .[train]` from the warm pip cache: {fresh_install(work):.1f} s"
            )


if __name__ == "__main__":
    main()
