"""GitOps delivery: what runs where is a file in git, and every change to it is a deployment.

Each environment has ONE release file, `deploy/release/<env>/kustomization.yaml` (a kustomize Component
used by both the KServe and the plain overlay): the image by digest, the model version and, in
production, KServe's canary share. The commands here only rewrite those few lines, with line edits
that keep the rest of the file (comments, order) as it was, so a diff is the deployment and nothing else:

- `stage`: staging's image and version (the workflow commits the file and pushes it to main, with a
  GitHub App token that main's ruleset lets bypass).
- `propose`: ONE pull request from `deploy/production` moving production to a digest, through the
  GitHub REST API (the branch and its commit are made with the refs and contents endpoints, so the
  token is the only credential). Merging it is the approval. `--overlay staging` does the same for
  staging from `deploy/staging`: the workflow's way to stage when no App may push to main.
- `canary`: production's traffic share for the newest revision (promote 100, abort 0).
- `rollback`: the revert of the last commit that changed an environment's image.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops.errors import UserError

ENVIRONMENTS = ("staging", "production")
BRANCH = "deploy/production"  # the production PR's head; staging's is deploy/staging (branch_for)
MARKER = "<!-- mlops:deploy-pr -->"  # identifies the PR body as ours
DEFAULT_CANARY = 10  # percent of traffic a proposed production image gets until promoted
ZERO_DIGEST = "sha256:" + "0" * 64  # the placeholder before the first promotion
IMAGE_RE = re.compile(
    r"(?P<repository>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)"
    r"@(?P<digest>sha256:[0-9a-f]{64})"
)
# The release file's lines that the commands own; each must appear exactly once.
NEW_NAME = re.compile(r"^(\s+newName:[ \t]*)(\S+)[ \t]*$", re.M)
DIGEST = re.compile(r"^(\s+digest:[ \t]*)(\S+)[ \t]*$", re.M)
VERSION = re.compile(r'^(\s+mlops\.ai/model-version:[ \t]*)("[^"\n]*")[ \t]*$', re.M)
CANARY = re.compile(r"^(\s+value:[ \t]*)(\d+)[ \t]*$", re.M)


def branch_for(env: str) -> str:
    """The head branch of an environment's one deploy PR."""
    release_file(env)  # validates env
    return f"deploy/{env}"


def release_file(env: str) -> str:
    """The repository-relative path of an environment's release file."""
    if env not in ENVIRONMENTS:
        raise UserError(f"unknown environment {env!r}: one of {', '.join(ENVIRONMENTS)}")
    return f"deploy/release/{env}/kustomization.yaml"


@dataclass(frozen=True)
class Image:
    repository: str  # ghcr.io/owner/name
    digest: str  # sha256:<64 hex>

    @classmethod
    def parse(cls, ref: str) -> Image:
        """Only `<repository>@sha256:<64 hex>`: a tag can be moved, a digest cannot."""
        m = IMAGE_RE.fullmatch(ref.strip())
        if not m:
            raise UserError(
                f"--image must name the image by digest, <repository>@sha256:<64 hex digits> "
                f"(e.g. ghcr.io/owner/name@sha256:…); got {ref!r}"
            )
        if m["digest"] == ZERO_DIGEST:
            raise UserError(
                f"--image {ref!r}: the zero digest is the placeholder of an undeployed environment"
            )
        return cls(m["repository"], m["digest"])

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class Release:
    """The parsed state of a release file."""

    image: Image | None  # None while the placeholder digest is there
    version: str
    canary: int | None  # None: no canary patch (staging)


def read(text: str) -> Release:
    doc = yaml.safe_load(text) or {}
    images = doc.get("images") or [{}]
    repository, digest = images[0].get("newName", ""), images[0].get("digest", "")
    version = str((doc.get("commonAnnotations") or {}).get("mlops.ai/model-version", ""))
    canary = None
    for patch in doc.get("patches") or []:
        for op in yaml.safe_load(patch.get("patch") or "[]") or []:
            if op.get("path") == "/spec/predictor/canaryTrafficPercent":
                canary = int(op["value"])
    image = Image(repository, digest) if digest and digest != ZERO_DIGEST else None
    return Release(image=image, version=version, canary=canary)


def _replace(text: str, pattern: re.Pattern, value: str, what: str, path: str) -> str:
    found = pattern.findall(text)
    if len(found) != 1:
        raise UserError(f"{path}: expected exactly one {what} line, found {len(found)}: restore its layout")
    return pattern.sub(lambda m: m[1] + value, text)


def rewrite(
    text: str,
    path: str,
    image: Image | None = None,
    version: str | None = None,
    canary: int | None = None,
) -> str:
    """The release file with the given fields changed and every other byte kept."""
    if image is not None:
        text = _replace(text, NEW_NAME, image.repository, "images[].newName", path)
        text = _replace(text, DIGEST, image.digest, "images[].digest", path)
    if version is not None:
        text = _replace(text, VERSION, f'"{version}"', "mlops.ai/model-version", path)
    if canary is not None:
        text = _replace(text, CANARY, str(canary), "canaryTrafficPercent value", path)
    after = read(text)  # the edit must say what was asked, as YAML, not just as lines
    if (
        (image is not None and after.image != image)
        or (version is not None and after.version != version)
        or (canary is not None and after.canary != canary)
    ):
        raise UserError(f"{path}: rewriting it did not give the expected values: restore its layout")
    return text


def check_version(version: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*", str(version)):
        raise UserError(f"--version must be a registry model version (a positive integer), got {version!r}")
    return str(version)


def check_percent(percent: int) -> int:
    if not 0 <= percent <= 100:
        raise UserError(f"--percent must be between 0 and 100, got {percent}")
    return percent


# -- local edits ---------------------------------------------------------------------------------------
def stage(root: Path, image: str, version: str) -> list[str]:
    """Point staging at `image`; returns the changed paths (empty: staging already runs it)."""
    path = release_file("staging")
    file = root / path
    text = file.read_text()
    new = rewrite(text, path, image=Image.parse(image), version=check_version(version))
    if new == text:
        return []
    file.write_text(new)
    return [path]


def canary(root: Path, percent: int) -> list[str]:
    """Set production's canary share; returns the changed paths."""
    path = release_file("production")
    file = root / path
    text = file.read_text()
    new = rewrite(text, path, canary=check_percent(percent))
    if new == text:
        return []
    file.write_text(new)
    return [path]


# -- rollback: a revert in git ---------------------------------------------------------------------------
BOT = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")


def _git(root: Path, *args: str) -> str:
    """git in `root`; on a runner with no identity configured, commits are the Actions bot's."""
    env = dict(os.environ)
    if not subprocess.run(["git", "-C", str(root), "config", "user.email"], capture_output=True).stdout:
        for role in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{role}_NAME", BOT[0])
            env.setdefault(f"GIT_{role}_EMAIL", BOT[1])
    proc = subprocess.run(["git", "-C", str(root), *args], text=True, capture_output=True, env=env)
    if proc.returncode != 0:
        raise UserError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def rollback_plan(root: Path, env: str) -> tuple[str, str, list[list[str]]]:
    """(commit, subject, git commands) undoing the last commit that changed `env`'s image.

    When nothing touched the release file after that commit, the plan is a plain `git revert`. Canary
    steps made after it (its promotion, or a 0 % abort) belong to that deployment, so then the file is
    restored to its state before the commit, in one commit that says which one it reverts: a plain revert
    would conflict with those later lines."""
    path = release_file(env)
    commits = _git(root, "log", "--format=%H", "-G", r"^\s+digest:", "--", path).split()
    if not commits:
        raise UserError(f"no commit has changed the image in {path}: nothing to roll back")
    commit = commits[0]
    subject = _git(root, "log", "-1", "--format=%s", commit)
    before = subprocess.run(
        ["git", "-C", str(root), "cat-file", "-e", f"{commit}^:{path}"], capture_output=True
    )
    if before.returncode != 0:
        raise UserError(f"{commit[:12]} created {path}: there is no earlier deployment to go back to")
    later = _git(root, "log", "--format=%H", f"{commit}..HEAD", "--", path).split()
    if not later:
        return commit, subject, [["git", "revert", "--no-edit", commit]]
    message = f'Revert "{subject}"\n\nThis reverts commit {commit} (and the canary steps after it).'
    return (
        commit,
        subject,
        [["git", "checkout", f"{commit}^", "--", path], ["git", "commit", "-m", message, "--", path]],
    )


def rollback(root: Path, env: str, apply: bool) -> list[list[str]]:
    """The commands of `rollback_plan`; with `apply`, run them (the working tree must be clean there)."""
    _, _, commands = rollback_plan(root, env)
    if apply:
        if _git(root, "status", "--porcelain", "--", release_file(env)):
            raise UserError(f"{release_file(env)} has uncommitted changes: commit or discard them first")
        for command in commands:
            _git(root, *command[1:])
    return commands


def _release_table(image: Image, version: str, overlay: str, current: Release) -> str:
    """The head of both PR bodies: what is proposed and what the overlay runs now."""
    now = f"`{current.image}` (version {current.version})" if current.image else "nothing yet"
    rows = [("image", f"`{image}`"), ("model version", version), (f"{overlay} now", now)]
    return "| | |\n| --- | --- |\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)


# -- the production PR ----------------------------------------------------------------------------------
def pr_body(image: Image, version: str, current: Release, staging: Release, percent: int, base: str) -> str:
    if staging.image == image:
        staged = f"✅ runs this digest (`{release_file('staging')}` on `{base}`, version {staging.version})"
    elif staging.image is None:
        staged = "⚠️ has never been deployed: this PR skips staging"
    else:
        staged = f"⚠️ runs another image, `{staging.image}` (version {staging.version}): not this one"
    return f"""{MARKER}
## Deploy model version {version} to production

{_release_table(image, version, "production", current)}
| staging | {staged} |
| canary | {percent} % of traffic to the new revision once synced (KServe); the plain Deployment rolls all |

**Merging this PR is the approval**: Argo CD syncs `deploy/overlays/production` (or `plain-production`)
from `{base}`.

Then, each step a commit on `{base}` (through a PR like this one):

- promote the canary: `mlops deploy canary --percent 100`
- hold all traffic on the previous revision: `mlops deploy canary --percent 0`
- abort, back to the previous image: `mlops deploy rollback --overlay production --apply`

This PR is opened and updated by `mlops deploy propose`: the next promotion replaces its commit.
"""


def staging_body(image: Image, version: str, current: Release, base: str) -> str:
    return f"""{MARKER}
## Deploy model version {version} to staging

{_release_table(image, version, "staging", current)}

Merging this PR deploys it: Argo CD syncs `deploy/overlays/staging` (or `plain-staging`) from `{base}`.
The release workflow opens it instead of pushing to `{base}` because no GitHub App may bypass `{base}`'s
branch rules (docs/deploy.md, "Staging without an App"). It is opened and updated by
`mlops deploy propose --overlay staging`: the next promotion replaces its commit.
"""


def propose(
    image: str,
    version: str,
    repo: str | None = None,
    base: str = "main",
    percent: int = DEFAULT_CANARY,
    env: str = "production",
) -> tuple[str, int | None, str]:
    """(action, PR number, url): open or update the one PR moving `env` (production) to `image`.

    The branch is reset to `base` and gets one commit changing only the production release file, so the
    PR shows exactly the deployment whatever happened before. Nothing to change (the environment already
    runs the image) opens nothing. Staging has no canary share: `percent` is production's only."""
    from github import GithubException

    from monitoring.github import GitHub

    target, version, percent = Image.parse(image), check_version(version), check_percent(percent)
    branch = branch_for(env)
    gh = GitHub.from_env()
    if repo:
        gh = GitHub(api=gh.api, repo=repo, token=gh.token) if gh else _github_for(repo)
    if gh is None:
        raise UserError("deploy propose needs GITHUB_TOKEN (or GH_TOKEN) and GITHUB_REPOSITORY (or --repo)")
    repository = gh.client().get_repo(gh.repo, lazy=True)
    for attempt in range(3):  # a concurrent run moved the branch between our read and our write
        try:
            before, staging = _commit(gh, repository, base, target, version, percent, env)
            break
        except GithubException as err:
            if attempt == 2:
                raise UserError(f"GitHub API: committing on {branch} failed: HTTP {err.status}") from None
    if before is None:
        return "unchanged", None, ""
    if env == "production":
        body = pr_body(target, version, before, staging, percent, base)
    else:
        body = staging_body(target, version, before, base)
    title = f"Deploy model version {version} to {env}"
    action, pull = gh.open_or_update(branch, base, title, body, opened_by_us=True, wait=0)
    return action, pull.number, pull.html_url


def _commit(gh, repository, base: str, image: Image, version: str, percent: int, env: str = "production"):
    """(`env` before, staging) on `base`; the branch reset to `base` plus one commit of the release
    file. (None, staging) when `env` already runs `image`. 409/422 from the write propagate."""
    path, branch = release_file(env), branch_for(env)
    base_sha = gh._call(lambda: repository.get_git_ref(f"heads/{base}").object.sha)
    current = gh._call(lambda: repository.get_contents(path, ref=base_sha))
    text = current.decoded_content.decode()
    staged = gh._call(lambda: repository.get_contents(release_file("staging"), ref=base_sha))
    staging = read(staged.decoded_content.decode())
    if read(text).image == image:
        return None, staging
    canary = percent if env == "production" else None
    new = rewrite(text, path, image=image, version=version, canary=canary)
    _reset_branch(gh, repository, base_sha, branch)
    message = f"deploy: {env} to model version {version} ({image.digest[:19]})"
    gh._call(lambda: repository.update_file(path, message, new, current.sha, branch=branch), keep=(409, 422))
    return read(text), staging


def _github_for(repo: str):
    from monitoring.github import GitHub

    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN") or ""
    api = os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    return GitHub(api=api.rstrip("/"), repo=repo, token=token) if token else None


def _reset_branch(gh, repository, sha: str, branch: str = BRANCH) -> None:
    """`branch` (deploy/production) at `sha`: created, or moved there (force) when it exists."""
    from github import GithubException

    try:
        gh._call(lambda: repository.create_git_ref(f"refs/heads/{branch}", sha), keep=(422,))
    except GithubException as err:
        if "already exists" not in str(err.data):
            raise
        ref = gh._call(lambda: repository.get_git_ref(f"heads/{branch}"))
        gh._call(lambda: ref.object)  # loads it: PyGithub then PATCHes the API's own url (git/refs/...)
        gh._call(lambda: ref.edit(sha, force=True))
