"""Reliability diagram data: does a predicted 0.8 come true 80% of the time?

Uses the same bins and (confidence, outcome) pairs as the ECE in mlops/report/uncertainty.py, so the plot and
the number agree; only bins too sparse to show anything are merged with their neighbours for the plot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops.report.uncertainty import ECE_BINS, calibration_target, ece_bin

MIN_BIN_ROWS = 5  # a plotted bin holds at least this many rows: 1-2 rows per point only zig-zag


def reliability_table(y: np.ndarray, proba: np.ndarray, min_rows: int = MIN_BIN_ROWS) -> pd.DataFrame:
    """One row per plotted bin: mean predicted confidence, observed frequency, and row count. Adjacent
    sparse bins are merged until each holds `min_rows` rows (a leftover joins the last one), so a
    114-row split draws a few honest points instead of a zig-zag across bins of one or two rows."""
    confidence, outcome = calibration_target(y, proba)
    bins = ece_bin(confidence)
    groups: list[list[int]] = []
    pending: list[int] = []
    for b in range(ECE_BINS):
        if not (bins == b).any():
            continue
        pending.append(b)
        if np.isin(bins, pending).sum() >= min_rows:
            groups.append(pending)
            pending = []
    if pending:
        if groups:
            groups[-1] += pending
        else:
            groups.append(pending)
    rows = []
    for group in groups:
        inside = np.isin(bins, group)
        rows.append(
            {
                "bin": f"{group[0] / ECE_BINS:.1f}-{(group[-1] + 1) / ECE_BINS:.1f}",
                "confidence": round(float(confidence[inside].mean()), 6),
                "observed": round(float(outcome[inside].mean()), 6),
                "rows": int(inside.sum()),
            }
        )
    return pd.DataFrame(rows, columns=["bin", "confidence", "observed", "rows"])
