"""Global feature attributions of the shipped model: integrated gradients over the test split.

Integrated gradients attribute each row's output to its features relative to a reference row; the
reference is the training mean, i.e. "an average row", so an attribution reads as "how much this
feature moved the prediction away from average". The global score of a feature is its mean absolute
attribution, also given as a share of the total so two models can be compared. Classification
attributes the positive class's logit (binary) or each row's predicted class; regression the prediction.

The model's input is "encoded raw" (category codes, NaN for missing): integrated gradients need a finite
input on a continuous path, so a missing value is filled with the column's training median first (what
`impute: median` does inside the model), and a category column is held at its own value along the path
(its reference is the row itself): a code has no gradient, so category columns get no attribution and
are left out of the table (`evaluate` prints which). A seeded sample of at most `report.ig_rows` test
rows is attributed, in batches, so memory stays bounded on a large test split.

The integral uses Gauss-Legendre quadrature, Captum's default, computed here in a few lines of torch:
importing Captum cost `mlops evaluate` more time than attributing the whole test split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

BATCH_ROWS = 256  # rows per Captum call: its internal tensors are rows x steps x features


def sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """All rows when there are at most `limit`, else a seeded sample of `limit`, in their order."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _integrated_gradients(
    model, inputs: torch.Tensor, baselines: torch.Tensor, alphas: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """(input - baseline) x the path integral of the gradient, by quadrature over `alphas`. Binary: the
    positive class (index 1); more classes: each row's predicted class; regression: the prediction."""
    with torch.no_grad():
        out = model(inputs)
    target = (
        torch.zeros(len(inputs), dtype=torch.long)
        if out.shape[1] == 1
        else torch.ones(len(inputs), dtype=torch.long)
        if out.shape[1] == 2
        else out.argmax(dim=1)
    )
    diff = inputs - baselines
    path = (baselines[None] + alphas[:, None, None] * diff[None]).reshape(-1, inputs.shape[1])
    path.requires_grad_(True)
    chosen = model(path).gather(1, target.repeat(len(alphas))[:, None])
    (grads,) = torch.autograd.grad(chosen.sum(), path)
    grads = grads.reshape(len(alphas), *inputs.shape)
    return (weights[:, None, None] * grads).sum(dim=0) * diff


def attributions(
    model_file,
    x_test: np.ndarray,
    reference: np.ndarray,
    features: list[str],
    steps: int,
    fill: np.ndarray | None = None,
    fixed: list[str] | None = None,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Features by decreasing mean |attribution|: columns feature, attribution, share, rank.

    `fill`: per column, the value a missing entry takes (default: `reference`); `fixed`: columns held at
    their own value (category codes), left out of the result."""
    fixed = list(fixed or [])
    rows = sample_rows(len(x_test), max_rows or len(x_test), seed)
    x = np.asarray(x_test, dtype=np.float64)[rows]
    filler = np.nan_to_num(np.asarray(fill if fill is not None else reference, dtype=np.float64))
    x = np.where(np.isnan(x), filler[None, :], x)  # an all-missing column: 0
    held = np.array([name in fixed for name in features])
    base = np.where(held[None, :], x, np.asarray(reference, dtype=np.float64)[None, :])
    base = np.nan_to_num(base)  # a reference of an all-missing column: anything finite

    model = torch.jit.load(str(model_file)).eval()
    nodes, weights = np.polynomial.legendre.leggauss(steps)  # Captum's default rule, without its import
    alphas = torch.tensor((nodes + 1) / 2, dtype=torch.float32)
    step_weights = torch.tensor(weights / 2, dtype=torch.float32)
    total = np.zeros(len(features))
    # a few calls per model: the profiling executor's warm-up costs more than it saves (as in evaluate)
    with torch.jit.optimized_execution(False):
        for start in range(0, len(x), BATCH_ROWS):
            inputs = torch.tensor(x[start : start + BATCH_ROWS], dtype=torch.float32)
            baselines = torch.tensor(base[start : start + BATCH_ROWS], dtype=torch.float32)
            total += (
                _integrated_gradients(model, inputs, baselines, alphas, step_weights)
                .abs()
                .sum(dim=0)
                .double()
                .numpy()
            )
    score = total / max(len(x), 1)
    keep = ~held
    score = score[keep]
    denominator = score.sum() or 1.0
    frame = pd.DataFrame(
        {"feature": [f for f, k in zip(features, keep, strict=True) if k], "attribution": score}
    )
    frame["share"] = score / denominator
    frame = frame.sort_values("attribution", ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame.round({"attribution": 6, "share": 6})
