"""Reliability diagram data: does a predicted 0.8 come true 80% of the time?

Uses the same bins and (confidence, outcome) pairs as the ECE in model/uncertainty.py, so the plot and
the number agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from model.uncertainty import ECE_BINS, calibration_target, ece_bin


def reliability_table(y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """One row per non-empty bin: mean predicted confidence, observed frequency, and row count."""
    confidence, outcome = calibration_target(y, proba)
    bins = ece_bin(confidence)
    rows = []
    for b in range(ECE_BINS):
        inside = bins == b
        if inside.any():
            rows.append(
                {
                    "bin": f"{b / ECE_BINS:.1f}-{(b + 1) / ECE_BINS:.1f}",
                    "confidence": round(float(confidence[inside].mean()), 6),
                    "observed": round(float(outcome[inside].mean()), 6),
                    "rows": int(inside.sum()),
                }
            )
    return pd.DataFrame(rows, columns=["bin", "confidence", "observed", "rows"])
