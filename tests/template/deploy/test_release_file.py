"""Property tests of the two parsers `mlops deploy` relies on: the image reference and the release file
rewrite (only the asked lines change, and the YAML then says exactly what was asked)."""

from __future__ import annotations

import difflib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops.config.errors import UserError
from mlops.release import delivery
from tests.template.deploy.conftest import ROOT

PRODUCTION = delivery.release_file("production")
TEXT = (ROOT / PRODUCTION).read_text()
HEX = "0123456789abcdef"

digests = (
    st.text(HEX, min_size=64, max_size=64).map(lambda h: "sha256:" + h).filter(lambda d: set(d[7:]) != {"0"})
)
names = st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8})?", fullmatch=True)
repositories = st.builds(
    lambda host, parts: "/".join([host, *parts]),
    st.sampled_from(["ghcr.io", "registry.example.com:5000", "quay.io"]),
    st.lists(names, min_size=1, max_size=3),
)


@settings(database=None, max_examples=200)
@given(st.text(max_size=120))
def test_any_string_is_an_image_by_digest_or_refused(ref):
    try:
        image = delivery.Image.parse(ref)
    except UserError as err:
        assert "by digest" in str(err) or "zero digest" in str(err)
        return
    assert str(image) == ref.strip()
    assert image.digest.startswith("sha256:") and len(image.digest) == 71


@settings(database=None, max_examples=200)
@given(repositories, digests)
def test_valid_references_round_trip(repository, digest):
    with pytest.raises(UserError, match="placeholder"):
        delivery.Image.parse(f"{repository}@{delivery.ZERO_DIGEST}")
    image = delivery.Image.parse(f"{repository}@{digest}")
    assert (image.repository, image.digest) == (repository, digest)
    with pytest.raises(UserError):
        delivery.Image.parse(f"{repository}:v1@{digest}")  # a tag as well: refused
    with pytest.raises(UserError):
        delivery.Image.parse(f"{repository}@{digest.upper()}")


@settings(database=None, max_examples=100)
@given(repositories, digests, st.integers(1, 10**6), st.integers(0, 100))
def test_rewrite_changes_only_the_asked_lines(repository, digest, version, percent):
    image = delivery.Image(repository, digest)
    new = delivery.rewrite(TEXT, PRODUCTION, image=image, version=str(version), canary=percent)
    release = delivery.read(new)
    assert (release.image, release.version, release.canary) == (image, str(version), percent)
    changed = [
        line
        for line in difflib.unified_diff(TEXT.splitlines(), new.splitlines(), lineterm="", n=0)
        if line.startswith("+") and not line.startswith("+++")
    ]
    allowed = ("newName:", "digest:", "mlops.ai/model-version:", "value:")
    assert all(line[1:].strip().startswith(allowed) for line in changed), changed
    assert len(new.splitlines()) == len(TEXT.splitlines())
