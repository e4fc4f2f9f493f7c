"""In-memory batches for tabular data, one shard per training process.

Each split lives in one tensor and each batch is one index operation, not a per-row __getitem__ plus
collate: for a few thousand rows that per-row overhead would dominate the training step. The batch
indices are slices of one permutation tensor per epoch, so no Python object is made per row either: at
large batches (docs/large-data.md) a step then costs the model's arithmetic, not the bookkeeping.

Under DDP every process holds only its own contiguous block of rows. A split given as a Parquet path is
streamed in row batches and only the block's rows are kept, so no process ever materialises the whole
table (benchmarks/ddp_memory.py measures it). The splits are already shuffled by `prepare`, so a
contiguous block is a random sample. With one process the block is the whole split and training is
exactly what it was before sharding existed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from mlops.config.errors import UserError

LABEL = "label"
# Validation rows per forward pass. One pass over the whole split would be fastest, but at 200k rows the
# activations (and one-hot categories) of one pass cost a few hundred MB; this bounds them.
VAL_BATCH_ROWS = 65536


class TensorRows(TensorDataset):
    """Features and labels of a split; a batch is looked up with one `index_select` per tensor.

    WHY not `tensor[index]`: advanced indexing took 7x longer for 4096-row batches of 30 columns
    (0.20 vs 0.03 s an epoch of 600k rows, one thread) and slowed down further with two threads on a
    loaded CPU, enough to show in a training step."""

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor):
            return tuple(tensor.index_select(0, index) for tensor in self.tensors)
        return tuple(tensor[index] for tensor in self.tensors)


def label_dtype(numpy_dtype) -> str:
    """Class indices are int64 (cross-entropy targets); a float label (regression) stays a float32."""
    return "float32" if np.dtype(numpy_dtype).kind == "f" else "int64"


def to_tensors(frame: pd.DataFrame, features: list[str]) -> TensorRows:
    x = torch.tensor(frame[features].to_numpy(dtype="float32"))
    y = torch.tensor(frame[LABEL].to_numpy(dtype=label_dtype(frame[LABEL].dtype)))
    return TensorRows(x, y)


def block(n_rows: int, rank: int, world: int, equal: bool) -> tuple[int, int]:
    """Rows [start, stop) of process `rank`. `equal`: every block has n_rows // world rows (the last
    n_rows % world rows are left out), because DDP needs the same number of steps in every process."""
    if equal:
        size = n_rows // world
        return rank * size, (rank + 1) * size
    return rank * n_rows // world, (rank + 1) * n_rows // world


def parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def read_block(path: Path, features: list[str], start: int, stop: int) -> TensorRows:
    """Rows [start, stop) of a Parquet split as float32 features and labels as in `to_tensors`. Read
    one column of one row group at a time, so peak memory is the block plus one column chunk, whatever
    the file's size; row groups outside the block are not read at all."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    x = np.empty((stop - start, len(features)), dtype=np.float32)
    y = np.empty(stop - start, dtype=label_dtype(source.schema_arrow.field(LABEL).type.to_pandas_dtype()))
    first = 0  # index of the current row group's first row in the file
    for group in range(source.metadata.num_row_groups):
        rows = source.metadata.row_group(group).num_rows
        lo, hi = max(start, first), min(stop, first + rows)
        if lo < hi:
            for j, name in enumerate([*features, LABEL]):
                column = source.read_row_group(group, columns=[name], use_threads=False).column(0)
                values = column.to_numpy()[lo - first : hi - first]
                if name == LABEL:
                    y[lo - start : hi - start] = values
                else:
                    x[lo - start : hi - start, j] = values
                del column, values
        first += rows
    return TensorRows(torch.from_numpy(x), torch.from_numpy(y))


def load_block(split: pd.DataFrame | Path, features: list[str], rank: int, world: int, equal: bool):
    """A process's rows of a split given in memory (tests, benchmarks) or as a Parquet file (training)."""
    if isinstance(split, pd.DataFrame):
        start, stop = block(len(split), rank, world, equal)
        return to_tensors(split.iloc[start:stop], features)
    start, stop = block(parquet_rows(Path(split)), rank, world, equal)
    return read_block(Path(split), features, start, stop)


class BatchIndices(Sampler):
    """The rows of each batch as one index: a slice of a seeded permutation tensor (shuffle), or a plain
    slice (in order; a view of the split, no copy). The last batch may be short.

    The permutations are the ones torch's RandomSampler draws from the same generator (it draws a second,
    unused one per pass; so does this), so a seed gives the same batches as before this class existed,
    and the same trained model.
    """

    def __init__(self, n_rows: int, batch_size: int, shuffle: bool, seed: int = 0):
        super().__init__()
        self.n_rows, self.batch_size = n_rows, batch_size
        self.generator = torch.Generator().manual_seed(seed) if shuffle else None

    def __len__(self) -> int:
        return -(-self.n_rows // self.batch_size)

    def __iter__(self):
        if self.generator is None:
            for start in range(0, self.n_rows, self.batch_size):
                yield slice(start, min(start + self.batch_size, self.n_rows))
            return
        order = torch.randperm(self.n_rows, generator=self.generator)
        torch.randperm(self.n_rows, generator=self.generator)  # RandomSampler's unused draw: same batches
        for start in range(0, self.n_rows, self.batch_size):
            yield order[start : start + self.batch_size]


def batches(data: TensorDataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader that yields whole batches by index; seeded, so shuffling is reproducible."""
    return DataLoader(data, batch_size=None, sampler=BatchIndices(len(data), batch_size, shuffle, seed))


def per_process_batch(batch_size: int, world: int) -> int:
    """`train.batch_size` is the global batch: each of `world` processes takes an equal part, so adding
    devices keeps the optimiser's steps (and the metrics a PR is judged by) what they were."""
    if batch_size % world:
        raise UserError(
            f"train.batch_size {batch_size} must be a multiple of the {world} training processes "
            "(devices x num_nodes): it is the global batch, split evenly between them"
        )
    return batch_size // world


class TabularDataModule(pl.LightningDataModule):
    """Loads each process's block in `setup`, once Lightning knows the process's rank and the world size."""

    def __init__(
        self,
        train: pd.DataFrame | Path,
        val: pd.DataFrame | Path,
        features: list[str],
        batch_size: int,
        seed: int,
    ):
        super().__init__()
        self.train_source, self.val_source = train, val
        self.features = features
        self.batch_size = batch_size
        self.seed = seed
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    def setup(self, stage: str) -> None:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        self.process_batch = per_process_batch(self.batch_size, world)
        if self.train_set is None:
            # Equal blocks: one process with an extra batch would wait forever on the others' gradients.
            self.train_set = load_block(self.train_source, self.features, rank, world, equal=True)
            # Validation syncs once per epoch (LitTabular sums over processes), so no row is left out.
            self.val_set = load_block(self.val_source, self.features, rank, world, equal=False)

    def train_dataloader(self) -> DataLoader:
        return batches(self.train_set, self.process_batch, shuffle=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader:
        return batches(self.val_set, max(self.process_batch, VAL_BATCH_ROWS), shuffle=False)
