"""The CLI contract: every command is reachable, and start-up stays free of heavy imports."""

from __future__ import annotations

import subprocess
import sys

import yaml

from mlops import paths
from mlops.cli import build_parser
from tests.repo import ROOT

HEAVY = ("torch", "pytorch_lightning", "mlflow", "evidently", "dvc", "pandas", "sklearn")


def test_help_lists_the_pipeline_commands():
    text = build_parser().format_help()
    for command in ("data", "validate", "prepare", "train", "evaluate", "demo"):
        assert f"    {command} " in text


def test_parser_builds_without_importing_heavy_libraries():
    code = (
        f"import sys, mlops.cli; mlops.cli.build_parser(); print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dvc_yaml_uses_the_paths_the_code_writes():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = {
        stage: [
            next(iter(o)) if isinstance(o, dict) else o
            for o in spec.get("outs", []) + spec.get("metrics", []) + spec.get("plots", [])
        ]
        for stage, spec in stages.items()
    }
    assert outs["validate"] == [str(paths.VALIDATION_REPORT)]
    assert outs["prepare"] == [str(paths.PREPARED_DIR)]
    assert outs["train"] == [str(paths.MODEL_DIR)]
    assert outs["evaluate"] == [
        str(p)
        for p in (
            paths.PREDICTIONS,
            paths.METRICS,
            paths.CONFUSION,
            paths.ROC,
            paths.PR_CURVE,
            paths.TRAINING_CURVES,
            paths.CALIBRATION,
            paths.SLICES,
            paths.ATTRIBUTIONS,
            paths.RESIDUALS,
        )
    ]
    assert all(stage["cmd"] == f"mlops {name}" for name, stage in stages.items())
