"""A GitHub REST API test server: TLS on 127.0.0.1, in-memory state, every request recorded.

CML, gh and act's `--github-instance` treat any host but github.com as GitHub Enterprise and call
`https://HOST/api/v3/...`, so the server speaks TLS with a self-signed certificate made at test time.
It implements the endpoints our workflows and their tools call: issue (PR) comments, commit
comments, pull requests (create, list with head/base/state filters, get, update), PRs of a commit,
users, the repository, and an asset upload (CML's `--publish-url`).
"""

from __future__ import annotations

import itertools
import json
import re
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed cert for 127.0.0.1, plus a CA bundle (system CAs + it) for SSL_CERT_FILE and friends.

    The bundle keeps the system CAs so pip and other real HTTPS clients in the run still work."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, bundle = directory / "cert.pem", directory / "key.pem", directory / "ca-bundle.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    system = SYSTEM_CA.read_text() if SYSTEM_CA.exists() else ""
    bundle.write_text(system + ("\n" if system else "") + cert.read_text())
    return cert, key, bundle


@dataclass
class Raw:
    """A non-JSON answer: CML reads an asset upload's URL from the body as plain text."""

    body: bytes
    content_type: str = "text/plain; charset=utf-8"


@dataclass
class Page:
    """A list answer that GitHub paginates: `per_page` (default 30, at most 100) and `page`, with a Link
    header. CML 0.20 reads only the first page of a PR's comments, and the server must not hide that."""

    items: list


@dataclass
class Asset:
    filename: str  # from Content-Disposition: the local file CML uploaded
    content_type: str
    data: bytes


@dataclass
class Request:
    method: str
    path: str  # without /api/v3 and without the query string
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class State:
    """What the server knows. Tests may pre-load it (e.g. `add_pull`) and read it afterwards."""

    base: str = ""  # https://127.0.0.1:PORT
    requests: list[Request] = field(default_factory=list)
    issue_comments: list[dict] = field(default_factory=list)
    commit_comments: list[dict] = field(default_factory=list)
    pulls: list[dict] = field(default_factory=list)
    assets: dict[str, Asset] = field(default_factory=dict)  # what CML published, by name in its URL
    ids: itertools.count = field(default_factory=lambda: itertools.count(1000))


class FakeGitHub:
    """`with FakeGitHub(*make_certificate(dir)) as gh:`; `gh.host` is what act's --github-instance takes."""

    def __init__(self, cert: Path, key: Path, ca_bundle: Path, login: str = "github-actions[bot]"):
        self.ca_bundle = ca_bundle  # for SSL_CERT_FILE & co. of clients
        self.state = State()
        self.login = login
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"https://{self.host}"
        self.api_url = f"{self.url}/api/v3"
        self.state.base = self.url
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    # -- helpers for tests ---------------------------------------------------------------------------
    def add_pull(
        self,
        repo: str,
        head: str,
        base: str = "main",
        head_sha: str = "",
        title: str = "PR",
        body: str = "",
        head_repo: str | None = None,
        number: int | None = None,
    ) -> dict:
        """Register an open PR (as GitHub would before a pull_request event fires); returns it."""
        with self.lock:
            return self._new_pull(
                repo, {"head": head, "base": base, "title": title, "body": body}, head_sha, head_repo, number
            )

    def add_comment(self, repo: str, number: int, body: str, login: str = "reviewer") -> dict:
        """A comment by a person on an issue or PR (what CML must not mistake for its own)."""
        with self.lock:
            comment = self._comment(
                body, f"{self.api_url}/repos/{repo}/issues/comments", repo=repo, number=number
            )
            comment["user"] = {"login": login}
            self.state.issue_comments.append(comment)
            return comment

    def comments(self, repo: str, number: int) -> list[dict]:
        return [c for c in self.state.issue_comments if c["repo"] == repo and c["number"] == number]

    def unpublished(self, body: str) -> str:
        """A comment `body` as the markdown file CML was given: each published URL back to the uploaded
        file's name, and the watermark CML appended (`\n\n![](…)`, plus the newline its markdown writer
        ends with when it published) removed. Raises if a link names no upload of this server."""
        body = re.sub(
            r"\n\n!\[\]\(https://cml\.dev/watermark\.png#[0-9a-f]+ \"CML watermark[^\"]*\"\)(\n?)$",
            r"\1",
            body,
        )

        def local(m: re.Match) -> str:
            return self.state.assets[m[1]].filename

        return re.sub(rf"{re.escape(self.url)}/assets/(asset-\d+)\?[^)\s]*", local, body)

    def calls(self, method: str, pattern: str) -> list[Request]:
        """Recorded requests whose path fully matches the regex `pattern`."""
        return [r for r in self.state.requests if r.method == method and re.fullmatch(pattern, r.path)]

    # -- state changes (callers hold the lock) ---------------------------------------------------------
    def _new_pull(
        self,
        repo: str,
        body: dict,
        head_sha: str = "",
        head_repo: str | None = None,
        number: int | None = None,
    ) -> dict:
        number = number or 1 + max((p["number"] for p in self.state.pulls if p["repo"] == repo), default=0)
        owner = repo.split("/")[0]
        head = str(body.get("head", ""))
        head_ref = head.split(":", 1)[1] if ":" in head else head
        pull = {
            "repo": repo,
            "id": next(self.state.ids),
            "number": number,
            "state": "open",
            "title": body.get("title", ""),
            "body": body.get("body", ""),
            "draft": bool(body.get("draft", False)),
            "html_url": f"{self.url}/{repo}/pull/{number}",
            "url": f"{self.api_url}/repos/{repo}/pulls/{number}",
            "head": {
                "ref": head_ref,
                "sha": head_sha,
                "label": f"{owner}:{head_ref}",
                "repo": {"full_name": head_repo or repo},
            },
            "base": {"ref": body.get("base", "main"), "repo": {"full_name": repo}},
            "user": {"login": self.login},
            "labels": [{"name": n} for n in body.get("labels", [])],
        }
        self.state.pulls.append(pull)
        return pull

    def _comment(self, body: str, url: str, **extra) -> dict:
        cid = next(self.state.ids)
        return {
            "id": cid,
            "body": body,
            "user": {"login": self.login},
            "url": f"{url}/{cid}",
            "html_url": f"{self.url}/comment/{cid}",
            **extra,
        }

    # -- routing -----------------------------------------------------------------------------------------
    def handle(self, req: Request) -> tuple[int, Any]:
        """One flat routing table: (status, JSON payload) for a request."""
        s = self.state
        p = req.path
        with self.lock:
            s.requests.append(req)
            if m := re.fullmatch(r"/users/(.+)", p):  # act's default actor is "nektos/act"
                return 200, {"login": m[1], "id": 1, "type": "User"}
            if p == "/user":
                return 200, {"login": self.login, "id": 1, "type": "Bot"}
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)", p):
                return 200, {
                    "full_name": m[1],
                    "default_branch": "main",
                    "private": False,
                    "html_url": f"{self.url}/{m[1]}",
                    "permissions": {"push": True},
                }
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", p):
                repo, number = m[1], int(m[2])
                if req.method == "GET":
                    return 200, Page(
                        [c for c in s.issue_comments if c["repo"] == repo and c["number"] == number]
                    )
                if req.method == "POST":
                    comment = self._comment(
                        req.body["body"],
                        f"{self.api_url}/repos/{repo}/issues/comments",
                        repo=repo,
                        number=number,
                    )
                    s.issue_comments.append(comment)
                    return 201, comment
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", p):
                return self._one_comment(s.issue_comments, m[1], int(m[2]), req)
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/comments", p):
                repo, sha = m[1], m[2]
                if req.method == "GET":
                    return 200, Page(
                        [c for c in s.commit_comments if c["repo"] == repo and c["commit_id"] == sha]
                    )
                if req.method == "POST":
                    comment = self._comment(
                        req.body["body"], f"{self.api_url}/repos/{repo}/comments", repo=repo, commit_id=sha
                    )
                    s.commit_comments.append(comment)
                    return 201, comment
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/comments/(\d+)", p):
                return self._one_comment(s.commit_comments, m[1], int(m[2]), req)
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/pulls", p):
                return 200, [pr for pr in s.pulls if pr["repo"] == m[1] and pr["head"]["sha"] == m[2]]
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/pulls", p):
                repo = m[1]
                if req.method == "POST":
                    head = str(req.body.get("head", ""))
                    clash = [
                        pr
                        for pr in s.pulls
                        if pr["repo"] == repo
                        and pr["state"] == "open"
                        and pr["head"]["ref"] == head.split(":")[-1]
                    ]
                    if clash:  # what GitHub answers for a second PR from the same branch
                        return 422, {
                            "message": "Validation Failed",
                            "errors": [{"message": f"A pull request already exists for {head}."}],
                        }
                    return 201, self._new_pull(repo, req.body)
                return 200, Page(self._list_pulls(repo, req.query))
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/pulls/(\d+)", p):
                found = [pr for pr in s.pulls if pr["repo"] == m[1] and pr["number"] == int(m[2])]
                if not found:
                    return 404, {"message": "Not Found"}
                if req.method == "PATCH":
                    found[0].update(
                        {k: v for k, v in req.body.items() if k in ("title", "body", "state", "base")}
                    )
                return 200, found[0]
            if p == "/telemetry" and req.method == "POST":  # CML's analytics, when not turned off
                return 200, {}
            if p == "/assets" and req.method == "POST":  # CML's --publish-url: answers the URL as text
                if not isinstance(req.body, bytes) or not req.body:
                    return 400, Raw(b"")  # CML then fails with "Empty response from asset backend"
                name = f"asset-{next(s.ids)}"
                filename = re.search(r'filename="([^"]*)"', req.headers.get("Content-Disposition", ""))
                kind = req.headers.get("Content-Type", "")
                s.assets[name] = Asset(filename[1] if filename else "", kind, req.body)
                return 201, Raw(f"{self.url}/assets/{name}".encode())
            if (m := re.fullmatch(r"/assets/(asset-\d+)", p)) and m[1] in s.assets:
                asset = s.assets[m[1]]
                return 200, Raw(asset.data, asset.content_type)
            return 404, {"message": f"test server: no route for {req.method} {p}"}

    @staticmethod
    def _one_comment(comments: list[dict], repo: str, cid: int, req: Request) -> tuple[int, Any]:
        """GET or PATCH (the body) of one issue or commit comment."""
        found = [c for c in comments if c["repo"] == repo and c["id"] == cid]
        if not found:
            return 404, {"message": "Not Found"}
        if req.method == "PATCH":
            found[0]["body"] = req.body["body"]
        return 200, found[0]

    def _list_pulls(self, repo: str, query: dict[str, str]) -> list[dict]:
        state = query.get("state", "open")
        pulls = [pr for pr in self.state.pulls if pr["repo"] == repo and state in ("all", pr["state"])]
        if head := query.get("head"):  # GitHub's filter is "owner:branch"
            pulls = [pr for pr in pulls if pr["head"]["label"] == head or pr["head"]["ref"] == head]
        if base := query.get("base"):
            pulls = [pr for pr in pulls if pr["base"]["ref"] == base]
        return pulls


def _paginate(items: list, query: dict[str, str], url: str) -> tuple[list, str]:
    """GitHub's list pagination: one page of `items`, and the Link header (empty for a single page)."""
    try:
        per_page = min(max(int(query.get("per_page", 30)), 1), 100)
        page = max(int(query.get("page", 1)), 1)
    except ValueError:
        per_page, page = 30, 1
    last = max(1, -(-len(items) // per_page))
    rest = {k: v for k, v in query.items() if k not in ("page", "per_page")}

    def ref(n: int, rel: str) -> str:
        return f'<{url}?{urlencode({**rest, "per_page": per_page, "page": n})}>; rel="{rel}"'

    links = []
    if page < last:
        links += [ref(page + 1, "next"), ref(last, "last")]
    if page > 1:
        links += [ref(1, "first"), ref(page - 1, "prev")]
    return items[(page - 1) * per_page : page * per_page], ", ".join(links)


def _handler(server: FakeGitHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path.removeprefix("/api/v3").rstrip("/") or "/"
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = raw
            if "json" in (self.headers.get("Content-Type") or "") or (raw[:1] in (b"{", b"[")):
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = raw
            if "json" not in (self.headers.get("Content-Type") or "") and path == "/assets":
                body = raw  # an upload is bytes, whatever its first byte
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            status, payload = server.handle(Request(self.command, path, query, body, dict(self.headers)))
            headers = {"Content-Type": "application/json; charset=utf-8"}
            if isinstance(payload, Page):
                payload, link = _paginate(payload.items, query, f"{server.api_url}{path}")
                if link:
                    headers["Link"] = link
            if isinstance(payload, Raw):
                out, headers["Content-Type"] = payload.body, payload.content_type
            else:
                out = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, *args) -> None:  # requests are recorded in state instead
            pass

    return Handler
