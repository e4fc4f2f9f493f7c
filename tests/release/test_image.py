"""Immutable image tags: `model-v<N>-<sha7>`, and a push refused when the registry has the tag.

The registry side is a loopback OCI distribution endpoint that answers like ghcr.io: 401 with a Bearer
challenge, a token endpoint that wants the basic credentials, then 200 or 404 on HEAD of the manifest;
a package that does not exist yet answers 403 and, to a GET, the error code NAME_UNKNOWN (a fork's first
push to ghcr.io), a private one 403 DENIED."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops.cli import main
from mlops.config.errors import UserError
from mlops.release import image

TAGS = {"acme/model": {"model-v1-0123456"}}
CODES = {"acme/fresh": "NAME_UNKNOWN", "acme/private": "DENIED"}
DIGESTS = {
    "acme/model:model-v1-0123456": "sha256:" + "1" * 64
}  # what the registry serves for a tag  # answered 403 with this error code


@pytest.fixture
def registry():
    seen: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):  # the token endpoint, and a manifest's error body
            seen.append((self.command, self.path, self.headers.get("Authorization", "")))
            if self.path.startswith("/v2/"):
                repo = self.path.split("/v2/", 1)[1].rsplit("/manifests/", 1)[0]
                error = {"errors": [{"code": CODES.get(repo, "DENIED"), "message": "from the stub"}]}
                return self._answer(403, json.dumps(error).encode(), Content_Type="application/json")
            expected = "Basic " + base64.b64encode(b"bot:secret").decode()
            if self.headers.get("Authorization") != expected:
                return self._answer(401)
            return self._answer(200, json.dumps({"token": "registry-token"}).encode())

        def do_HEAD(self):
            seen.append((self.command, self.path, self.headers.get("Authorization", "")))
            if self.headers.get("Authorization") != "Bearer registry-token":
                realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
                challenge = f'Bearer realm="{realm}",service="test",scope="repository:x:pull"'
                return self._answer(401, WWW_Authenticate=challenge)
            repo = self.path.split("/v2/", 1)[1].rsplit("/manifests/", 1)
            if repo[0] in CODES:
                return self._answer(403)
            if repo[1] not in TAGS.get(repo[0], set()):
                return self._answer(404)
            return self._answer(200, Docker_Content_Digest=DIGESTS.get(f"{repo[0]}:{repo[1]}", ""))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_the_tag_names_the_model_version_and_the_commit():
    assert image.tag("3", "0123456789abcdef0123456789abcdef01234567") == "model-v3-0123456"
    for version, sha in (("v3", "0123456"), ("3", "main"), ("3; rm -rf /", "0123456")):
        with pytest.raises(UserError):
            image.tag(version, sha)


def test_an_existing_tag_is_refused_and_a_new_one_is_not(registry, monkeypatch, capsys):
    host, seen = registry
    monkeypatch.setenv("REGISTRY_USER", "bot")
    monkeypatch.setenv("REGISTRY_TOKEN", "secret")
    monkeypatch.setenv("REGISTRY_SCHEME", "http")
    args = ["image-tag", "--version", "1", "--sha", "0123456", "--repository", f"{host}/Acme/Model"]
    assert main([*args, "--refuse-existing"]) == 1
    assert "model-v1-0123456 already exists: image tags are immutable" in capsys.readouterr().err
    assert [method for method, _, _ in seen] == ["HEAD", "GET", "HEAD"]  # challenge, token, retry
    assert seen[-1][1] == "/v2/acme/model/manifests/model-v1-0123456"

    assert (
        main(
            [
                "image-tag",
                "--version",
                "2",
                "--sha",
                "0123456",
                "--repository",
                f"{host}/acme/model",
                "--refuse-existing",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == "model-v2-0123456"


def test_wrong_credentials_fail_clearly(registry, monkeypatch):
    host, _ = registry
    with pytest.raises(UserError, match=r"refused the credentials .* \(HTTP 401\)"):
        image.exists(f"{host}/acme/model", "model-v1-0123456", "bot", "wrong", scheme="http")


def test_a_package_that_does_not_exist_yet_is_absent_and_other_denials_are_errors(registry):
    """A fork's first push: ghcr.io may answer NAME_UNKNOWN instead of 404; DENIED must stay an error."""
    host, seen = registry
    assert image.exists(f"{host}/acme/fresh", "model-v1-0123456", "bot", "secret", scheme="http") is False
    assert ("GET", "/v2/acme/fresh/manifests/model-v1-0123456", "Bearer registry-token") in seen
    with pytest.raises(
        UserError, match=r"cannot tell whether .*acme/private:model-v1-0123456 exists: HTTP 403"
    ):
        image.exists(f"{host}/acme/private", "model-v1-0123456", "bot", "secret", scheme="http")


def test_the_pushed_digest_is_read_back(registry, monkeypatch, capsys):
    """After the push the registry must serve the digest the push reported: another one means the tag
    was pushed again in between (ghcr.io tags are mutable), and the release stops."""
    host, _ = registry
    monkeypatch.setenv("REGISTRY_USER", "bot")
    monkeypatch.setenv("REGISTRY_TOKEN", "secret")
    monkeypatch.setenv("REGISTRY_SCHEME", "http")
    args = ["image-tag", "--version", "1", "--sha", "0123456", "--repository", f"{host}/acme/model"]
    assert main([*args, "--expect-digest", "sha256:" + "1" * 64]) == 0
    assert main([*args, "--expect-digest", "sha256:" + "2" * 64]) == 1
    err = capsys.readouterr().err
    assert "the registry serves sha256:1111" in err and "the tag was pushed again" in err
    args[2] = "2"  # model-v2-0123456: never pushed
    assert main([*args, "--expect-digest", "sha256:" + "1" * 64]) == 1
    assert "is not in the registry after the push" in capsys.readouterr().err


def _mar(store, runtime=None, features=("a", "b")):
    import zipfile

    store.mkdir(parents=True, exist_ok=True)
    spec = {"model_name": "m", "features": list(features), "max_batch_rows": 10}
    spec.update({"runtime": runtime} if runtime else {})
    with zipfile.ZipFile(store / "m.mar", "w") as mar:
        mar.writestr("MAR-INF/MANIFEST.json", json.dumps({"model": {"modelName": "m"}}))
        mar.writestr("serve.json", json.dumps(spec))


@pytest.mark.parametrize(
    ("runtime", "engine", "dockerfile", "ignorefile"),
    [
        (None, "docker", "Dockerfile", False),  # a .mar archived before serve.runtime existed
        ("torchserve", "podman", "Dockerfile", False),
        ("kserve", "docker", "Dockerfile.kserve", False),  # BuildKit reads Dockerfile.kserve.dockerignore
        ("kserve", "podman", "Dockerfile.kserve", True),
    ],
)
def test_the_release_builds_the_image_of_the_archived_runtime(
    tmp_path, monkeypatch, runtime, engine, dockerfile, ignorefile
):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the Dockerfiles and their ignore files
    _mar(tmp_path / "store", runtime)
    cmd = image.build_command(
        engine, "r/m:model-v3-abc1234", "3", "abc1234", tmp_path / "store", "--pull=never -q"
    )
    assert cmd[:4] == [engine, "build", "--pull=never", "-q"]
    assert cmd[cmd.index("-f") + 1] == dockerfile and Path(dockerfile).is_file()
    assert ("--ignorefile" in cmd) == ignorefile
    assert {"MODEL_NAME=m", "MODEL_VERSION=3", "GIT_SHA=abc1234"} <= set(cmd)
    assert cmd[-3:] == ["-t", "r/m:model-v3-abc1234", "."]


def test_the_image_request_limit_is_sized_for_the_archived_features(tmp_path):
    """A forker's table is not the bundled one: the Dockerfile's default limit must not be what ships."""
    from serve.settings import max_request_bytes

    sizes = []
    for width in (2, 200):
        _mar(tmp_path / str(width), features=[f"column_{i}" for i in range(width)])
        cmd = image.build_command("docker", "r:t", "1", "abc1234", tmp_path / str(width))
        [size] = [a.split("=")[1] for a in cmd if a.startswith("MAX_REQUEST_SIZE=")]
        assert int(size) == max_request_bytes([f"column_{i}" for i in range(width)], 10)
        sizes.append(int(size))
    assert sizes[1] > sizes[0]


def test_image_build_refuses_an_unknown_runtime_or_no_single_mar(tmp_path):
    with pytest.raises(UserError, match=r"exactly one \.mar"):
        image.build_command("docker", "r:t", "1", "abc1234", tmp_path)
    _mar(tmp_path, "mlserver")
    with pytest.raises(UserError, match="unknown serve runtime 'mlserver'"):
        image.build_command("docker", "r:t", "1", "abc1234", tmp_path)


def test_archive_records_the_runtime_the_image_is_built_for(trained_repo, tmp_path, monkeypatch):
    from mlops.release import archive
    from serve import server

    monkeypatch.chdir(trained_repo)  # a clean clone has no artifacts/model: use the shared trained one
    params = archive.load_params()
    params = replace(params, serve=replace(params.serve, runtime="kserve"))
    archive.build(version="3", store=tmp_path, params=params)
    assert image.archived_model(tmp_path)[1] == "kserve"
    params = replace(params, serve=replace(params.serve, max_batch_delay=0))  # TorchServe 0.12: 100 ms, not 0
    with pytest.raises(UserError, match="max_batch_delay must be >= 1"):
        server.serve_settings(params)
