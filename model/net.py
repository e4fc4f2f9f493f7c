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
    """Training logic only: loss, optimiser and the per-epoch metrics that MLflow records."""

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
        # Manual optimisation: the same zero_grad/backward/step, without the closure machinery that
        # costs more than a whole step of a small tabular model (see benchmarks/train_loop.py).
        self.automatic_optimization = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        optimiser = self.optimizers()
        optimiser.zero_grad()
        self.manual_backward(loss)
        optimiser.step()
        # Sum here and log once per epoch: self.log on every step costs more than the step itself.
        self._epoch_loss = self._epoch_loss + loss.detach() * len(y)
        self._epoch_rows += len(y)
        return loss

    def on_train_epoch_start(self) -> None:
        self._epoch_loss, self._epoch_rows = torch.zeros(()), 0

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self._val_sums = self._val_sums + torch.stack(
            [
                self.loss(logits, y) * len(y),
                (logits.argmax(1) == y).sum().float(),
                torch.tensor(float(len(y))),
            ]
        )

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(3)

    def on_validation_epoch_end(self) -> None:
        # Validation runs after the epoch's last training batch, so one log_dict carries both.
        loss_sum, correct, rows = self._val_sums
        self.log_dict(
            {
                "train_loss": self._epoch_loss / max(self._epoch_rows, 1),
                "val_loss": loss_sum / rows,
                "val_accuracy": correct / rows,
            }
        )

    def configure_optimizers(self):
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
