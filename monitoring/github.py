"""A minimal GitHub REST client (standard library only) for the retraining PR.

It follows the variables GitHub Actions and `gh` use, so the same code talks to github.com, GitHub
Enterprise, or a local test server: GITHUB_API_URL, else GH_HOST (as https://HOST/api/v3), else
api.github.com; the token from GH_TOKEN or GITHUB_TOKEN; the repository from GITHUB_REPOSITORY.
TLS trust follows SSL_CERT_FILE like every OpenSSL client.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote

from mlops.errors import UserError


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

    def call(self, method: str, path: str, body: dict | None = None):
        url = f"{self.api}/repos/{self.repo}/{path.lstrip('/')}"
        request = urllib.request.Request(
            url,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
                "User-Agent": "mlops-retrain-pr",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                data = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:500]
            hint = " (does the token have pull-requests: write?)" if err.code in (401, 403, 404) else ""
            raise UserError(f"GitHub API {method} {url}: HTTP {err.code}{hint}: {detail}") from None
        except urllib.error.URLError as err:
            raise UserError(f"GitHub API {method} {url}: {err.reason}") from None
        return json.loads(data) if data else None

    def open_pull(self, base: str, branch_prefix: str) -> dict | None:
        """The open PR into `base` from one of this repository's branches starting with the prefix."""
        pulls = self.call("GET", f"pulls?state=open&base={quote(base)}&per_page=100") or []
        for pull in sorted(pulls, key=lambda p: p["number"]):
            head = pull.get("head") or {}
            same_repo = (head.get("repo") or {}).get("full_name", self.repo) == self.repo
            if same_repo and str(head.get("ref", "")).startswith(branch_prefix):
                return pull
        return None
