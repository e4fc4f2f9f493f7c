"""A `.dir` file list is trusted only when its bytes hash to the name dvc.lock gives it."""

from __future__ import annotations

import hashlib
import json

import pytest

from mlops.config.errors import UserError
from mlops.release import artifacts, registry
from tests.release.project import GOOD, champion, commit, write_model


def manifest_path(project):
    import yaml

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    digest = lock["stages"]["train"]["outs"][0]["md5"]
    return project / ".dvc/cache/files/md5" / digest[:2] / digest[2:]


def test_a_tampered_dir_manifest_is_refused_with_matching_tampered_files(project):
    """The attack: swap the model file AND rewrite the list so the file's md5 matches it."""
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    model = project / "artifacts/model/model.pt"
    model.write_bytes(b"planted weights")
    manifest = manifest_path(project)
    entries = json.loads(manifest.read_text())
    for entry in entries:
        if entry["relpath"] == "model.pt":
            entry["md5"] = artifacts.md5(model)
    manifest.write_text(json.dumps(entries))

    with pytest.raises(UserError, match=r"is not the one dvc.lock names: its md5 is [0-9a-f]{32}.*tampered"):
        registry.promote()
    assert champion(project) is None


def test_a_manifest_that_is_not_a_file_list_is_refused(tmp_path):
    listing = b'{"relpath": "x"}'
    digest = hashlib.md5(listing).hexdigest() + ".dir"
    (tmp_path / "m").write_bytes(listing)
    with pytest.raises(UserError, match="not a list of"):
        artifacts.read_manifest(tmp_path / "m", digest)


def test_an_untouched_manifest_is_accepted(project):
    write_model(project, b"weights-1", GOOD)
    commit(project, "model 1")
    assert registry.promote() == 0 and champion(project) == "1"
