"""The bundled dataset, and reading any user table (CSV or Parquet) the same way everywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from mlops.config.errors import UserError

BUNDLED_FILE = Path("data/breast_cancer.csv")
BUNDLED_LABEL = "diagnosis"


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run DVC from this interpreter's environment, so a venv needs no PATH tweaks."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], check=check, text=True, capture_output=True)


def bundled_frame() -> pd.DataFrame:
    """Scikit-learn's breast-cancer table (569 rows, 30 features), shipped inside the wheel: no download."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer(as_frame=True)
    frame = raw.frame.drop(columns="target")
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame[BUNDLED_LABEL] = [str(raw.target_names[t]) for t in raw.target]
    return frame


def write_bundled(path: Path = BUNDLED_FILE) -> Path:
    """Write the table byte-for-byte the same on every machine (shortest round-trip floats, \\n endings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bundled_frame().to_csv(path, index=False, lineterminator="\n")
    return path


def bootstrap(
    pull: bool = True, push: bool = True, dvc_file: str = "data.dvc", data_path: Path = BUNDLED_FILE
) -> None:
    """Get the data a fresh clone needs: from the DVC remote, else (the bundled table only) recreated and
    checked against data.dvc. A forker's own table can only come from their remote: say so, write nothing."""
    pulled = dvc("pull", dvc_file, check=False) if pull else None
    if pulled is not None and pulled.returncode == 0:
        print(f"data: pulled from the DVC remote ({dvc_file})")
        return
    if Path(data_path) != BUNDLED_FILE:
        why = (pulled.stderr.strip().splitlines() or ["no output"])[-1] if pulled else "--no-pull was given"
        raise UserError(
            f"{data_path} could not be pulled from the DVC remote ({why}); `mlops data` can recreate only "
            f"the bundled {BUNDLED_FILE}. Push your data from the clone that ran `dvc add data` "
            "(`dvc push`), with the remote set up as docs/setup-fork.md step 6 says."
        )
    write_bundled()
    recorded = Path(dvc_file).read_text()
    dvc("commit", "--force", dvc_file)  # hashes the data with DVC itself and fills the local cache
    if Path(dvc_file).read_text() != recorded:
        Path(dvc_file).write_text(recorded)  # leave data.dvc as it was reviewed
        raise UserError(
            f"the recreated {BUNDLED_FILE} does not match the md5 in {dvc_file}. If you replaced the data, "
            "get it from your remote (`dvc pull`), or record the new version with `dvc add data`."
        )
    print(f"data: recreated {BUNDLED_FILE}; md5 matches {dvc_file}")
    if push:
        pushed = dvc("push", dvc_file, check=False)
        where = "pushed to the DVC remote" if pushed.returncode == 0 else "not pushed (no reachable remote)"
        print(f"data: {where}")


def read_table(path: Path) -> pd.DataFrame:
    """CSV or Parquet, by extension. Values stay as read: validation decides what is acceptable."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found (data.path in params.yaml)")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".txt"):
        # Read as text so a bad cell is reported by validation, not silently coerced by pandas.
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    raise UserError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
