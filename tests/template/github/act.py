"""Run a workflow of a test repository with act, on the host, offline, against the GitHub API test server.

Every marketplace action a workflow uses (`uses: owner/name@ref`) is mapped with `--local-repository` to
the stand-in at tests/template/github/actions/<owner>/<name>/, whatever the ref: adding a stand-in
directory is all a new workflow needs. `actions/checkout` of the same repository is handled by act
itself (it copies the working tree, .git included). Every job runs with the PATH of GitHub's runner
(runner.py): a tool this machine has and the runner lacks is missing there too, unless the job installs
it. See README.md in this folder for the API.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.standins.cml import real_cml
from tests.template.github.runner import make_runner_path

HERE = Path(__file__).resolve().parent
STANDINS = HERE / "actions"
ACT = Path(sys.executable).parent / "act"
ACT_HANDLED = {"actions/checkout"}  # act skips the checkout of the repository under test
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*['\"]?([\w.-]+/[\w.-]+)(?:/[^@\s'\"]*)?@([^\s'\"#]+)", re.M)


def used_actions(repo: Path, workflow: str = "*.y*ml") -> set[tuple[str, str]]:
    """(owner/name, ref) of every remote action in the workflow(s) and the local composite actions."""
    files = sorted((repo / ".github" / "workflows").glob(workflow))
    actions = repo / ".github" / "actions"
    files += sorted(actions.rglob("*.y*ml")) if actions.is_dir() else []
    found: set[tuple[str, str]] = set()
    for path in files:
        found.update(USES.findall(path.read_text()))
    return found


def standin_args(repo: Path, workflow: str = "*.y*ml") -> list[str]:
    """`--local-repository` for each used action; a clear failure names any action without a stand-in."""
    args, missing = [], []
    for action, ref in sorted(used_actions(repo, workflow)):
        if action in ACT_HANDLED:
            continue
        folder = STANDINS / action
        if not (folder / "action.yml").exists():
            missing.append(f"{action}@{ref}")
            continue
        args += ["--local-repository", f"{action}@{ref}={folder}"]
    if missing:
        raise AssertionError(
            f"no stand-in for {', '.join(missing)}: "
            "add tests/template/github/actions/<owner>/<name>/action.yml"
        )
    return args


@dataclass(repr=False)
class ActResult:
    returncode: int
    output: str  # act's combined log
    artifacts: Path  # <artifacts>/<name>/... as uploaded with actions/upload-artifact
    job_seconds: dict[str, float]  # wall time of each job: from its first to its last log line

    def jobs(self) -> dict[str, str]:
        """{job id: "succeeded" | "failed"} from act's `[Workflow/job] 🏁  Job succeeded` lines."""
        return {
            m[1].strip(): m[2]  # act pads job ids to a common width
            for m in re.finditer(r"^\[[^/\]]+/([^\]]+)\]\s+🏁\s+Job (succeeded|failed)", self.output, re.M)
        }

    def summary(self, job: str | None = None) -> str:
        """What steps wrote to $GITHUB_STEP_SUMMARY (act echoes it as `⚙  Summary - ...`)."""
        pattern = r"^\[[^/\]]+/([^\]]+)\]\s+⚙\s+Summary - (.*(?:\n(?!\[).*)*)"
        return "\n".join(m[2] for m in re.finditer(pattern, self.output, re.M) if job in (None, m[1].strip()))

    def __repr__(self) -> str:  # what a failing assertion shows
        return f"act exited {self.returncode}; jobs {self.jobs()}\n{self.output[-12000:]}"


def pull_request_event(
    repo: Path,
    number: int = 1,
    head_ref: str | None = None,
    base_ref: str = "main",
    fork_owner: str | None = None,
    full_name: str = "acme/model",
) -> dict:
    """A `pull_request` (opened) payload for the repo's HEAD; `fork_owner` makes it come from a fork."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, check=True, text=True, capture_output=True
        ).stdout.strip()

    head_ref = head_ref or git("rev-parse", "--abbrev-ref", "HEAD")
    head_repo = f"{fork_owner}/{full_name.split('/')[1]}" if fork_owner else full_name
    owner = full_name.split("/")[0]
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "number": number,
            "state": "open",
            "title": f"PR {number}",
            "head": {
                "ref": head_ref,
                "sha": git("rev-parse", "HEAD"),
                "label": f"{fork_owner or owner}:{head_ref}",
                "repo": {"full_name": head_repo, "fork": bool(fork_owner)},
            },
            "base": {
                "ref": base_ref,
                "sha": git("rev-parse", f"origin/{base_ref}"),
                "repo": {"full_name": full_name, "fork": False},
            },
        },
        "repository": {
            "full_name": full_name,
            "name": full_name.split("/")[1],
            "owner": {"login": owner},
            "default_branch": "main",
        },
        "sender": {"login": fork_owner or owner},
    }


class Act:
    """Runs act for one test. `home` holds act's HOME/XDG dirs; `state` the cache and artifact stores.

    The cache store persists between runs given the same `state` folder, like the Actions cache of one
    repository; the pip cache is the caller's real one (a warm pip cache, as setup-python's `cache: pip`)."""

    def __init__(self, work: Path, github, state: Path | None = None):
        self.work = work
        self.github = github
        self.state = state or work / "actions-state"
        self.pip_indexes = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.extra-index-url"],
            text=True,
            capture_output=True,
        ).stdout.strip()
        self.pip_cache = subprocess.run(
            [sys.executable, "-m", "pip", "cache", "dir"], text=True, capture_output=True
        ).stdout.strip() or str(work / "pip-cache")

    def env(self, home: Path, extra: dict[str, str], path: Path | None = None) -> dict[str, str]:
        """act's environment, which every step inherits: PATH is `path`, the runner's tools only."""
        bundle = str(self.github.ca_bundle)
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GIT_", "DVC_", "MLFLOW_", "GITHUB_", "RUNNER_", "ACT", "PYTEST_"))
        }
        keep.pop("VIRTUAL_ENV", None)
        keep.pop("MLOPS_REQUIRE_TOOLS", None)  # a workflow sets it after installing its tools, or not
        return {
            **keep,
            **({"PATH": str(path)} if path else {}),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_STATE_HOME": str(home / ".local/state"),
            # the test server's certificate, trusted next to the system CAs
            "SSL_CERT_FILE": bundle,
            "NODE_EXTRA_CA_CERTS": bundle,
            "GIT_SSL_CAINFO": bundle,
            "REQUESTS_CA_BUNDLE": bundle,
            # read by the stand-ins under tests/template/github/actions (never by the workflows)
            "STANDIN_PYTHON_HOME": str(Path(sys.executable).parent.parent),
            "STANDIN_CACHE_DIR": str(self.state / "cache"),
            "STANDIN_ARTIFACT_DIR": str(self.state / "artifacts"),
            "STANDIN_CML_BIN": str(real_cml().parent),  # the real CLI (setup-cml's stand-in adds it)
            # CML's telemetry goes to the test server, so a test sees whether a workflow left it on
            "ITERATIVE_ANALYTICS_ENDPOINT": f"{self.github.url}/telemetry",
            "PIP_CACHE_DIR": self.pip_cache,
            # pre-commit's hook environments, warm as the lint job's actions/cache step leaves them on GitHub
            # after a repository's first run (same idea as the shared pip cache)
            "PRE_COMMIT_HOME": str(Path(self.pip_cache).parent / "pre-commit-act"),
            **extra,
        }

    def run(
        self,
        repo: Path,
        event_name: str,
        event: dict,
        workflow: str,
        job: str | None = None,
        secrets: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 900,
    ) -> ActResult:
        runs = sorted(self.work.glob("act-run-*"))
        run_dir = self.work / f"act-run-{len(runs) + 1}"
        home = run_dir / "home"
        home.mkdir(parents=True)
        # GitHub's runner: its tools only, plus what a job installs (runner.py); act is run by its path
        lacking = make_runner_path(run_dir / "path")
        event_file = run_dir / "event.json"
        event_file.write_text(json.dumps(event))
        secrets = {"GITHUB_TOKEN": "test-token", **(secrets or {})}
        cmd = [
            str(ACT),
            event_name,
            "-W",
            f".github/workflows/{workflow}",
            "-e",
            str(event_file),
            "-P",
            "ubuntu-latest=-self-hosted",
            "--github-instance",
            self.github.host,
            "--no-cache-server",
            "--container-daemon-socket",
            "-",
            *standin_args(repo, workflow),
        ]
        if job:
            cmd += ["-j", job]
        for name, value in secrets.items():
            cmd += ["-s", f"{name}={value}"]
        # the workflows' PIP_EXTRA_INDEX_URL variable: this machine's indexes instead of the PyTorch CPU index
        variables = {"PIP_EXTRA_INDEX_URL": self.pip_indexes, **(variables or {})}
        for name, value in variables.items():
            cmd += ["--var", f"{name}={value}"]
        lines: list[str] = []
        stamps: dict[str, list[float]] = {}  # job id -> times of its first and last log line
        with subprocess.Popen(
            cmd,
            cwd=repo,
            env=self.env(home, env or {}, run_dir / "path"),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as proc:
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            for line in proc.stdout:
                lines.append(line)
                if m := re.match(r"\[[^/\]]+/([^\]]+)\]", line):
                    stamps.setdefault(m[1], [time.monotonic()] * 2)[1] = time.monotonic()
            timer.cancel()
        output = "".join(lines)
        lacks = f"# PATH {run_dir / 'path'}; runner tools this host lacks: {' '.join(lacking)}"
        (run_dir / "act.log").write_text(f"$ {shlex.join(cmd)}\n{lacks}\n{output}")
        spans = {job: end - start for job, (start, end) in stamps.items()}
        return ActResult(proc.returncode, output, self.state / "artifacts", spans)


def pr_checkout(
    src: Path, dst: Path, dvc_remote: Path, branch: str = "feature", full_name: str = "acme/model"
) -> Path:
    """A clone of `src` on a new `branch`, as a PR's checkout: origin is https://github.com/<full_name>
    (what act reads to set GITHUB_REPOSITORY), rewritten by git to a local bare copy so that
    `git fetch origin` and `git push origin` work offline; the DVC remote is `dvc_remote`."""
    from tests.repo import clone, sh

    bare = dst.parent / f"{dst.name}-origin.git"
    sh(["git", "clone", "-q", "--bare", str(src), str(bare)], src.parent)
    clone(bare, dst, dvc_remote)
    url = f"https://github.com/{full_name}.git"
    sh(["git", "remote", "set-url", "origin", url], dst)
    # an included file: git honours it, act (go-git) does not, so act still sees acme/model as the repo
    (dst / ".git" / "harness.gitconfig").write_text(f'[url "{bare}"]\n\tinsteadOf = {url}\n')
    sh(["git", "config", "include.path", "harness.gitconfig"], dst)
    sh(["git", "fetch", "-q", "origin"], dst)
    sh(["git", "checkout", "-q", "-b", branch], dst)
    return dst
