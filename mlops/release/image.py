"""Immutable image tags: `model-v<N>-<sha7>`, never pushed twice; deployments name the digest.

A tag names one build of one model version at one commit. A `serve/**` change re-builds the same model
version at a new commit, so it gets a new tag instead of overwriting `model-v<N>`. Before pushing, the
release job asks the registry (OCI distribution API, the Docker token flow ghcr.io uses) whether the tag
exists, and refuses if it does: a re-run of the same commit must not replace what was deployed.
A package that does not exist yet (a fork's very first push) is absent, whether the registry says so with
a 404 or, as ghcr.io may, with another status and the error code NAME_UNKNOWN; every other denial is an
error, never "absent" (a wrong token must not look like a free tag).
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from mlops.config.errors import UserError
from serve.settings import max_request_bytes

VERSION = re.compile(r"\d+")
SHA = re.compile(r"[0-9a-f]{7,40}")


def tag(version: str, sha: str) -> str:
    if not VERSION.fullmatch(str(version)):
        raise UserError(f"model version must be a number, got {version!r}")
    if not SHA.fullmatch(sha):
        raise UserError(f"git sha must be 7-40 lowercase hex digits, got {sha!r}")
    return f"model-v{version}-{sha[:7]}"


def _split(repository: str) -> tuple[str, str]:
    """'ghcr.io/Owner/Name' -> ('ghcr.io', 'owner/name'); a host has a dot, a colon or is localhost."""
    host, _, name = repository.partition("/")
    if not name or not ("." in host or ":" in host or host == "localhost"):
        raise UserError(f"image repository must start with a registry host, got {repository!r}")
    return host, name.lower()


def _bearer(challenge: str, user: str, secret: str) -> str | None:
    """Answer a `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge with a token."""
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if "realm" not in fields:
        return None
    query = urllib.parse.urlencode({k: v for k, v in fields.items() if k in ("service", "scope")})
    request = urllib.request.Request(f"{fields['realm']}?{query}")
    if secret:
        basic = base64.b64encode(f"{user or 'token'}:{secret}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    return body.get("token") or body.get("access_token")


ABSENT_CODES = {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"}  # OCI distribution spec error codes


def _error_codes(body: bytes) -> set[str]:
    """The `errors[].code` of an OCI distribution error body (empty when it is not one)."""
    try:
        errors = json.loads(body or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        return set()
    return {str(e.get("code", "")).upper() for e in errors if isinstance(e, dict)}


def _says_absent(url: str, headers: dict[str, str]) -> bool:
    """HEAD answers carry no body: GET the same URL to read the error code of a non-404 answer."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30):
            return False
    except urllib.error.HTTPError as err:
        return bool(_error_codes(err.read()) & ABSENT_CODES)


def exists(repository: str, image_tag: str, user: str = "", secret: str = "", scheme: str = "https") -> bool:
    """Whether `repository:image_tag` is in its registry (HEAD of the manifest; 404 = no)."""
    return served_digest(repository, image_tag, user, secret, scheme) is not None


def served_digest(
    repository: str, image_tag: str, user: str = "", secret: str = "", scheme: str = "https"
) -> str | None:
    """The manifest digest the registry serves for `repository:image_tag` (its Docker-Content-Digest
    header), "" when it answers without one, None when the tag is absent."""
    host, name = _split(repository)
    url = f"{scheme}://{host}/v2/{name}/manifests/{image_tag}"
    accept = ", ".join(
        [
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]
    )
    headers = {"Accept": accept}
    for _ in range(2):
        request = urllib.request.Request(url, method="HEAD", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.headers.get("Docker-Content-Digest", "")
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            challenge = err.headers.get("WWW-Authenticate", "")
            if err.code == 401 and "Authorization" not in headers and challenge.lower().startswith("bearer"):
                try:
                    token = _bearer(challenge, user, secret)
                except urllib.error.HTTPError as refused:
                    if _error_codes(refused.read()) & ABSENT_CODES:
                        return None  # no such package yet: nothing can be overwritten
                    raise UserError(
                        f"the registry refused the credentials for {repository} (HTTP {refused.code}): "
                        "check REGISTRY_USER / REGISTRY_TOKEN"
                    ) from None
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                    continue
            if _says_absent(url, headers):
                return None
            raise UserError(f"cannot tell whether {repository}:{image_tag} exists: HTTP {err.code}") from None
    raise UserError(f"cannot tell whether {repository}:{image_tag} exists: authentication refused")


def refuse_existing(repository: str, image_tag: str) -> None:
    """Fail when the tag is already in the registry: tags are never overwritten."""
    user, secret = os.environ.get("REGISTRY_USER", ""), os.environ.get("REGISTRY_TOKEN", "")
    scheme = os.environ.get("REGISTRY_SCHEME", "https")  # http only for a loopback test registry
    if exists(repository, image_tag, user, secret, scheme):
        raise UserError(
            f"{repository}:{image_tag} already exists: image tags are immutable (a re-run of this commit?). "
            "Deploy the existing image by its digest, or release a new commit."
        )


def verify_pushed(repository: str, image_tag: str, digest: str) -> None:
    """After the push: the registry must serve exactly the digest the push reported for the tag.

    Another digest means the tag was pushed again in between (tags on ghcr.io are mutable, and anything
    with `packages: write` can push): deploying the reported digest would deploy what was built here,
    but the tag would name something else, so the release stops."""
    user, secret = os.environ.get("REGISTRY_USER", ""), os.environ.get("REGISTRY_TOKEN", "")
    scheme = os.environ.get("REGISTRY_SCHEME", "https")
    served = served_digest(repository, image_tag, user, secret, scheme)
    if served is None:
        raise UserError(f"{repository}:{image_tag} is not in the registry after the push")
    if served != digest:
        raise UserError(
            f"{repository}:{image_tag}: the registry serves {served or 'no digest'}, the push reported "
            f"{digest}: the tag was pushed again since (or the push did not land). Nothing is deployed."
        )


# serve.runtime (recorded in the .mar's serve.json by `mlops archive`) -> the Dockerfile that serves it
DOCKERFILES = {"torchserve": "Dockerfile", "kserve": "Dockerfile.kserve"}


def _archived(store: Path) -> tuple[str, str, dict]:
    """(model name, runtime, serve.json) of the one .mar `mlops archive` wrote; no runtime: TorchServe."""
    mars = sorted(store.glob("*.mar"))
    if len(mars) != 1:
        raise UserError(f"expected exactly one .mar in {store}, found {len(mars)}: run `mlops archive`")
    with zipfile.ZipFile(mars[0]) as mar:
        name = json.loads(mar.read("MAR-INF/MANIFEST.json"))["model"]["modelName"]
        spec = json.loads(mar.read("serve.json")) if "serve.json" in mar.namelist() else {}
    runtime = str(spec.get("runtime", "torchserve"))
    if runtime not in DOCKERFILES:
        raise UserError(f"{mars[0]}: unknown serve runtime {runtime!r} (one of {', '.join(DOCKERFILES)})")
    return name, runtime, spec


def archived_model(store: Path) -> tuple[str, str]:
    """(model name, runtime) of the one .mar `mlops archive` wrote."""
    name, runtime, _ = _archived(store)
    return name, runtime


def build_command(
    engine: str, ref: str, version: str, sha: str, store: Path = Path("model_store"), extra: str = ""
) -> list[str]:
    """The image build for the archived model's runtime. Dockerfile.kserve has its own context filter
    (Dockerfile.kserve.dockerignore: BuildKit finds it by name; podman and buildah are told).
    MAX_REQUEST_SIZE is sized for the archived model's features and max_batch_rows, as `make image`
    does: the Dockerfile's default fits the bundled table only, and a wider one would get 413s."""
    name, runtime, spec = _archived(store)
    dockerfile = DOCKERFILES[runtime]
    cmd = [engine, "build", *extra.split(), "-f", dockerfile]
    ignore = Path(f"{dockerfile}.dockerignore")
    if Path(engine).name in ("podman", "buildah") and ignore.exists():
        cmd += ["--ignorefile", str(ignore)]
    args = [f"MODEL_NAME={name}", f"MODEL_VERSION={version}", f"GIT_SHA={sha}"]
    if "features" in spec:  # `mlops archive` writes both
        size = max_request_bytes(spec["features"], int(spec["max_batch_rows"]))
        args.append(f"MAX_REQUEST_SIZE={size}")
    for arg in args:
        cmd += ["--build-arg", arg]
    return [*cmd, "-t", ref, "."]
