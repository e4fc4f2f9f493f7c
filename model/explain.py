"""Global feature attributions of the shipped model: integrated gradients (Captum) over the test split.

Integrated gradients attribute each row's logit to its features relative to a reference row; the
reference is the training mean, i.e. "an average patient", so an attribution reads as "how much this
feature moved the prediction away from average". The global score of a feature is its mean absolute
attribution, also given as a share of the total so two models can be compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def attributions(
    model_file, x_test: np.ndarray, reference: np.ndarray, features: list[str], steps: int
) -> pd.DataFrame:
    """Features by decreasing mean |attribution|: columns feature, attribution, share, rank."""
    from captum.attr import IntegratedGradients

    model = torch.jit.load(str(model_file)).eval()
    inputs = torch.tensor(x_test, dtype=torch.float32)
    with torch.no_grad():
        logits = model(inputs)
    # Binary: the positive class (index 1); more classes: each row's predicted class.
    target = 1 if logits.shape[1] == 2 else logits.argmax(dim=1)
    base = torch.tensor(reference, dtype=torch.float32).expand_as(inputs)
    attr = IntegratedGradients(model).attribute(inputs, baselines=base, target=target, n_steps=steps)
    score = attr.detach().abs().mean(dim=0).double().numpy()
    total = score.sum() or 1.0
    frame = pd.DataFrame({"feature": features, "attribution": score, "share": score / total})
    frame = frame.sort_values("attribution", ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame.round({"attribution": 6, "share": 6})
