"""Push to comment for a `train.lr` PR under act on this machine: pr.yml before and after, side by side.

Method
------
1. "main": a fresh git repo of this working tree after `mlops data`, `dvc repro` and a commit, as a
   fork has it on day one: the bundled data, no DVC remote, no Actions cache, no secrets.
2. Two PRs, each a fresh clone of main that halves `train.lr` (so CI retrains), each with a new
   Actions state. BEFORE replaces the clone's pr.yml with the one of commit a8cd563
   (`git show a8cd563:.github/workflows/pr.yml`: lint -> test -> train -> comment), committed on the
   PR branch; AFTER keeps the current one (lint, test and train side by side; the comment needs train
   only).
3. Each runs the whole workflow under act with the tests/template/github harness (API test server, stand-in
   actions, the real CML). "Push to comment" is from the start of act (the push) until the PR comment
   appears on the test server (polled every 0.2 s). Each job's wall time is from its first to its last
   log line.
4. The test job: BEFORE ran the whole suite on GitHub (411 tests, 15 min 38 s in the last CI run); here
   both variants run the new selection, `pytest -m "not slow and not template"` (or `--tests FILE`),
   never the whole suite under act. BEFORE's test job sits on the path to the comment, so its estimate
   on GitHub is: measured push-to-comment - measured test job + 938 s. AFTER's test job is off that path.
5. act runs parallel jobs on this one machine, so AFTER's lint and test compete with train for the same
   cores; on GitHub each job has its own 2-core runner. AFTER's numbers here are therefore pessimistic.

Run: `python tests/template/github/bench_pr_job.py [--only before|after] [--tests FILE]`. Numbers vary
with machine load (printed); run it on an idle box.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests.repo import copy_project, sh  # noqa: E402
from tests.standins.github_api import FakeGitHub, make_certificate  # noqa: E402
from tests.template.github.act import Act, pr_checkout, pull_request_event  # noqa: E402

BEFORE = "a8cd563"
FULL_SUITE_ON_GITHUB_S = 15 * 60 + 38  # 411 tests, the last CI run of the old test job


def step_times(output: str, job: str) -> list[tuple[str, str]]:
    step = rf"^\[[^/\]]+/{job}\]\s+✅\s+Success - Main (.+?) \[((?:\d+m)?[\d.]+m?s)\]$"
    found = re.findall(step, output, re.M)
    return [(name[:70], took) for name, took in found if not name.startswith(("actions/setup-python", '"'))]


def run_variant(work: Path, main: Path, github, name: str, workflow: str | None, tests: str) -> dict:
    """One PR that halves train.lr, run through pr.yml (the given text, else the current one)."""
    repo = pr_checkout(main, work / name, work / "no-remote", branch=name)
    (repo / ".dvc" / "config.local").unlink()  # no DVC remote: a fresh fork
    params = repo / "params.yaml"
    text = params.read_text()
    lr = re.search(r"^\s+lr:\s*([0-9.e-]+)", text, re.M)
    params.write_text(text.replace(lr[0], lr[0].replace(lr[1], repr(float(lr[1]) / 2)), 1))
    sh(["git", "commit", "-q", "-am", "halve the learning rate"], repo)
    if workflow is not None:  # committed, as a fork still on the old workflow has it
        (repo / ".github/workflows/pr.yml").write_text(workflow)
        sh(["git", "commit", "-q", "-am", "pr.yml of " + BEFORE], repo)
    number = 1 if name == "before" else 2
    event = pull_request_event(repo, number=number)
    github.add_pull("acme/model", name, head_sha=event["pull_request"]["head"]["sha"], number=number)
    act = Act(work / f"{name}-act", github)
    variables = {"CML_PUBLISH_URL": f"{github.url}/assets"}
    if tests:
        variables["PYTEST_ADDOPTS"] = tests
    if workflow is not None:  # the old job ran `pytest` + PYTEST_ADDOPTS: give it the new selection
        variables["PYTEST_ADDOPTS"] = f'-m "not slow and not template" {tests}'.strip()
    found: dict = {}
    start = time.monotonic()

    def watch() -> None:
        while "comment" not in found and "done" not in found:
            if github.comments("acme/model", number):
                found["comment"] = time.monotonic() - start
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = act.run(repo, "pull_request", event, workflow="pr.yml", variables=variables, timeout=3600)
    found["done"] = time.monotonic() - start
    watcher.join()
    result.job_seconds = {job.strip(): s for job, s in result.job_seconds.items()}  # act pads job ids
    found.update(result=result, load=os.getloadavg())
    return found


def report(name: str, found: dict) -> None:
    result = found["result"]
    comment = found.get("comment")
    print(f"\n{name}: act exited {result.returncode}; jobs {result.jobs()}")
    print(f"  push to comment: {comment:.0f} s" if comment else "  push to comment: no comment posted")
    print(f"  push to end of run: {found['done']:.0f} s; load average at the end: {found['load'][0]:.1f}")
    for job, seconds in sorted(result.job_seconds.items(), key=lambda kv: kv[1], reverse=True):
        print(f"  job {job:<10} {seconds:6.0f} s")
    for step, took in step_times(result.output, "train"):
        print(f"    {took:>10}  train: {step}")
    for job, state in result.jobs().items():
        if state == "failed":  # what went wrong, so a failed measurement is not mistaken for a slow one
            lines = [line for line in result.output.splitlines() if re.match(rf"\[[^/\]]+/{job}\s*\]", line)]
            print(f"  --- the last lines of the failed job {job}:", *lines[-25:], sep="\n  ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("before", "after"), help="run one variant")
    parser.add_argument("--tests", default="", help="narrow the test job further, e.g. a file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (act logs) and print it")
    args = parser.parse_args()
    old = subprocess.run(
        ["git", "show", f"{BEFORE}:.github/workflows/pr.yml"],
        cwd=ROOT,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    keep = tempfile.mkdtemp(prefix="pr-job-bench-") if args.keep else None
    with contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="pr-job-bench-") as tmp:
        work = Path(tmp)
        print(f"work folder: {work}")
        main_repo = copy_project(work / "main", work / "no-remote")
        for cmd in (["mlops", "data", "--no-push"], ["dvc", "repro"]):
            sh(cmd, main_repo)
        sh(["git", "add", "-A"], main_repo)
        sh(["git", "commit", "-q", "--allow-empty", "-m", "train"], main_repo)
        found = {}
        with FakeGitHub(*make_certificate(work / "tls")) as github:
            for name, workflow in (("before", old), ("after", None)):
                if args.only in (None, name):
                    found[name] = run_variant(work, main_repo, github, name, workflow, args.tests)
                    report(name, found[name])
    print("\nsummary (seconds)")
    if "before" in found and found["before"].get("comment"):
        before = found["before"]
        test = before["result"].job_seconds.get("test", 0.0)
        estimate = before["comment"] - test + FULL_SUITE_ON_GITHUB_S
        print(f"  before: push to comment {before['comment']:.0f} measured (test job {test:.0f} of it);")
        print(f"          with the whole suite on GitHub (938 s) in place of that test job: {estimate:.0f}")
    if "after" in found and found["after"].get("comment"):
        after = found["after"]
        print(f"  after:  push to comment {after['comment']:.0f} measured (target <= 300 on a 2-core runner)")
        print(f"          test job {after['result'].job_seconds.get('test', 0.0):.0f} (gates the check only)")


if __name__ == "__main__":
    main()
