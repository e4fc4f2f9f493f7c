"""The GitHub side of the retraining PR, through PyGithub (a maintained client, not hand-written HTTP).

PyGithub follows pagination (`PaginatedList` reads the Link headers), and its `GithubRetry` retries
403s that carry Retry-After or a rate-limit message; urllib3 underneath honours Retry-After on 429
and 503. Retries cover every method: a repeated POST of the same PR is answered 422 "already exists",
which `open_or_update` turns into an update, so a retry can never make a second PR.

It follows the variables GitHub Actions and `gh` use, so the same code talks to github.com, GitHub
Enterprise, or a local test server: GITHUB_API_URL, else GH_HOST (as https://HOST/api/v3), else
api.github.com; the token from GH_TOKEN or GITHUB_TOKEN; the repository from GITHUB_REPOSITORY.
TLS trust follows SSL_CERT_FILE (else REQUESTS_CA_BUNDLE, else the system store).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from mlops.config.errors import UserError

RETRIES = 5
PR_SETTING = "Allow GitHub Actions to create and approve pull requests"
MAX_WAIT = 120  # s: a longer Retry-After fails the run rather than holding a runner for an hour


@dataclass(frozen=True)
class GitHub:
    api: str
    repo: str  # owner/name
    token: str

    @classmethod
    def from_env(cls) -> GitHub | None:
        """None when no repository or token is configured: the caller then works locally."""
        repo = os.environ.get("GITHUB_REPOSITORY", "")
        token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN") or ""
        if not repo or not token:
            return None
        host = os.environ.get("GH_HOST")
        api = os.environ.get("GITHUB_API_URL") or (
            f"https://{host}/api/v3" if host else "https://api.github.com"
        )
        return cls(api=api.rstrip("/"), repo=repo, token=token)

    @property
    def owner(self) -> str:
        return self.repo.split("/")[0]

    def client(self):
        from github import Auth, Github, GithubRetry

        retry = GithubRetry(
            total=RETRIES,
            backoff_factor=1,
            allowed_methods=None,  # every method: see the module docstring for why POST is safe
            status_forcelist=[429, *range(500, 600)],  # GithubRetry adds 403 (rate limits only)
            secondary_rate_wait=MAX_WAIT,
        )
        verify = os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE") or True
        return Github(
            auth=Auth.Token(self.token),
            base_url=self.api,
            verify=verify,
            retry=retry,
            per_page=100,
            timeout=30,
            seconds_between_requests=None,
            seconds_between_writes=None,
            user_agent="mlops-retrain-pr",
        )

    def _repo(self):
        return self.client().get_repo(self.repo, lazy=True)

    def pull_for(self, branch: str, base: str):
        """The open PR from this repository's `branch` into `base`, or None (every page is read)."""
        pulls = self._call(
            lambda: list(self._repo().get_pulls(state="open", head=f"{self.owner}:{branch}", base=base))
        )
        return min(pulls, key=lambda p: p.number) if pulls else None

    def open_or_update(self, branch: str, base: str, title: str, body: str, opened_by_us: bool, wait: float):
        """(action, pull): update the open PR of `branch`, else open it.

        The run that did not create the branch (`opened_by_us` False) lost the race: the winner is about to
        open the PR, so it polls for up to `wait` seconds before opening one itself (the winner may have
        died). Two opens still make one PR: GitHub answers the second with 422, and that becomes an update."""
        from github import GithubException

        deadline = time.monotonic() + (0 if opened_by_us else wait)
        while (pull := self.pull_for(branch, base)) is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if pull is None:
            try:
                pull = self._call(
                    lambda: self._repo().create_pull(base=base, head=branch, title=title, body=body),
                    keep=(403, 422),
                )
                return "opened", pull
            except GithubException as err:
                if err.status == 403:
                    raise UserError(
                        f"GitHub API: opening the PR from {branch} was refused (HTTP 403: {_detail(err)}). "
                        f"GITHUB_TOKEN may open PRs only when the repository setting is on: Settings > "
                        f'Actions > General > Workflow permissions > "{PR_SETTING}" '
                        f"(docs/security.md); the branch {branch} is pushed: a PR can also be opened by hand"
                    ) from None
                if err.status != 422 or (pull := self.pull_for(branch, base)) is None:
                    raise UserError(
                        f"GitHub API: opening the PR from {branch} failed: {_detail(err)}"
                    ) from None
        self._call(lambda: pull.edit(title=title, body=body))
        return "updated", pull

    def _call(self, fn, keep: tuple[int, ...] = ()):
        """Run a PyGithub call; its errors become one clear line (statuses in `keep` propagate)."""
        from github import GithubException

        try:
            return fn()
        except GithubException as err:
            if err.status in keep:
                raise
            hint = (
                " (does the token have contents and pull-requests: write?)"
                if err.status in (401, 403, 404)
                else ""
            )
            raise UserError(
                f"GitHub API {self.api} ({self.repo}): HTTP {err.status}{hint}: {_detail(err)}"
            ) from None
        except OSError as err:  # connection refused, TLS, DNS; requests' errors are OSErrors
            raise UserError(f"GitHub API {self.api}: {err}") from None


def _detail(err) -> str:
    data = err.data if isinstance(err.data, dict) else {}
    messages = [e.get("message", "") for e in data.get("errors", []) if isinstance(e, dict)]
    return "; ".join(filter(None, [data.get("message", ""), *messages]))[:500] or str(err)[:500]
