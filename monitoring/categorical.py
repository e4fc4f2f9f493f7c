"""A two-sample test for categories, bools, the class mix and the target.

Evidently's `chisquare` takes the reference counts as the exact expected proportions; against a 206-row
reference that is itself a sample, so same-distribution windows "drift" 24% of the time at n=200 and
87% at n=5,000, and Jensen-Shannon above 0.1 fires on every sample of an 87-level category. Here both
samples are samples: Pearson's chi-square on the 2 x K table of reference vs current counts, whose
degrees of freedom (K - 1) carry the cardinality and whose expected cells carry both sample sizes. Levels
too sparse for the chi-square approximation (an expected count under 10 in either row) are pooled into
one "other" level, so a rare or unseen value adds evidence only as much as its count supports: one
unseen value in 5,000 rows moves nothing. Unseen values are named in the output all the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chi2

NAME = "two_sample_chi2"
DISPLAY = "two-sample chi-square p_value"
MIN_EXPECTED = 10.0


def _counts(values: pd.Series) -> pd.Series:
    return values.dropna().astype(str).value_counts()


def pooled_table(reference: pd.Series, current: pd.Series) -> np.ndarray:
    """The 2 x K table (rows: reference, current) after pooling levels whose expected count is under
    MIN_EXPECTED in either row; the pool joins the smallest remaining level while it is still too sparse."""
    ref, cur = _counts(reference), _counts(current)
    levels = ref.index.union(cur.index)
    table = np.vstack(
        [ref.reindex(levels, fill_value=0).to_numpy(), cur.reindex(levels, fill_value=0).to_numpy()]
    )
    table = table.astype(np.float64)
    n_ref, n_cur = table.sum(axis=1)
    total = n_ref + n_cur
    if n_ref == 0 or n_cur == 0:
        return table[:, :0]
    need = MIN_EXPECTED * total / min(n_ref, n_cur)  # a level's total count for an expected 5 in each row
    sizes = table.sum(axis=0)
    order = np.argsort(sizes, kind="stable")
    sparse = order[sizes[order] < need]
    kept = order[sizes[order] >= need]
    pool = table[:, sparse].sum(axis=1)
    while pool.sum() and pool.sum() < need and len(kept):
        pool, kept = pool + table[:, kept[0]], kept[1:]
    columns = [table[:, kept]] + ([pool[:, None]] if pool.sum() else [])
    return np.hstack(columns)


def p_value(reference: pd.Series, current: pd.Series) -> float:
    """Pearson chi-square test of homogeneity; 1.0 when fewer than two levels remain after pooling."""
    table = pooled_table(reference, current)
    if table.shape[1] < 2:
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, table.shape[1] - 1))


def unseen(reference: pd.Series, current: pd.Series, top: int = 10) -> dict:
    """Values in the window that the reference never had: how many rows, and the most frequent ones."""
    known = set(_counts(reference).index)
    cur = _counts(current)
    new = cur[~cur.index.isin(known)]
    return {"rows": int(new.sum()), "values": {str(k): int(v) for k, v in new.head(top).items()}}


def _impl(reference: pd.Series, current: pd.Series, feature_type, threshold: float):
    p = p_value(reference, current)
    return p, p < threshold


def register() -> str:
    """Make the test known to Evidently by NAME (idempotent), so its report shows the same verdict."""
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.core import ColumnType

    if NAME not in registry._registered_stat_tests:
        test = registry.StatTest(
            name=NAME, display_name=DISPLAY, allowed_feature_types=[ColumnType.Categorical]
        )
        registry.register_stattest(test, default_impl=_impl)
    return NAME
