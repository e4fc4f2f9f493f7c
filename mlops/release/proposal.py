"""The deployment PR: one per overlay, opened or updated in place through the GitHub API.

A proposed image reaches production only by a reviewed merge of this PR (staging's and production's are
separate branches), so what runs where always has a reviewer and a commit.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlops.config.errors import UserError
from mlops.release.delivery import (
    BRANCH,
    DEFAULT_CANARY,
    MARKER,
    Champion,
    Image,
    Release,
    backwards,
    branch_for,
    champion,
    check_forward,
    check_percent,
    check_version,
    forced_note,
    read,
    release_file,
    rewrite,
)


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
    force: bool = False,
    reason: str | None = None,
    root: Path | None = None,
) -> tuple[str, int | None, str]:
    """(action, PR number, url): open or update the one PR moving `env` (production) to `image`.

    The branch is reset to `base` and gets one commit changing only the production release file, so the
    PR shows exactly the deployment whatever happened before. Nothing to change (the environment already
    runs the image) opens nothing. Staging has no canary share: `percent` is production's only. An older
    version than `base`'s or the open PR's, or an image that is not the champion's, is refused unless
    `force`d with a `reason`, which the commit and the PR then carry."""
    from github import GithubException

    from mlops.github.client import GitHub

    target, version, percent = Image.parse(image), check_version(version), check_percent(percent)
    check_forward(env, [], force, reason)  # --force without a reason fails before any request
    best = champion(root or Path.cwd())
    branch = branch_for(env)
    gh = GitHub.from_env()
    if repo:
        gh = GitHub(api=gh.api, repo=repo, token=gh.token) if gh else _github_for(repo)
    if gh is None:
        raise UserError("deploy propose needs GITHUB_TOKEN (or GH_TOKEN) and GITHUB_REPOSITORY (or --repo)")
    repository = gh.client().get_repo(gh.repo, lazy=True)
    for attempt in range(3):  # a concurrent run moved the branch between our read and our write
        try:
            before, staging, forced = _commit(
                gh, repository, base, target, version, percent, env, best, force, reason
            )
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
    if forced:
        body += f"\n**Forced** (`--force`): {forced}\n"
    title = f"Deploy model version {version} to {env}"
    action, pull = gh.open_or_update(branch, base, title, body, opened_by_us=True, wait=0)
    return action, pull.number, pull.html_url


def _open_proposal(gh, repository, branch: str, base: str, path: str) -> Release | None:
    """What the open deploy PR of `branch` proposes (None: no open PR)."""
    if gh.pull_for(branch, base) is None:
        return None
    proposed = gh._call(lambda: repository.get_contents(path, ref=branch))
    return read(proposed.decoded_content.decode())


def _commit(
    gh,
    repository,
    base: str,
    image: Image,
    version: str,
    percent: int,
    env: str = "production",
    best: Champion | None = None,
    force: bool = False,
    reason: str | None = None,
):
    """(`env` before, staging, forced reason) on `base`; the branch reset to `base` plus one commit of the
    release file. (None, staging, None) when `env` already runs `image`. 409/422 from the write
    propagate; a backwards move not forced raises before anything is written."""
    path, branch = release_file(env), branch_for(env)
    base_sha = gh._call(lambda: repository.get_git_ref(f"heads/{base}").object.sha)
    current = gh._call(lambda: repository.get_contents(path, ref=base_sha))
    text = current.decoded_content.decode()
    staged = gh._call(lambda: repository.get_contents(release_file("staging"), ref=base_sha))
    staging = read(staged.decoded_content.decode())
    if read(text).image == image:
        return None, staging, None
    held = [(f"{path} on {base}", read(text))]
    proposal = _open_proposal(gh, repository, branch, base, path)
    if proposal is not None:
        held.append((f"the open PR from {branch}", proposal))
    why = backwards(image, version, held, best)
    forced = check_forward(env, why, force, reason) if why else None
    canary = percent if env == "production" else None
    new = rewrite(text, path, image=image, version=version, canary=canary)
    _reset_branch(gh, repository, base_sha, branch)
    message = f"deploy: {env} to model version {version} ({image.digest[:19]})" + forced_note(forced)
    gh._call(lambda: repository.update_file(path, message, new, current.sha, branch=branch), keep=(409, 422))
    return read(text), staging, forced


def _github_for(repo: str):
    from mlops.github.client import GitHub

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
