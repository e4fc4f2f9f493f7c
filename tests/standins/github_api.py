"""A GitHub REST API test server: TLS on 127.0.0.1, in-memory state, every request recorded.

CML, gh and act's `--github-instance` treat any host but github.com as GitHub Enterprise and call
`https://HOST/api/v3/...`, so the server speaks TLS with a self-signed certificate made at test time.
It implements the endpoints our workflows and their tools call: issue (PR) comments, commit
comments, pull requests (create, list with head/base/state filters, get, update), PRs of a commit,
users, the repository, and an asset upload (CML's `--publish-url`). Plus a small git model for
`mlops deploy propose`: refs (get, create, move), and file contents (get, create or update = one commit).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
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
class Redirect:
    """A 302 to `location` (the Actions artifact download answers one to a signed blob URL)."""

    location: str


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
    runs: list[dict] = field(default_factory=list)  # workflow runs (add_run), with "artifacts": {name: zip}
    assets: dict[str, Asset] = field(default_factory=dict)  # what CML published, by name in its URL
    refs: dict[str, str] = field(default_factory=dict)  # "owner/name refs/heads/x" -> commit sha
    commits: dict[str, dict] = field(default_factory=dict)  # sha -> {"files": {path: bytes}, "parents": []}
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

    def add_run(
        self,
        repo: str,
        head_sha: str,
        artifacts: dict[str, bytes],
        path: str = ".github/workflows/pr.yml",
        conclusion: str = "success",
        event: str = "pull_request",
        run_id: int | None = None,
        head_branch: str | None = None,
    ) -> dict:
        """A finished workflow run with its artifacts (name -> zip bytes), as the Actions API lists it.
        `run_id`: the id of a run under act (act numbers every run 1), so that a printed fix names it."""
        with self.lock:
            run_id = next(self.state.ids) if run_id is None else run_id
            run = {
                "repo": repo,
                "id": run_id,
                "head_sha": head_sha,
                "head_branch": head_branch,
                "path": path,
                "event": event,
                "status": "completed",
                "conclusion": conclusion,
                "run_attempt": 1,
                "html_url": f"{self.url}/{repo}/actions/runs/{run_id}",
                "artifacts": dict(artifacts),
                "artifact_ids": {name: next(self.state.ids) for name in artifacts},
            }
            self.state.runs.append(run)
            return run

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

    def add_branch(self, repo: str, branch: str, files: dict[str, bytes], message: str = "seed") -> str:
        """A branch whose tip commit holds exactly `files`; returns the commit sha."""
        with self.lock:
            sha = self._commit(dict(files), [], message)
            self.state.refs[f"{repo} refs/heads/{branch}"] = sha
            return sha

    def file_at(self, repo: str, branch: str, path: str) -> bytes | None:
        """A file's bytes at the tip of `branch` (None: no such branch or file)."""
        sha = self.state.refs.get(f"{repo} refs/heads/{branch}")
        return self.state.commits[sha]["files"].get(path) if sha else None

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

    def _commit(self, files: dict[str, bytes], parents: list[str], message: str) -> str:
        sha = hashlib.sha1(f"{parents} {sorted(files.items())} {message} {next(self.state.ids)}".encode())
        self.state.commits[sha.hexdigest()] = {"files": files, "parents": parents, "message": message}
        return sha.hexdigest()

    def _ancestors(self, sha: str) -> set[str]:
        seen, todo = set(), [sha]
        while todo:
            if (c := todo.pop()) not in seen:
                seen.add(c)
                todo += self.state.commits[c]["parents"]
        return seen

    def _ref(self, repo: str, ref: str, sha: str) -> dict:
        url = f"{self.api_url}/repos/{repo}/git/{ref}"
        return {"ref": ref, "url": url, "object": {"sha": sha, "type": "commit"}}

    def _git_data(self, req: Request) -> tuple[int, Any] | None:
        """Refs and contents, answering what github.com answers for the same mistakes (422, 409, 404)."""
        s, p = self.state, req.path
        if (m := re.fullmatch(r"/repos/([^/]+/[^/]+)/git/ref/(heads/.+)", p)) and req.method == "GET":
            sha = s.refs.get(f"{m[1]} refs/{m[2]}")
            if sha is None:
                return 404, {"message": "Not Found"}
            return 200, self._ref(m[1], f"refs/{m[2]}", sha)
        if (m := re.fullmatch(r"/repos/([^/]+/[^/]+)/git/refs", p)) and req.method == "POST":
            ref, sha = str(req.body.get("ref", "")), str(req.body.get("sha", ""))
            if not ref.startswith("refs/") or ref.count("/") < 2:
                return 422, {"message": f"{ref} is not a valid ref name."}
            if sha not in s.commits:
                return 422, {"message": "Object does not exist"}
            if f"{m[1]} {ref}" in s.refs:
                return 422, {"message": "Reference already exists"}
            s.refs[f"{m[1]} {ref}"] = sha
            return 201, self._ref(m[1], ref, sha)
        if (m := re.fullmatch(r"/repos/([^/]+/[^/]+)/git/refs/(heads/.+)", p)) and req.method == "PATCH":
            key, sha = f"{m[1]} refs/{m[2]}", str(req.body.get("sha", ""))
            if key not in s.refs:
                return 422, {"message": "Reference does not exist"}
            if sha not in s.commits:
                return 422, {"message": "Object does not exist"}
            if not req.body.get("force") and s.refs[key] not in self._ancestors(sha):
                return 422, {"message": "Update is not a fast forward"}
            s.refs[key] = sha
            return 200, self._ref(m[1], f"refs/{m[2]}", sha)
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/contents/(.+)", p):
            repo, path = m[1], m[2]
            if req.method == "GET":
                ref = req.query.get("ref", "main")
                sha = s.refs.get(f"{repo} refs/heads/{ref}", ref if ref in s.commits else None)
                if sha is None:
                    return 404, {"message": f"No commit found for the ref {ref}"}
                data = s.commits[sha]["files"].get(path)
                if data is None:
                    return 404, {"message": "Not Found"}
                return 200, _content(path, data)
            if req.method == "PUT":
                body = req.body if isinstance(req.body, dict) else {}
                branch = body.get("branch") or "main"
                key = f"{repo} refs/heads/{branch}"
                if not body.get("message") or "content" not in body:
                    return 422, {"message": 'Invalid request.\n\n"message" and "content" are required.'}
                if key not in s.refs:
                    return 404, {"message": f"Branch {branch} not found"}
                try:
                    data = base64.b64decode(str(body["content"]), validate=True)
                except (binascii.Error, ValueError):
                    return 422, {"message": "content is not valid Base64"}
                files = dict(s.commits[s.refs[key]]["files"])
                if path in files and not body.get("sha"):
                    return 422, {"message": 'Invalid request.\n\n"sha" wasn\'t supplied.'}
                current = _blob_sha(files[path]) if path in files else None
                if body.get("sha") and body["sha"] != current:
                    return 409, {"message": f"{path} does not match {body['sha']}"}
                files[path] = data
                s.refs[key] = self._commit(files, [s.refs[key]], body["message"])
                answer = {"content": _content(path, data), "commit": {"sha": s.refs[key]}}
                return (200 if current else 201), answer
        return None

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
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs", p):
                q = req.query
                runs = [
                    {k: v for k, v in run.items() if k not in ("artifacts", "artifact_ids", "repo")}
                    for run in s.runs
                    if run["repo"] == m[1]
                    and q.get("head_sha", run["head_sha"]) == run["head_sha"]
                    and q.get("event", run["event"]) == run["event"]
                    and q.get("status", run["conclusion"]) in (run["conclusion"], run["status"])
                ]
                return 200, {"total_count": len(runs), "workflow_runs": runs}
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)", p):  # "Get a workflow run"
                found = [r for r in s.runs if r["repo"] == m[1] and r["id"] == int(m[2])]
                if not found:
                    return 404, {"message": "Not Found"}
                run = {k: v for k, v in found[0].items() if k not in ("artifacts", "artifact_ids", "repo")}
                return 200, {**run, "repository": {"full_name": m[1]}}
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)/artifacts", p):
                found = [r for r in s.runs if r["repo"] == m[1] and r["id"] == int(m[2])]
                if not found:
                    return 404, {"message": "Not Found"}
                run = found[0]
                items = [
                    {
                        "id": run["artifact_ids"][name],
                        "name": name,
                        "expired": False,
                        "size_in_bytes": len(data),
                        "archive_download_url": f"{self.api_url}/repos/{m[1]}/actions/artifacts/"
                        f"{run['artifact_ids'][name]}/zip",
                    }
                    for name, data in run["artifacts"].items()
                    if req.query.get("name", name) == name
                ]
                return 200, {"total_count": len(items), "artifacts": items}
            if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/artifacts/(\d+)/zip", p):
                for run in s.runs:
                    for aid in run["artifact_ids"].values():
                        if run["repo"] == m[1] and aid == int(m[2]):
                            # like GitHub: a redirect to a signed URL, which must be fetched without the token
                            return 302, Redirect(f"{self.url}/blobs/{aid}?sig=signed")
                return 404, {"message": "Not Found"}
            if m := re.fullmatch(r"/blobs/(\d+)", p):
                if "Authorization" in req.headers:  # the blob store refuses a second credential
                    return 400, Raw(b"authorization header not allowed with a signed URL")
                for run in s.runs:
                    for name, aid in run["artifact_ids"].items():
                        if aid == int(m[1]):
                            return 200, Raw(run["artifacts"][name], "application/zip")
                return 404, Raw(b"")
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
            if (answer := self._git_data(req)) is not None:
                return answer
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


def _blob_sha(data: bytes) -> str:
    """The git blob id GitHub reports as a file's `sha`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _content(path: str, data: bytes) -> dict:
    return {
        "type": "file",
        "encoding": "base64",
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "size": len(data),
        "sha": _blob_sha(data),
        "content": base64.b64encode(data).decode(),
    }


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
            if isinstance(payload, Redirect):
                headers["Location"] = payload.location
                payload = Raw(b"")
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
