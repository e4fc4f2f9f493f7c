"""The model: a standardising MLP (a plain nn.Module that ships) inside a LightningModule (that trains).

Swap in your own architecture by editing `build_network`; the Lightning wrapper, export and serving
only rely on "raw features in, logits out".
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics, stored as buffers so they export."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_network(n_features: int, n_classes: int, hidden: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    """What gets exported to TorchScript and served: raw feature values in, class logits out."""

    def __init__(self, scaler: dict, n_classes: int, hidden: list[int], dropout: float = 0.0):
        super().__init__()
        self.scale = Standardize(scaler["mean"], scaler["std"])
        self.body = build_network(len(scaler["mean"]), n_classes, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.scale(x))


class LitClassifier(pl.LightningModule):
    """Training logic only: loss, optimiser and the per-epoch metrics that MLflow records.

    Epoch metrics are summed in tensors and sent to the logger once per epoch. Lightning's
    `self.log` costs about a millisecond a call, more than a whole step of a small tabular model
    (benchmarks/train_loop.py measures the loop against plain PyTorch). Under DDP each process sums its
    own rows and the sums are added across processes once per epoch, so the logged metrics cover the
    whole validation split, and only rank 0 (Lightning's rank-zero logger) writes them.
    """

    def __init__(
        self,
        scaler: dict,
        n_classes: int,
        hidden: list[int],
        dropout: float,
        lr: float,
        weight_decay: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["scaler"])
        self.net = Classifier(scaler, n_classes, hidden, dropout)
        self.loss = nn.CrossEntropyLoss()
        self.history: list[dict[str, float]] = []  # one row per epoch: the training-curves plot
        self._sums = torch.zeros(5)  # train loss*rows, train rows, val loss*rows, val correct, val rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        self._sums = torch.zeros(5, device=self.device)  # on the accelerator: no host sync per step

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        rows = torch.tensor(float(len(y)), device=loss.device)
        self._sums[:2] += torch.stack([loss.detach() * len(y), rows])
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        correct = (logits.argmax(1) == y).sum()
        rows = torch.tensor(len(y), device=logits.device)
        self._sums[2:] += torch.stack([self.loss(logits, y) * len(y), correct, rows]).float()

    def on_validation_epoch_end(self) -> None:
        # Validation runs after the epoch's last training batch, so this row holds both.
        if self.trainer.sanity_checking:
            return
        sums = self._sums
        if self.trainer.world_size > 1:  # every process must take part: before any rank-0-only branch
            sums = self.trainer.strategy.reduce(sums.clone(), reduce_op="sum")
        train_loss, train_rows, val_loss, correct, val_rows = sums.tolist()
        row = {
            "train_loss": train_loss / max(train_rows, 1),
            "val_loss": val_loss / max(val_rows, 1),
            "val_accuracy": correct / max(val_rows, 1),
        }
        self.history.append({"epoch": self.current_epoch + 1, **row})
        if self.logger:
            self.logger.log_metrics(row, step=self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
