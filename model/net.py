"""The model: preprocessing + engineered features + MLP (a plain nn.Module that ships) inside a
LightningModule (that trains).

`train.model` in params.yaml names the LightningModule class, or a network builder, and its arguments
(docs/models.md); `LitTabular` is the default. Export and serving only rely on the module's `net`:
"encoded raw features in (model/encoding.py), logits or the regression value out", in TorchScript.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from model.features import Features

DATE_TYPES = ("date", "datetime")
DATE_PARTS = 7  # model/encoding.py's DATETIME_PARTS; a date column keeps the first 6


def _floor_div(a: torch.Tensor, b: int) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor")


def date_parts(days: torch.Tensor) -> torch.Tensor:
    """[n, D] days since 1970-01-01 -> [n, D, 7]: days, year, month, day, weekday (Monday 0), day of
    year, hour. Integer arithmetic on whole days (Hinnant's civil-from-days), so it is exact for years
    1-9999 and equal to model/encoding.py's `date_parts`; the hour is the fraction of the day."""
    whole = torch.floor(days)
    z = whole.long() + 719468
    era = _floor_div(z, 146097)
    doe = z - era * 146097
    yoe = _floor_div(doe - _floor_div(doe, 1460) + _floor_div(doe, 36524) - _floor_div(doe, 146096), 365)
    doy = doe - (365 * yoe + _floor_div(yoe, 4) - _floor_div(yoe, 100))
    mp = _floor_div(5 * doy + 2, 153)
    day = doy - _floor_div(153 * mp + 2, 5) + 1
    month = torch.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2).long()
    before = year - 1
    era1 = _floor_div(before, 400)
    yoe1 = before - era1 * 400
    jan1 = era1 * 146097 + yoe1 * 365 + _floor_div(yoe1, 4) - _floor_div(yoe1, 100) + 306 - 719468
    weekday = torch.remainder(z - 719468 + 3, 7)
    yearday = z - 719468 - jan1 + 1
    parts = [year, month, day, weekday, yearday]
    out = [whole] + [p.to(days.dtype) for p in parts] + [(days - whole) * 24.0]
    return torch.stack(out, dim=2)


class Preprocess(nn.Module):
    """Encoded raw features (model/encoding.py) to the network's input, with what `prepare` fitted on
    the training split stored as buffers, so the exported TorchScript carries it and serving cannot
    differ: NaN -> the column's fill value; numeric and bool columns standardised; a date column (days
    since 1970-01-01) expanded into its derived parts (`date_parts`), each standardised; each category
    code one-hot over its vocabulary plus one "unknown" slot (code -1, or any code outside it)."""

    def __init__(self, preprocessing: dict):
        super().__init__()
        columns = list(preprocessing["columns"])
        numeric = [j for j, c in enumerate(columns) if c["type"] not in ("category", *DATE_TYPES)]
        category = [j for j, c in enumerate(columns) if c["type"] == "category"]
        dates = [j for j, c in enumerate(columns) if c["type"] in DATE_TYPES]
        keep = [i * DATE_PARTS + p for i, j in enumerate(dates) for p in range(len(columns[j]["mean"]))]
        self.register_buffer("date_index", torch.tensor(dates, dtype=torch.long))
        self.register_buffer("date_keep", torch.tensor(keep, dtype=torch.long))
        self.register_buffer(
            "date_mean", torch.tensor([m for j in dates for m in columns[j]["mean"]], dtype=torch.float32)
        )
        self.register_buffer(
            "date_std", torch.tensor([s for j in dates for s in columns[j]["std"]], dtype=torch.float32)
        )
        self.date_width: int = len(keep)
        sizes = [len(columns[j]["categories"]) for j in category]
        offsets = [sum(s + 1 for s in sizes[:i]) for i in range(len(sizes))]
        self.register_buffer("fill", torch.tensor([float(c["fill"]) for c in columns], dtype=torch.float32))
        self.register_buffer("numeric_index", torch.tensor(numeric, dtype=torch.long))
        self.register_buffer("mean", torch.tensor([columns[j]["mean"] for j in numeric], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([columns[j]["std"] for j in numeric], dtype=torch.float32))
        self.register_buffer("category_index", torch.tensor(category, dtype=torch.long))
        self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.float32))
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long))
        self.one_hot_width: int = sum(s + 1 for s in sizes)
        self.width: int = len(numeric) + self.date_width + self.one_hot_width

    def filled(self, x: torch.Tensor) -> torch.Tensor:
        """NaN -> the column's fill value: what the feature hook (model/features.py) sees."""
        return torch.where(torch.isnan(x), self.fill, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded features -> the network's input (filling again is a no-op on filled input)."""
        x = self.filled(x)
        parts = [(x.index_select(1, self.numeric_index) - self.mean) / self.std]
        if self.date_width > 0:
            derived = date_parts(x.index_select(1, self.date_index)).reshape(x.shape[0], -1)
            parts.append((derived.index_select(1, self.date_keep) - self.date_mean) / self.date_std)
        if self.one_hot_width > 0:
            codes = x.index_select(1, self.category_index)
            known = (codes >= 0) & (codes < self.sizes) & (codes == torch.floor(codes))
            slot = torch.where(known, codes, self.sizes).long() + self.offsets
            one_hot = torch.zeros(x.shape[0], self.one_hot_width, dtype=x.dtype, device=x.device)
            parts.append(one_hot.scatter_(1, slot, 1.0))
        return torch.cat(parts, dim=1)


def build_network(n_inputs: int, n_outputs: int, hidden: Sequence[int], dropout: float) -> nn.Sequential:
    """The default body: an MLP. A network builder named in `train.model` has this signature: it gets
    `n_inputs` and `n_outputs` and its own keyword arguments from params.yaml."""
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class TabularNet(nn.Module):
    """What gets exported to TorchScript and served: encoded raw features [n, F] in; class logits
    [n, C] out, or for regression [n, 1] in the label's units (the network learns a standardised target;
    the training split's mean and std undo it here). The engineered features (model/features.py) are
    computed inside, so serving computes them exactly as training did."""

    def __init__(
        self,
        preprocessing: dict,
        n_outputs: int,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        body: nn.Module | None = None,
        features: nn.Module | None = None,
    ):
        super().__init__()
        self.prep = Preprocess(preprocessing)
        self.features = (
            features if features is not None else Features([c["name"] for c in preprocessing["columns"]])
        )
        n_inputs = self.prep.width + int(self.features.width)
        self.body = body if body is not None else build_network(n_inputs, n_outputs, hidden, dropout)
        target = preprocessing.get("target") or {}
        self.regression: bool = preprocessing.get("task", "classification") == "regression"
        self.register_buffer("target_mean", torch.tensor(float(target.get("mean", 0.0))))
        self.register_buffer("target_std", torch.tensor(float(target.get("std", 1.0))))

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        filled = self.prep.filled(x)
        return torch.cat([self.prep(filled), self.features(filled)], dim=1)

    @torch.jit.export
    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """The network's own output: logits, or the standardised regression target (training's loss)."""
        return self.body(self.inputs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.inputs(x))
        if self.regression:
            out = out * self.target_std + self.target_mean
        return out


class LitTabular(pl.LightningModule):
    """Training logic for classification and regression: loss, optimiser and the per-epoch metrics that
    MLflow records. The default `train.model`; a module of your own follows the contract in
    docs/models.md (the constructor arguments `preprocessing`, `n_outputs`, `class_weights`,
    `optimizer`, `features`, and a `net` attribute that is exported).

    Epoch metrics are summed in tensors and sent to the logger once per epoch. Lightning's
    `self.log` costs about a millisecond a call, more than a whole step of a small tabular model
    (benchmarks/train_loop.py measures the loop against plain PyTorch). Under DDP each process sums its
    own rows and the sums are added across processes once per epoch, so the logged metrics cover the
    whole validation split, and only rank 0 (Lightning's rank-zero logger) writes them.
    """

    def __init__(
        self,
        preprocessing: dict,
        n_outputs: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        hidden: Sequence[int] = (32, 16),
        dropout: float = 0.1,
        class_weights: list[float] | None = None,
        body: nn.Module | None = None,
        features: nn.Module | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["preprocessing", "optimizer", "body", "features"])
        self.optimizer = optimizer
        self.regression = preprocessing.get("task", "classification") == "regression"
        self.net = TabularNet(preprocessing, n_outputs, hidden, dropout, body=body, features=features)
        if self.regression:
            self.loss = nn.MSELoss()
            self.target_mean, self.target_std = self.net.target_mean.item(), self.net.target_std.item()
        else:
            weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
            self.loss = nn.CrossEntropyLoss(weight=weight)
        self.history: list[dict[str, float]] = []  # one row per epoch: the training-curves plot
        # train loss*rows, train rows, val loss*rows, val correct|sq.err, val rows
        self._sums = torch.zeros(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, output): regression compares standardised values, so the loss scale is unit-free."""
        out = self.net.standardised(x)
        if self.regression:
            target = (y.float() - self.target_mean) / self.target_std
            return self.loss(out.squeeze(1), target), out
        return self.loss(out, y), out

    def on_train_epoch_start(self) -> None:
        self._sums = torch.zeros(5, device=self.device)  # on the accelerator: no host sync per step

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss, _ = self._loss(x, y)
        rows = torch.tensor(float(len(y)), device=loss.device)
        self._sums[:2] += torch.stack([loss.detach() * len(y), rows])
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss, out = self._loss(x, y)
        if self.regression:  # squared error in the label's units: val_rmse
            quality = ((out.squeeze(1) * self.target_std + self.target_mean - y.float()) ** 2).sum()
        else:
            quality = (out.argmax(1) == y).sum()
        rows = torch.tensor(len(y), device=out.device)
        self._sums[2:] += torch.stack([loss * len(y), quality.float(), rows.float()])

    def on_validation_epoch_end(self) -> None:
        # Validation runs after the epoch's last training batch, so this row holds both.
        if self.trainer.sanity_checking:
            return
        sums = self._sums
        if self.trainer.world_size > 1:  # every process must take part: before any rank-0-only branch
            sums = self.trainer.strategy.reduce(sums.clone(), reduce_op="sum")
        train_loss, train_rows, val_loss, quality, val_rows = sums.tolist()
        row = {"train_loss": train_loss / max(train_rows, 1), "val_loss": val_loss / max(val_rows, 1)}
        if self.regression:
            row["val_rmse"] = (quality / max(val_rows, 1)) ** 0.5
        else:
            row["val_accuracy"] = quality / max(val_rows, 1)
        self.history.append({"epoch": self.current_epoch + 1, **row})
        if self.logger:
            self.logger.log_metrics(row, step=self.current_epoch)

    def configure_optimizers(self):
        return self.optimizer(self.parameters())
