"""In-memory batches for small tabular data.

The whole split lives in one tensor and each batch is one fancy-index, not a per-row __getitem__
plus collate: for a few thousand rows that per-row overhead would dominate the training step.
"""

from __future__ import annotations

import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset


def to_tensors(frame: pd.DataFrame, features: list[str]) -> TensorDataset:
    x = torch.tensor(frame[features].to_numpy(dtype="float32"))
    y = torch.tensor(frame["label"].to_numpy(dtype="int64"))
    return TensorDataset(x, y)


def batches(data: TensorDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader that yields whole batches by index; seeded, so shuffling is reproducible."""
    if shuffle:
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(data)
    return DataLoader(data, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=False))


class TabularDataModule(pl.LightningDataModule):
    def __init__(
        self, train: pd.DataFrame, val: pd.DataFrame, features: list[str], batch_size: int, seed: int
    ):
        super().__init__()
        self.train_set = to_tensors(train, features)
        self.val_set = to_tensors(val, features)
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        return batches(self.train_set, self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return batches(self.val_set, max(self.batch_size, len(self.val_set)), shuffle=False)
