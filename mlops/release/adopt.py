"""`mlops adopt`: commit what a PR's CI run produced, so the branch holds what was trained and reviewed.

Only the run's DVC-tracked outputs and dvc.lock are taken from its artifact, each member checked
against what the pipeline declares, so an artifact cannot write anything else into the branch.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from mlops.config.errors import UserError
from mlops.config.git import git
from mlops.release.lock_check import git_tracked_outputs
from mlops.release.outputs import ARTIFACT, BRANCH, CACHE, LOCK, _api

_OBJECT = re.compile(r"files/md5/[0-9a-f]{2}/[0-9a-f]{30}(\.dir)?")
_RUN_ENTRY = re.compile(r"runs/[0-9a-f]{2}/[0-9a-f]{64}/[0-9a-f]{64}")


def origin_repo() -> str:
    """owner/name of the `origin` remote (https://, ssh:// or scp-like git@host:owner/name.git)."""
    url = git("remote", "get-url", "origin", check=False) or ""
    found = re.search(r"[:/]([^/:]+/[^/]+?)(?:\.git)?/?$", url)
    if not found:
        raise UserError(f"cannot tell the repository from the origin remote ({url or 'none'}): pass --repo")
    return found[1]


def _token() -> str:
    """GH_TOKEN, GITHUB_TOKEN, else the GitHub CLI's login (`gh auth token`), if gh is installed."""
    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
    if not token and shutil.which("gh"):
        proc = subprocess.run(["gh", "auth", "token"], text=True, capture_output=True)
        token = proc.stdout.strip() if proc.returncode == 0 else ""
    if not token:
        raise UserError(
            "no GitHub token: GitHub serves workflow artifacts only to a signed-in client. "
            "Run `gh auth login`, or set GH_TOKEN (a token that can read this repository's Actions)"
        )
    return token


def allowed_members(tracked: list[str]) -> tuple[set[str], set[str]]:
    """(branch files, folders) an artifact may hold besides cache objects and run-cache entries."""
    files = {f"{BRANCH}/{LOCK.as_posix()}", *(f"{BRANCH}/{p}" for p in tracked)}
    folders = {"files", "files/md5", "runs"}
    for name in files:
        parts = name.split("/")[:-1]
        folders |= {"/".join(parts[: i + 1]) for i in range(len(parts))}
    return files, folders


def check_members(archive: zipfile.ZipFile, tracked: list[str]) -> list[zipfile.ZipInfo]:
    """The artifact's files, once every member is proven to be one the layout allows (untrusted input).

    Allowed: cache objects files/md5/xx/yyyy, run-cache entries runs/xx/key/value, and the branch files
    (dvc.lock and dvc.yaml's git-tracked outputs). Anything else, an absolute path, `..` or a link is
    refused, and with it the whole artifact."""
    files, folders = allowed_members(tracked)
    problems, found = [], []
    for member in archive.infolist():
        name = member.filename
        link = (member.external_attr >> 16) & 0o170000 == 0o120000
        if member.is_dir():
            ok = name.rstrip("/") in folders or bool(
                re.fullmatch(r"files/md5/[0-9a-f]{2}|runs/[0-9a-f]{2}(/[0-9a-f]{64})?", name.rstrip("/"))
            )
        else:
            ok = name in files or bool(_OBJECT.fullmatch(name) or _RUN_ENTRY.fullmatch(name))
        if not ok or link or "\\" in name:
            problems.append(name)
        elif not member.is_dir():
            found.append(member)
    if problems:
        raise UserError(
            f"the {ARTIFACT} artifact holds member(s) outside its layout, refused (nothing was written): "
            + ", ".join(repr(p) for p in problems[:5])
        )
    return found


def _download(run_id: str, repo: str) -> tuple[dict, bytes]:
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    token = _token()
    run = _api(f"{api}/repos/{repo}/actions/runs/{run_id}", token)
    head = git("rev-parse", "HEAD", check=False)
    if run.get("head_sha") != head:
        raise UserError(
            f"run {run_id} trained commit {str(run.get('head_sha'))[:12]}, "
            f"but HEAD here is {str(head)[:12]}: "
            "its outputs belong to that commit. Check out the PR's head commit (`git pull`, or "
            "`gh pr checkout <PR>`), or adopt the run of your newest push (its PR comment names it)"
        )
    found = _api(f"{api}/repos/{repo}/actions/runs/{run_id}/artifacts?name={ARTIFACT}", token)
    artifacts = [a for a in found.get("artifacts", []) if a["name"] == ARTIFACT and not a.get("expired")]
    if not artifacts:
        raise UserError(f"run {run_id} has no {ARTIFACT} artifact (expired, or the job failed before it)")
    return run, _api(artifacts[0]["archive_download_url"], token, raw=True)


def adopt(run_id: str, repo: str | None = None, push: bool = True) -> int:
    """Make the branch hold exactly what CI run `run_id` produced, and commit (and push) it.

    Works over any local state of the outputs, e.g. a local retrain on another CPU whose model md5
    differs: the run's dvc.lock and git-tracked outputs replace the local ones, and `dvc checkout` puts
    the run's model in place from the cache objects the artifact carried."""

    repo = repo or origin_repo()
    tracked = git_tracked_outputs()
    run, data = _download(run_id, repo)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = check_members(archive, tracked)
        contents = {m.filename: archive.read(m) for m in members}
    lock_bytes = contents.get(f"{BRANCH}/{LOCK.as_posix()}")
    if lock_bytes is None:
        raise UserError(
            f"run {run_id}'s {ARTIFACT} artifact has no {BRANCH}/dvc.lock (made by an older pack?)"
        )
    try:
        stages = (yaml.safe_load(lock_bytes) or {}).get("stages")
    except (yaml.YAMLError, AttributeError):
        stages = None
    if not isinstance(stages, dict) or not stages:
        raise UserError(f"run {run_id}'s {BRANCH}/dvc.lock records no stages; refused")
    for name, body in contents.items():
        parts = name.split("/")
        if parts[0] == "files" and hashlib.md5(body).hexdigest() != parts[2] + parts[3].removesuffix(".dir"):
            raise UserError(f"the artifact's object {name} does not hash to its name; refused")
    for name, body in contents.items():  # everything checked: now write
        in_cache = name.startswith(("files/", "runs/"))
        target = CACHE / name if in_cache else Path(name.removeprefix(f"{BRANCH}/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    written = sorted(name.removeprefix(f"{BRANCH}/") for name in contents if name.startswith(f"{BRANCH}/"))
    print(f"adopt: run {run_id} ({run.get('html_url', repo)}): {len(contents)} file(s), {', '.join(written)}")
    checkout = subprocess.run([sys.executable, "-m", "dvc", "checkout", "--force"])
    if checkout.returncode:
        print("adopt: `dvc checkout` could not restore every output here (see above); `dvc pull` may")
    subprocess.run(["git", "add", "--", *written], check=True)
    if not git("diff", "--cached", "--name-only", "--", *written, check=False):
        print(f"adopt: the branch already holds what run {run_id} produced; nothing to commit")
        return 0
    message = f"Adopt what CI run {run_id} trained: dvc.lock and outputs"
    subprocess.run(
        ["git", "commit", "-q", "-m", message, "-m", str(run.get("html_url", "")), "--", *written], check=True
    )
    print(f"adopt: committed {git('rev-parse', '--short', 'HEAD', check=False)} {message!r}")
    if not push:
        print("adopt: not pushed (--no-push): `git push` when ready")
        return 0
    return _push()


def _push() -> int:
    """To the branch's upstream (after `gh pr checkout`, a fork's branch), else origin <branch>."""
    branch = git("symbolic-ref", "--short", "HEAD", check=False)
    if not branch:
        raise UserError("HEAD is detached: the commit is made; push it to the PR's branch yourself")
    argv = (
        ["git", "push"]
        if git("rev-parse", "--abbrev-ref", "@{upstream}", check=False)
        else ["git", "push", "origin", branch]
    )
    print(f"$ {' '.join(argv)}", flush=True)
    code = subprocess.run(argv).returncode
    if code:
        raise UserError(f"{' '.join(argv)} failed (exit {code}): the commit is made; push it when you can")
    return 0
