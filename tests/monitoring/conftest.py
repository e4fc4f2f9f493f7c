"""A workspace for the drift tests: params.yaml, the bundled data and its prepared split, in tmp_path."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.repo import ROOT

ENV = ("MLOPS_INFERENCE_LOG_DIR", "MLOPS_FEEDBACK", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """cwd = a project copy with data/ and artifacts/prepared/ (the reference), no logs yet."""
    from model.dataset import write_bundled
    from model.prepare import run as prepare

    monkeypatch.chdir(tmp_path)
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    write_bundled()
    prepare()
    return tmp_path


@pytest.fixture
def drift(capsys):
    """Run `mlops drift ARGS` in-process: (exit code, summary.json, stdout)."""
    from mlops.cli import main

    def run(*args: str):
        capsys.readouterr()
        code = main(["drift", *args])
        out = capsys.readouterr().out
        return code, json.loads(open("reports/drift/summary.json").read()), out

    return run
