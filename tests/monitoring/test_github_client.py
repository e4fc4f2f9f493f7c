"""The GitHub client of retrain-pr: Retry-After on 403/429 is honoured and every page is read.

A plain-HTTP stand-in on 127.0.0.1 scripts the answers that the shared GitHub API test server does not
give (rate limits, a second page); PyGithub takes any base URL."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops.github.client import GitHub


def pull(number: int, ref: str) -> dict:
    return {
        "number": number,
        "state": "open",
        "html_url": f"https://example/pull/{number}",
        "head": {"ref": ref, "label": f"acme:{ref}", "repo": {"full_name": "acme/model"}},
        "base": {"ref": "main"},
    }


class Scripted:
    """Answers the scripted (status, headers, body) in order, then the last one forever; records times."""

    def __init__(self, answers: list[tuple[int, dict, object]]):
        self.answers, self.seen = answers, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append((time.monotonic(), self.path))
                status, headers, body = outer.answers[min(len(outer.seen), len(outer.answers)) - 1]
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(key, value.replace("BASE", outer.url))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status", [403, 429])
def test_retry_after_is_honoured(status):
    limited = {"message": "You have exceeded a secondary rate limit."}
    server = Scripted([(status, {"Retry-After": "1"}, limited), (200, {}, [pull(7, "retrain/main")])])
    try:
        found = GitHub(api=server.url, repo="acme/model", token="t").pull_for("retrain/main", "main")
    finally:
        server.close()
    assert found.number == 7
    (first, _), (second, path) = server.seen
    assert second - first >= 0.9  # waited the Retry-After second before asking again
    assert "head=acme%3Aretrain%2Fmain" in path and "base=main" in path


def test_every_page_is_read():
    """An older PR on page 2 is the one retrain-pr updates: the lowest number wins."""
    page2 = "<BASE/repos/acme/model/pulls?page=2>"
    link = {"Link": f'{page2}; rel="next", {page2}; rel="last"'}
    server = Scripted([(200, link, [pull(9, "retrain/main")]), (200, {}, [pull(3, "retrain/main")])])
    try:
        found = GitHub(api=server.url, repo="acme/model", token="t").pull_for("retrain/main", "main")
    finally:
        server.close()
    assert found.number == 3 and len(server.seen) == 2 and "page=2" in server.seen[1][1]


def test_a_refused_pr_names_the_repository_setting():
    """GITHUB_TOKEN gets 403 on POST /pulls while the "Allow GitHub Actions to create ..." setting is off."""
    from mlops.config.errors import UserError

    refused = {"message": "GitHub Actions is not permitted to create or approve pull requests."}
    server = Scripted([(200, {}, []), (403, {}, refused)])
    try:
        with pytest.raises(UserError) as err:
            GitHub(api=server.url, repo="acme/model", token="t").open_or_update(
                "retrain/main", "main", "t", "b", opened_by_us=True, wait=0
            )
    finally:
        server.close()
    assert "Allow GitHub Actions to create and approve pull requests" in str(err.value)
    assert "not permitted" in str(err.value) and server.seen[-1][1].endswith("/repos/acme/model/pulls")
