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

Deployments only move forward. `stage` and `propose` refuse a model version older than the one the
environment holds (on the base branch, and in its open deploy PR), and all three refuse an image that is
not the current `champion`'s (the registry's alias and the image recorded on it, else the local
`model_store/release.json`): a re-run of an old release run must not put its older digest back. Lowering
the canary share is always allowed (it is the abort). `force` with a reason overrides, and the reason is
written into the commit and the PR.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlops.config.errors import UserError
from mlops.config.git import git, identity

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


# -- only forward: the overlay's version and the champion -----------------------------------------------
CHAMPION = "champion"
RELEASE_RECORD = "model_store/release.json"  # mlops/release/registry.py writes it after every alias move


@dataclass(frozen=True)
class Champion:
    """What the registry's `champion` is: version None when the registry has none."""

    version: str | None
    image: Image | None  # None when no image was recorded on it (a local `mlops promote`)
    source: str


def _registered_model(root: Path) -> str:
    """The registered model's name as the registry code derives it from params.yaml."""
    if not (root / "params.yaml").is_file():
        return "model"
    from mlops.config.params import load_params

    return str(load_params(root / "params.yaml").mlflow.registered_model)


def _image_or_none(ref: str | None) -> Image | None:
    m = IMAGE_RE.fullmatch((ref or "").strip())
    return Image(m["repository"], m["digest"]) if m else None


def _rest_champion(uri: str, name: str) -> Champion:
    """The alias through MLflow's REST API (no mlflow package needed: the deploy job installs none)."""
    query = urllib.parse.urlencode({"name": name, "alias": CHAMPION})
    request = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/registered-models/alias?{query}")
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
    elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
        user = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
        request.add_header("Authorization", f"Basic {base64.b64encode(user.encode()).decode()}")
    source = f"the registry's `{CHAMPION}` of {name}"
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            found = json.loads(response.read()).get("model_version") or {}
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace")
        if err.code == 404 or (err.code == 400 and "not found" in body):  # no model / no such alias
            return Champion(None, None, source)
        raise UserError(f"cannot read {source} from the MLflow registry: HTTP {err.code}") from None
    except OSError as err:
        raise UserError(f"cannot read {source} from the MLflow registry: {err}") from None
    tags = {t.get("key"): t.get("value") for t in found.get("tags") or []}
    return Champion(str(found.get("version")), _image_or_none(tags.get("image")), source)


def _client_champion(uri: str, name: str) -> Champion:
    """The alias through the MLflow client (a sqlite or file store: no server to ask)."""
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise UserError(f"MLFLOW_TRACKING_URI={uri} needs the mlflow package (the train extra)") from None
    source = f"the registry's `{CHAMPION}` of {name}"
    try:
        found = MlflowClient(tracking_uri=uri).get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return Champion(None, None, source)
    return Champion(str(found.version), _image_or_none((found.tags or {}).get("image")), source)


def champion(root: Path) -> Champion | None:
    """The current champion: the registry when MLFLOW_TRACKING_URI names one, else the local release
    record (the embedded registry's mirror); None when neither is there (unknown: not checked)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        name = _registered_model(root)
        return (
            _rest_champion(uri, name)
            if uri.startswith(("http://", "https://"))
            else _client_champion(uri, name)
        )
    record = root / RELEASE_RECORD
    if record.is_file():
        data = json.loads(record.read_text())
        if data.get("champion") is True and data.get("version"):
            return Champion(str(data["version"]), _image_or_none(data.get("image")), RELEASE_RECORD)
    return None


def backwards(
    image: Image, version: str, held: list[tuple[str, Release]], best: Champion | None
) -> list[str]:
    """Why writing `image` (model `version`) would move a deployment backwards: an older version than
    one `held` (where, release), or not the champion's image. Empty: it moves forward (or stays)."""
    reasons = []
    for where, current in held:
        if current.image is not None and current.version.isdigit() and int(version) < int(current.version):
            reasons.append(
                f"{where} holds model version {current.version} ({current.image}); version {version} is older"
            )
    if best is not None:
        if best.version is None:
            reasons.append(f"{best.source}: there is none, so nothing was released to deploy")
        elif best.version != version:
            reasons.append(f"{best.source} is version {best.version}, not {version}")
        elif best.image is not None and best.image != image:
            reasons.append(f"{best.source} (version {best.version}) is the image {best.image}, not {image}")
    return reasons


def check_forward(what: str, reasons: list[str], force: bool, reason: str | None) -> str | None:
    """Refuse a backwards move unless forced with a reason; returns the reason to record (or None)."""
    reason = (reason or "").strip()
    if force and not reason:
        raise UserError('--force needs --reason "...": a forced deployment is recorded with why it was done')
    if reasons and not force:
        raise UserError(
            f"refused: {what} would move backwards:\n  - "
            + "\n  - ".join(reasons)
            + "\nA re-run of an older release run? The newer release is already deployed; nothing to do. "
            'To deploy this image anyway: the same command with --force --reason "why"'
        )
    return reason or None


def forced_note(reason: str | None) -> str:
    """The commit message trailer of a forced deployment ("" when not forced)."""
    return f"\n\nForced: {reason}" if reason else ""


def _commit_forced(root: Path, path: str, subject: str, reason: str) -> str:
    """A forced local edit is committed at once, so its reason cannot be lost; returns the commit."""
    git("commit", "-q", "-m", subject + forced_note(reason), "--", path, cwd=root, env=identity(root))
    return git("rev-parse", "HEAD", cwd=root)


# -- local edits ---------------------------------------------------------------------------------------
def stage(root: Path, image: str, version: str, force: bool = False, reason: str | None = None) -> list[str]:
    """Point staging at `image`; returns the changed paths (empty: staging already runs it). Forced,
    the change is committed with the reason (the commit is the record)."""
    path = release_file("staging")
    file = root / path
    target, version = Image.parse(image), check_version(version)
    text = file.read_text()
    new = rewrite(text, path, image=target, version=version)
    if new == text:
        return []
    why = backwards(target, version, [(path, read(text))], champion(root))
    recorded = check_forward("staging", why, force, reason)
    if recorded and not why:
        recorded = None  # nothing was overridden: an ordinary deployment
    file.write_text(new)
    if recorded:
        _commit_forced(root, path, f"deploy: staging -> model v{version} ({target})", recorded)
    return [path]


def canary(root: Path, percent: int, force: bool = False, reason: str | None = None) -> list[str]:
    """Set production's canary share; returns the changed paths. Raising the share of an image that is
    not the champion's is refused unless forced (then committed with the reason); lowering never is."""
    path = release_file("production")
    file = root / path
    text = file.read_text()
    new = rewrite(text, path, canary=check_percent(percent))
    if new == text:
        return []
    current = read(text)
    why: list[str] = []
    if current.image is not None and percent > (current.canary or 0):
        why = backwards(current.image, current.version, [], champion(root))
    recorded = check_forward(f"more traffic to production's {current.image}", why, force, reason)
    file.write_text(new)
    if recorded and why:
        _commit_forced(root, path, f"deploy: production canary -> {percent} %", recorded)
    return [path]


# -- rollback: a revert in git ---------------------------------------------------------------------------
def rollback_plan(root: Path, env: str) -> tuple[str, str, list[list[str]]]:
    """(commit, subject, git commands) undoing the last commit that changed `env`'s image.

    When nothing touched the release file after that commit, the plan is a plain `git revert`. Canary
    steps made after it (its promotion, or a 0 % abort) belong to that deployment, so then the file is
    restored to its state before the commit, in one commit that says which one it reverts: a plain revert
    would conflict with those later lines."""
    path = release_file(env)
    commits = git("log", "--format=%H", "-G", r"^\s+digest:", "--", path, cwd=root).split()
    if not commits:
        raise UserError(f"no commit has changed the image in {path}: nothing to roll back")
    commit = commits[0]
    subject = git("log", "-1", "--format=%s", commit, cwd=root)
    if git("cat-file", "-e", f"{commit}^:{path}", cwd=root, check=False) is None:
        raise UserError(f"{commit[:12]} created {path}: there is no earlier deployment to go back to")
    later = git("log", "--format=%H", f"{commit}..HEAD", "--", path, cwd=root).split()
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
        if git("status", "--porcelain", "--", release_file(env), cwd=root):
            raise UserError(f"{release_file(env)} has uncommitted changes: commit or discard them first")
        for command in commands:
            git(*command[1:], cwd=root, env=identity(root))
    return commands
