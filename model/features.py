"""Engineered features: the one place to compute a new column from the raw ones.

`Features` runs inside the exported TorchScript model (model/net.py's `TabularNet`), after missing
values are filled and before the network, so training, evaluation and serving compute the same values
from the same code; serving needs no edit. Edit `Features` below, or name a class of your own in
params.yaml (`train.features: {class: model.my_features.Ratios}`).

The contract (docs/models.md):
- `__init__(self, columns: list[str])` gets the feature names of params.yaml `data.features`, in the
  order of the input's columns; look up the indexes you need here, not in `forward`.
- `forward(x)` gets the encoded raw features [n, F] as float32 with missing values filled: numbers as
  they are, bool 0/1, a category its code in the vocabulary (-1 unknown), a date its days since
  1970-01-01. It returns [n, width] new columns (`width` an int attribute).
- The new columns are not standardised: return them on a sensible scale (a ratio, a log).
- It must compile with `torch.jit.script`: tensors, ints, floats and lists of them; no numpy, pandas or
  Python objects in `forward`. `mlops train` checks this before it trains.
"""

from __future__ import annotations

import torch
from torch import nn


class Features(nn.Module):
    """No engineered features (the bundled table's columns are enough). Example of one, a ratio:

    self.index = columns.index("mean_area"), columns.index("mean_radius")
    self.width = 1
    ...
    area, radius = x[:, self.index[0]], x[:, self.index[1]]
    return torch.log1p(area / radius.clamp_min(1e-6)).unsqueeze(1)
    """

    def __init__(self, columns: list[str]):
        super().__init__()
        self.width: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :0]
