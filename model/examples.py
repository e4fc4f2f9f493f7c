"""A synthetic mixed-type table for the README's "Bring your own data" walk-through and the tests.

Shaped like the usual public penguin table, without a download: a 3-class string label with imbalance,
numeric measurements with a few missing cells, two categorical columns (one with missing values), a
bool and the observation date (ISO 8601: declare it `type: date`). For a regression example, take the
body mass as the (numeric) label. `unlabelled` leaves that share of the labels empty, as real tables do.

    python -m model.examples data/penguins.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SPECIES = {  # name: (share, bill length, flipper length, body mass, islands)
    "Adelie": (0.52, 38.8, 190.0, 3700.0, ["Torgersen", "Biscoe", "Dream"]),
    "Gentoo": (0.36, 47.5, 217.0, 5080.0, ["Biscoe"]),
    "Chinstrap": (0.12, 48.8, 196.0, 3730.0, ["Dream"]),
}


def mixed_table(
    rows: int = 344, seed: int = 0, missing_share: float = 0.02, unlabelled: float = 0.0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = list(SPECIES)
    shares = np.array([SPECIES[n][0] for n in names])
    species = rng.choice(len(names), size=rows, p=shares / shares.sum())
    out = {"species": np.array(names, dtype=object)[species]}
    bill = np.array([SPECIES[n][1] for n in names])[species] + rng.normal(0, 2.5, rows)
    flipper = np.array([SPECIES[n][2] for n in names])[species] + rng.normal(0, 6.0, rows)
    male = rng.random(rows) < 0.5
    mass = np.array([SPECIES[n][3] for n in names])[species] + np.where(male, 350, -350)
    mass = mass + rng.normal(0, 250, rows)
    out["island"] = np.array([rng.choice(SPECIES[names[s]][4]) for s in species], dtype=object)
    out["bill_length_mm"] = bill.round(1)
    out["flipper_length_mm"] = flipper.round().astype(float)
    out["body_mass_g"] = mass.round(-1)
    out["sex"] = np.where(male, "male", "female").astype(object)
    out["adult"] = np.where(rng.random(rows) < 0.8, "true", "false").astype(object)
    out["year"] = rng.choice([2007, 2008, 2009], size=rows).astype(float)
    frame = pd.DataFrame(out)
    for column in ("bill_length_mm", "flipper_length_mm", "sex"):
        holes = rng.random(rows) < missing_share
        frame.loc[holes, column] = np.nan if column != "sex" else None
    # Drawn after everything above, so the other columns are the same with or without these.
    start = pd.to_datetime(frame["year"].astype(int).astype(str) + "-11-01")
    observed = start + pd.to_timedelta(rng.integers(0, 30, rows), unit="D")
    frame["observed"] = observed.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    if unlabelled:
        frame.loc[rng.random(rows) < unlabelled, "species"] = None
    return frame


def write(path: Path, rows: int = 344, seed: int = 0, unlabelled: float = 0.0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = mixed_table(rows, seed, unlabelled=unlabelled)
    frame["flipper_length_mm"] = frame["flipper_length_mm"].astype("Int64")  # "190", not "190.0"
    frame["year"] = frame["year"].astype("Int64")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, lineterminator="\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="write the synthetic mixed-type example table")
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, default=344)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unlabelled", type=float, default=0.0, help="share of rows with an empty label")
    args = parser.parse_args()
    print(f"wrote {write(args.path, args.rows, args.seed, args.unlabelled)} ({args.rows} rows)")


if __name__ == "__main__":
    main()
