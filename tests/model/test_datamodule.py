"""Per-process blocks of a split: streamed from Parquet, equal to slicing the table, covering every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mlops.config.errors import UserError
from mlops.config.sections import Train
from model import datamodule
from model.datamodule import batches, block, load_block, per_process_batch, read_block, to_tensors

FEATURES = ["a", "b", "c"]


@pytest.fixture
def table(tmp_path):
    """1,003 rows in row groups of 100, so blocks start and end inside groups and groups get skipped."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(1003, 3)) * 1e3, columns=FEATURES)
    frame["label"] = rng.integers(0, 3, size=len(frame))
    frame["ignored"] = "x"
    path = tmp_path / "train.parquet"
    frame.to_parquet(path, index=False, row_group_size=100)
    return frame, path


@pytest.mark.parametrize("world", [1, 2, 3, 7])
@pytest.mark.parametrize("equal", [True, False])
def test_blocks_read_from_parquet_equal_the_same_slice_in_memory(table, world, equal):
    frame, path = table
    seen = []
    for rank in range(world):
        start, stop = block(len(frame), rank, world, equal)
        streamed = load_block(path, FEATURES, rank, world, equal)
        sliced = load_block(frame, FEATURES, rank, world, equal)
        assert streamed.tensors[0].dtype == torch.float32 and streamed.tensors[1].dtype == torch.int64
        assert torch.equal(streamed.tensors[0], sliced.tensors[0])
        assert torch.equal(streamed.tensors[1], sliced.tensors[1])
        assert torch.equal(
            streamed.tensors[0], torch.tensor(frame[FEATURES].iloc[start:stop].to_numpy(dtype="float32"))
        )
        seen.append((start, stop))
    sizes = {stop - start for start, stop in seen}
    assert seen[0][0] == 0 and all(seen[i][1] == seen[i + 1][0] for i in range(world - 1))
    if equal:  # same steps in every process; at most world-1 rows left out
        assert len(sizes) == 1 and len(frame) - seen[-1][1] < world
    else:  # validation: every row, once
        assert seen[-1][1] == len(frame) and max(sizes) - min(sizes) <= 1


def test_one_process_reads_the_whole_split_as_before(table):
    frame, path = table
    data = read_block(path, FEATURES, 0, len(frame))
    assert torch.equal(data.tensors[0], torch.tensor(frame[FEATURES].to_numpy(dtype="float32")))
    assert torch.equal(data.tensors[1], torch.tensor(frame["label"].to_numpy()))


def test_batch_size_is_the_global_batch():
    assert per_process_batch(64, 1) == 64 and per_process_batch(64, 4) == 16
    with pytest.raises(UserError, match=r"train.batch_size 64 must be a multiple of the 3 training proc"):
        per_process_batch(64, 3)


def test_trainer_placement_defaults_and_overrides():
    assert Train().placement() == {"accelerator": "cpu", "devices": 1, "strategy": "auto", "num_nodes": 1}
    cfg = Train(accelerator="gpu", devices="4", strategy="ddp", num_nodes=2)
    assert cfg.placement() == {"accelerator": "gpu", "devices": 4, "strategy": "ddp", "num_nodes": 2}
    assert Train(devices=[0, 2]).placement()["devices"] == [0, 2]
    assert Train(devices="auto").placement()["devices"] == "auto"


def reference_batches(data, batch_size, shuffle, seed=0):
    """What `batches` was before BatchIndices: torch's own samplers, one Python int per row."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    if shuffle:
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(data)
    return DataLoader(data, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=False))


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_size", [1, 64, 100, 5000])
def test_batches_are_the_ones_torch_samplers_give_for_the_same_seed(table, shuffle, batch_size):
    """Same seed, same batches, epoch after epoch: switching the sampler leaves trained models unchanged."""
    frame, _ = table
    data = to_tensors(frame, FEATURES)
    ours, theirs = batches(data, batch_size, shuffle, seed=7), reference_batches(data, batch_size, shuffle, 7)
    assert len(ours) == len(theirs) == -(-len(frame) // batch_size)
    for _ in range(3):  # epochs: each draws a new permutation from the same generator
        pairs = list(zip(ours, theirs, strict=True))
        for (x, y), (ref_x, ref_y) in pairs:
            assert torch.equal(x, ref_x) and torch.equal(y, ref_y)
        # every row exactly once per epoch
        assert sorted(torch.cat([y for (_, y), _ in pairs]).tolist()) == sorted(frame["label"].tolist())


def test_in_order_batches_are_views_not_copies(table):
    frame, _ = table
    data = to_tensors(frame, FEATURES)
    (x, y), *_ = batches(data, len(frame), shuffle=False)
    assert x.data_ptr() == data.tensors[0].data_ptr() and torch.equal(y, data.tensors[1])


def test_a_float_label_stays_float_for_regression(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "label": [0.5, -1.25, 7.0]})
    path = tmp_path / "train.parquet"
    frame.to_parquet(path, index=False)
    for data in (load_block(frame, ["a"], 0, 1, False), load_block(path, ["a"], 0, 1, False)):
        assert data.tensors[1].dtype == torch.float32
        assert data.tensors[1].tolist() == [0.5, -1.25, 7.0]


def test_validation_runs_in_bounded_slices_that_cover_every_row_once(table, monkeypatch):
    frame, path = table
    monkeypatch.setattr(datamodule, "VAL_BATCH_ROWS", 300)
    data = datamodule.TabularDataModule(frame, path, FEATURES, batch_size=64, seed=0)
    data.setup("fit")
    parts = list(data.val_dataloader())
    assert [len(y) for _, y in parts] == [300, 300, 300, 103]
    assert torch.equal(torch.cat([x for x, _ in parts]), torch.tensor(frame[FEATURES].to_numpy("float32")))
    monkeypatch.setattr(datamodule, "VAL_BATCH_ROWS", 10)  # never smaller than the training batch
    assert {len(y) for _, y in data.val_dataloader()} == {64, 1003 % 64}
