"""DVC stage `train`: fit the Lightning model, export TorchScript, and record the run in MLflow.

Where it trains is configuration: `train.accelerator`, `train.devices`, `train.strategy` and
`train.num_nodes` in params.yaml go to Lightning as they are (defaults: cpu, 1, auto, 1). With
`strategy: ddp` every process runs this module (Lightning re-launches `mlops train`, or torchrun/SLURM
start them); each loads only its block of rows, and only global rank 0 touches MLflow and writes the
model, because every side effect here happens after `fit`, behind `trainer.is_global_zero`.
See docs/distributed-training.md.

artifacts/model holds nothing that differs between two runs of the same code, params and data on
one machine (no run id, timestamp or absolute path), so retraining gives the same dvc.lock; the MLflow
run id goes to the git-ignored artifacts/train_run.json instead (mlops/config/tracking.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
import torch

from mlops.config import paths
from mlops.config.params import Params, load_params
from mlops.config.sections import as_dict


def quiet_lightning() -> None:
    """Lightning's tips and per-step chatter bury the stage output in DVC logs."""
    os.environ.setdefault("PL_DISABLE_FORK", "1")
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # the pickle-format caution, every run


def fixed_hash_seed() -> None:
    """Run `mlops train` again, in place of this process, with PYTHONHASHSEED=0 unless it has that already.

    TorchScript writes a module's constants (`in_features`, `p`, ...) in the order of a Python set of
    their names, and a set of strings is ordered by the per-process hash seed: with a random seed the
    same weights give other model.pt bytes on every run. DDP workers inherit the variable."""
    if os.environ.get("PYTHONHASHSEED") == "0":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # the same command line (console script or -m), so the same code is imported
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "PYTHONHASHSEED": "0"})


def fit(params: Params, train, val, preprocessing: dict, logger=False):
    """Train deterministically from params; returns the fitted LightningModule and the Trainer.

    `train` and `val` are DataFrames or Parquet paths (a path lets each DDP process read only its rows).
    `preprocessing` is what `prepare` fitted (preprocessing.json). The module is the one `train.model`
    names (model/build.py).
    """
    from model.build import build_module
    from model.datamodule import TabularDataModule
    from model.encoding import class_weights
    from model.threads import use_threads

    quiet_lightning()
    cfg = params.train
    use_threads(cfg)  # train.threads: auto | N (model/threads.py says why)
    pl.seed_everything(params.seed, workers=True, verbose=False)
    weights = None
    if not params.data.regression and "class_counts" in preprocessing:
        weights = class_weights(cfg.class_weights, params.data.classes, preprocessing["class_counts"])
    module = build_module(params, preprocessing, weights)
    data = TabularDataModule(train, val, params.data.feature_names, int(cfg.batch_size), params.seed)
    trainer = pl.Trainer(
        **cfg.placement(),
        max_epochs=int(cfg.max_epochs),
        deterministic=True,
        logger=logger,
        use_distributed_sampler=False,  # TabularDataModule gives each process its own block of rows
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data)
    return module, trainer


def model_schema(preprocessing: dict) -> list[dict]:
    """meta.json's `schema` (feature order, types, vocabularies, missing policy): what serving accepts."""
    from model.encoding import schema

    return schema(preprocessing)


def export(module, path) -> None:
    """TorchScript of the plain network: serving needs torch only, not Lightning or this package."""
    net = module.net.cpu().eval()  # trained on any accelerator, served on CPU
    torch.jit.script(net).save(str(path))
    drop_debug_records(Path(path))


# Written by torch's archive writer itself, from what was copied (content-derived, not random).
_WRITER_RECORDS = {"version", ".data/version", "byteorder", ".data/serialization_id"}


def drop_debug_records(path: Path) -> None:
    """Rewrite a TorchScript archive without its `*.debug_pkl` records.

    Those records map the compiled code back to the Python sources by ABSOLUTE path (this checkout's
    model/net.py, the venv's torch/nn/*.py), so the same weights would give other bytes, and another
    dvc.lock, in every checkout and on every runner. Loading and running need none of them; only
    TorchScript's own error messages lose their source lines. torch's writer is used (not zipfile) so
    the tensor records keep the alignment torch expects."""
    reader = torch._C.PyTorchFileReader(str(path))
    version = int(reader.get_record("version").decode().strip())
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        target = Path(tmp) / path.name  # the archive's top folder is named after the file
        writer = torch._C.PyTorchFileWriter(str(target))
        writer.set_min_version(version)
        for name in reader.get_all_records():
            if name.endswith(".debug_pkl") or name in _WRITER_RECORDS:
                continue
            data = reader.get_record(name)
            writer.write_record(name, data, len(data))
        writer.write_end_of_file()
        del writer, reader
        os.replace(target, path)


def run() -> None:
    import mlflow
    from pytorch_lightning.loggers import MLFlowLogger
    from pytorch_lightning.utilities import rank_zero_only

    from mlops.config import tracking
    from model.datamodule import parquet_rows

    params = load_params()
    preprocessing = json.loads(paths.PREPROCESSING.read_text())
    experiment = params.mlflow.experiment
    # Only rank 0 (as torchrun, SLURM or Lightning's re-launch tell it through the environment) opens
    # the tracking store: opening creates an embedded sqlite store, and two ranks doing it at once collide.
    logger = (
        MLFlowLogger(
            experiment_name=experiment,
            tracking_uri=tracking.tracking_uri(),
            artifact_location=tracking.artifact_location(),
            log_model=False,
        )
        if rank_zero_only.rank == 0
        else False
    )
    module, trainer = fit(params, paths.TRAIN_SPLIT, paths.VAL_SPLIT, preprocessing, logger=logger)
    if not trainer.is_global_zero:
        return

    logger.log_hyperparams(
        {
            "seed": params.seed,
            **{f"train.{k}": v for k, v in params.train.flat().items()},
            **{f"split.{k}": v for k, v in as_dict(params.split).items()},
            "data.path": str(params.data.path),
            "data.rows.train": parquet_rows(paths.TRAIN_SPLIT),
            "train.world_size": trainer.world_size,
        }
    )
    paths.MODEL_DIR.mkdir(parents=True, exist_ok=True)
    export(module, paths.MODEL_FILE)
    history = list(getattr(module, "history", []))  # a module of your own may keep none
    pd.DataFrame(history, columns=["epoch"] if not history else None).to_csv(paths.HISTORY, index=False)
    meta = {
        "task": params.task,
        "features": params.data.feature_names,
        "label": params.data.label,
        "classes": [str(c) for c in params.data.classes],
        "schema": model_schema(preprocessing),
        "seed": params.seed,
    }
    paths.MODEL_META.write_text(json.dumps(meta, indent=2) + "\n")
    # the run id changes on every retrain: outside the DVC-tracked folder (mlops/config/tracking.py says why)
    tracking.write_run(logger.run_id, experiment, paths.MODEL_FILE)

    with mlflow.start_run(run_id=logger.run_id):
        mlflow.log_artifact(str(paths.MODEL_FILE), artifact_path="torchscript")
        mlflow.log_artifact(str(paths.MODEL_META), artifact_path="torchscript")
        mlflow.pytorch.log_model(
            module.net,
            name="model",
            serialization_format="pickle",
            pip_requirements=["torch==2.13.0"],
        )
    last = history[-1] if history else {}
    quality = "val_rmse" if params.data.regression else "val_accuracy"
    print(
        f"train: {trainer.current_epoch} epochs on {trainer.world_size} process(es), "
        f"{quality}={last.get(quality, float('nan')):.4f}; "
        f"model -> {paths.MODEL_FILE}; MLflow run {logger.run_id} ({tracking.tracking_uri()})"
    )
    from model import seeds  # report.seeds: the seed-noise models, evaluate only scores them

    seeds.train_after(params, preprocessing, trainer.world_size)
