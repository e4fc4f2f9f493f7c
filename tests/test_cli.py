"""The CLI contract: every command is reachable, and start-up stays free of heavy imports."""

from __future__ import annotations

import subprocess
import sys

import yaml

from mlops.cli import build_parser
from mlops.config import paths
from tests.repo import ROOT

HEAVY = ("torch", "pytorch_lightning", "mlflow", "evidently", "dvc", "pandas", "sklearn")


def test_help_lists_the_pipeline_commands():
    text = build_parser().format_help()
    for command in (
        "data",
        "validate",
        "prepare",
        "train",
        "baselines",
        "evaluate",
        "demo",
        "repro",
        "lock-check",
        "adopt",
    ):
        assert f"    {command} " in text


def test_both_module_spellings_the_workflows_use_run_the_cli():
    """promote.yml calls `python3 -m mlops.cli`, other steps `python -m mlops`: both must be the CLI."""
    for module in ("mlops", "mlops.cli"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "image-tag", "--help"], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0 and "--refuse-existing" in proc.stdout, (module, proc.stderr)


def test_the_lock_loop_commands_take_what_the_pr_workflow_passes():
    """The contract with pr.yml (CI calls these exact forms)."""
    parser = build_parser()
    args = parser.parse_args(["repro", "--base", "origin/main", "--pull"])
    assert (args.base, args.pull) == ("origin/main", True)
    args = parser.parse_args(
        ["lock-check", "--base", "origin/main", "--report", "r.md", "--summary", "s.md", "--pushed", "true"]
    )
    assert (args.base, str(args.report), args.pushed) == ("origin/main", "r.md", "true")
    assert parser.parse_args(["lock-check"]).base is None  # older callers: no --base
    args = parser.parse_args(["adopt", "123", "--repo", "octo/model", "--no-push"])
    assert (args.run_id, args.repo, args.no_push) == ("123", "octo/model", True)
    assert parser.parse_args(["promote", "--allow-dirty"]).allow_dirty


def test_the_training_run_record_is_outside_every_dvc_output_and_git_ignored():
    """A run id inside a DVC output would change its md5 on every retrain (mlops/config/tracking.py)."""
    from mlops.config.tracking import RUN_RECORD

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for s in stages.values() for o in s.get("outs", [])]
    assert not any(RUN_RECORD.as_posix() == o or RUN_RECORD.as_posix().startswith(f"{o}/") for o in outs)
    ignored = subprocess.run(["git", "check-ignore", "-q", str(RUN_RECORD)], cwd=ROOT)
    assert ignored.returncode == 0


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
    assert outs["train"] == [str(paths.MODEL_DIR), str(paths.SEEDS_DIR)]
    assert outs["baselines"] == [str(paths.BASELINES_DIR)]
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
