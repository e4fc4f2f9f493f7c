"""`mlops archive`: package the registry's champion as a TorchServe .mar, stamped with its version.

The .mar carries everything the server needs and nothing else of this repository: the model, the
handler package (serve/handler/ and the value parser mlops/config/values.py it imports, at the same paths, so
the entry file TorchServe loads imports them by their full names), `serve.json` (features, classes,
task, schema, version, request limits) and `model-config.yaml`
(workers, batching from params.yaml `serve:`), so the container image and `mlops serve` run the same thing.

`mlops archive` packages only the champion: the model on disk must have the md5 that the champion's
registry version recorded at promotion, or it refuses. So a refused promotion can never be shipped
under the champion's number. `build` is the packaging alone, for benchmarks that serve the working tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlops.config import paths
from mlops.config import values as raw_values
from mlops.config.errors import UserError
from mlops.config.params import Params, load_params
from mlops.release.artifacts import md5
from mlops.release.registry import (
    CHAMPION,
    RELEASE,
    _alias,
    _client,
    _model_name,
    _safe_uri,
    _version,
    write_release,
)
from serve import settings
from serve.server import MODEL_STORE, serve_settings

# named through their modules, so the packaging step may live in any folder
ROOT = Path(settings.__file__).resolve().parents[1]  # the repository (serve/settings.py's parent's)
HANDLER = ROOT / "serve/handler/entry.py"  # the file TorchServe loads
HANDLER_PACKAGE = HANDLER.parent
VALUES = Path(raw_values.__file__)  # the handler's value parser
SAMPLE_ROWS = 3


def model_config(cfg: dict) -> str:
    """model-config.yaml for TorchServe (YAML is a superset of JSON, so no yaml dependency here)."""
    return (
        json.dumps(
            {
                "minWorkers": cfg["workers"],
                "maxWorkers": cfg["workers"],
                "batchSize": cfg["batch_size"],
                "maxBatchDelay": cfg["max_batch_delay"],
                "responseTimeout": cfg["response_timeout"],
            },
            indent=2,
        )
        + "\n"
    )


def archive_champion(store: Path = MODEL_STORE) -> Path:
    """The release path (`mlops archive`): refuse unless the model on disk is the registry's champion."""
    release = champion_for_archive(paths.MODEL_FILE)
    print(
        f"archive: {paths.MODEL_FILE} is {release['registered_model']} champion version "
        f"{release['version']} (md5 {release['model_md5']} matches its registry tag)"
    )
    return build(version=release["version"], store=store)


def build(version: str, store: Path = MODEL_STORE, params: Params | None = None) -> Path:
    """Package artifacts/model as it is, stamped `version`; no registry check (see archive_champion)."""
    params = params or load_params()
    cfg = serve_settings(params)
    for needed in (paths.MODEL_FILE, paths.MODEL_META):
        if not needed.exists():
            raise UserError(f"{needed} not found: run `dvc pull` (or `dvc repro`) first")
    meta = json.loads(paths.MODEL_META.read_text())
    spec = {
        "model_name": cfg["model_name"],
        "model_version": version,
        "runtime": cfg["runtime"],  # which image serves this .mar (mlops/release/image.py build_command)
        "features": meta["features"],
        "classes": meta.get("classes") or [],
        "task": meta["task"],
        "schema": meta["schema"],  # the request encoding: types, category vocabularies, missing policies
        "max_batch_rows": cfg["max_batch_rows"],
        "inference_log_dir": cfg["inference_log_dir"],
        **settings.handler_spec(params),  # feature ranges and log rotation travel inside the .mar
    }
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "serve.json"
        spec_file.write_text(json.dumps(spec, indent=2) + "\n")
        config_file = Path(tmp) / "model-config.yaml"
        config_file.write_text(model_config(cfg))
        code = stage_handler(Path(tmp) / "code")
        cmd = [
            str(Path(sys.executable).with_name("torch-model-archiver")),
            "--model-name",
            cfg["model_name"],
            "--version",
            version,
            "--serialized-file",
            str(paths.MODEL_FILE),
            "--handler",
            str(HANDLER),
            "--extra-files",
            f"{spec_file},{paths.MODEL_META},{code}",
            "--config-file",
            str(config_file),
            "--export-path",
            str(store),
            "--force",
        ]
        if not Path(cmd[0]).exists():
            cmd[0] = shutil.which("torch-model-archiver") or cmd[0]
        proc = subprocess.run(cmd, text=True, capture_output=True)
    if proc.returncode != 0:
        raise UserError(f"torch-model-archiver failed:\n{proc.stderr or proc.stdout}")
    mar = store / f"{cfg['model_name']}.mar"
    write_sample_request(store / "request.json", meta["features"], meta["schema"])
    print(
        f"archive: {mar} (model {cfg['model_name']} version {version}, {mar.stat().st_size / 1024:.0f} KiB)"
    )
    return mar


def stage_handler(root: Path) -> Path:
    """The handler's modules laid out under `root` as the .mar holds them (the archiver copies the
    folder's contents beside the entry file): serve/handler/*.py and mlops/config/values.py."""
    package = root / "serve" / "handler"
    package.mkdir(parents=True)
    for module in sorted(HANDLER_PACKAGE.glob("*.py")):
        shutil.copy2(module, package / module.name)
    (root / "mlops" / "config").mkdir(parents=True)
    shutil.copy2(VALUES, root / "mlops" / "config" / "values.py")
    return root


def write_sample_request(path: Path, features: list[str], schema: list) -> None:
    """A few held-out rows as a ready request body: the curl example, the image smoke test. The split
    holds the model's encoding; the model's `schema` turns the rows back to raw values (category
    strings, true/false, null), as a client sends them."""
    if not paths.TEST_SPLIT.exists():
        return
    import pandas as pd

    from model.encoding import raw_records

    rows = pd.read_parquet(paths.TEST_SPLIT)[features].head(SAMPLE_ROWS)
    records = raw_records(rows, schema)
    path.write_text(json.dumps({"instances": records}, indent=1, default=str) + "\n")


def champion_for_archive(model_file: Path = paths.MODEL_FILE) -> dict:
    """The champion's release record, once `model_file` is proven to be its bytes (md5 vs its tag).

    `mlops archive` calls this so that it can only ever package the champion: after a refused promotion
    (or a rollback) the model on disk is not the champion, and packaging it would ship unreviewed bytes
    under the champion's version number.
    """
    params = load_params()
    client = _client(params)
    name = _model_name(params)
    recorded = json.loads(RELEASE.read_text()) if RELEASE.exists() else {}
    if recorded.get("event") == "candidate" and recorded.get("registered_model") == name:
        return _candidate_for_archive(client, name, recorded, model_file)
    champion = _alias(client, name, CHAMPION)
    if champion is None:
        raise UserError(
            f"{name} has no {CHAMPION} in the registry ({_safe_uri()}): `mlops archive` packages only the "
            "champion; run `mlops promote` first"
        )
    number, tags = _version(champion), champion.tags or {}
    expected = tags.get("model_md5")
    if not expected:
        raise UserError(f"{CHAMPION} version {number} has no model_md5 tag: it was not registered by promote")
    if not model_file.exists():
        raise UserError(f"{model_file} not found: run `dvc pull` at the champion's commit first")
    actual = md5(model_file)
    if actual != expected:
        raise UserError(
            f"{model_file} (md5 {actual}) is not the {CHAMPION}, version {number} (md5 {expected}, git sha "
            f"{tags.get('git_sha', 'unknown')}); refusing to archive. Was its promotion refused? "
            "Check out the champion's commit and `dvc pull`, or promote this model first."
        )
    if recorded.get("registered_model") == name and recorded.get("version") == number:
        return recorded  # keeps the record of the alias move (a rollback's reason)
    return write_release(name, champion, "found in the registry")  # moved elsewhere (another checkout)


def _candidate_for_archive(client, name: str, recorded: dict, model_file: Path) -> dict:
    """The gated candidate of `mlops promote --candidate`: CI builds its image before the alias moves."""
    from mlflow.exceptions import MlflowException

    number = str(recorded.get("version"))
    try:
        tags = client.get_model_version(name, number).tags or {}
    except MlflowException:
        raise UserError(f"{RELEASE} names candidate version {number}, which {name} does not have") from None
    if tags.get("gates") != "passed":
        raise UserError(f"candidate version {number} has not passed its gates; refusing to archive it")
    actual = md5(model_file) if model_file.exists() else "missing"
    if actual != tags.get("model_md5"):
        raise UserError(
            f"{model_file} (md5 {actual}) is not candidate version {number} (md5 {tags.get('model_md5')}); "
            "refusing to archive"
        )
    return recorded
