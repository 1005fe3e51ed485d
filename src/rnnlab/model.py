"""The Forecaster: a cell, a readout and a loss mode, trained to predict the next point."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MinMetric

from rnnlab import metrics as M
from rnnlab.cells import build_cell

LOSS_MODES = ("last", "every")
READOUTS = ("linear", "concat")
READOUT_ACTIVATIONS = {"identity": nn.Identity, "tanh": nn.Tanh}


class Diverged(RuntimeError):
    """Raised when the training loss stops being finite; the run is then reported as diverged."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


class LinearReadout(nn.Module):
    """``y_t = W h_t + b``."""

    def __init__(self, hidden_size: int, output_size: int, activation: str = "identity") -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, output_size)
        self.act = READOUT_ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, h_prev: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(h))


class ConcatReadout(nn.Module):
    """Seed 002's output: ``y_t = act(W [h_{t-1}, x_t] + b)``."""

    def __init__(self, hidden_size: int, output_size: int, activation: str = "tanh") -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size + output_size, output_size)
        self.act = READOUT_ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor, h_prev: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(torch.cat([h_prev, x], dim=-1)))


def _last(t: torch.Tensor) -> torch.Tensor:
    """The final step of a window batch, contiguous as torchmetrics requires."""
    return t[:, -1].contiguous()


def _check_choice(key: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not allowed; allowed: {', '.join(allowed)}")


class Forecaster(L.LightningModule):
    """Predicts ``series[t+1]`` from ``series[t-L+1..t]`` at every step of a window.

    ``loss="last"`` trains on the final step only (seed 002), ``"every"`` on all steps.
    Validation and test metrics always score the final step, so both modes compare.
    """

    def __init__(
        self,
        cell: str = "scratch",
        input_size: int = 2,
        hidden_size: int = 32,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        readout: str = "linear",
        readout_activation: str = "identity",
        loss: str = "last",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
    ) -> None:
        super().__init__()
        _check_choice("model.loss", loss, LOSS_MODES)
        _check_choice("model.readout", readout, READOUTS)
        _check_choice("model.readout_activation", readout_activation, READOUT_ACTIVATIONS)
        _check_choice("model.scheduler", scheduler, ("cosine", "none"))
        self.save_hyperparameters()
        self.cell = build_cell(cell, input_size, hidden_size, num_layers, nonlinearity)
        readout_cls = ConcatReadout if readout == "concat" else LinearReadout
        self.readout = readout_cls(hidden_size, input_size, readout_activation)

        self.val_mse, self.val_mae = MeanSquaredError(), MeanAbsoluteError()
        self.val_mse_best = MinMetric()
        self.val_persistence = MeanSquaredError()
        self.test_mse, self.test_mae = MeanSquaredError(), MeanAbsoluteError()
        self.test_persistence = MeanSquaredError()
        self._train_loss_sum = torch.zeros(())
        self._train_count = 0

    # -- the network -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step predictions ``(B, L, C)``: entry ``t`` forecasts ``x[:, t + 1]``."""
        h, _ = self.cell(x)
        h_prev = torch.cat([h.new_zeros(h.shape[0], 1, h.shape[2]), h[:, :-1]], dim=1)
        return self.readout(x, h_prev, h)

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, steps: int) -> torch.Tensor:
        """Forecast ``steps`` points ahead, feeding predictions back as inputs.

        Each prediction sees the last ``L`` points, exactly as in training.
        """
        window = context
        preds = []
        for _ in range(steps):
            nxt = self(window)[:, -1:]
            preds.append(nxt)
            window = torch.cat([window[:, 1:], nxt], dim=1)
        return torch.cat(preds, dim=1)

    def loss_fn(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "last":
            return nn.functional.mse_loss(pred[:, -1], target[:, -1])
        return nn.functional.mse_loss(pred, target)

    # -- training --------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self._raise_if_diverged(loss)
        self._train_loss_sum = self._train_loss_sum + loss.detach() * len(x)
        self._train_count += len(x)
        return loss

    def _raise_if_diverged(self, loss: torch.Tensor) -> None:
        bad = not torch.isfinite(loss).item()
        if self.trainer.world_size > 1:  # every rank must stop together
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            raise Diverged(self.current_epoch, self.global_step, loss.item())

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum = torch.zeros((), device=self.device)
        self._train_count = 0

    def on_train_epoch_end(self) -> None:
        # Logged once per epoch: per-step self.log costs more than the step itself here.
        mean = self._train_loss_sum / max(self._train_count, 1)
        self.log(M.TRAIN_LOSS, mean, on_epoch=True, sync_dist=True)

    # -- evaluation ------------------------------------------------------------------------
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred = self(x)
        self.log(M.VAL_LOSS, self.loss_fn(pred, y), batch_size=len(x), sync_dist=True)
        pred_last, y_last = _last(pred), _last(y)
        self.val_mse(pred_last, y_last)
        self.val_mae(pred_last, y_last)
        self.val_persistence(_last(x), y_last)
        self.log(M.VAL_MSE, self.val_mse)
        self.log(M.VAL_MAE, self.val_mae)
        self.log(M.VAL_PERSISTENCE_MSE, self.val_persistence)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_mse_best(self.val_mse.compute())
        self.log(M.VAL_MSE_BEST, self.val_mse_best.compute())

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred_last, y_last = _last(self(x)), _last(y)
        self.test_mse(pred_last, y_last)
        self.test_mae(pred_last, y_last)
        self.test_persistence(_last(x), y_last)
        self.log(M.TEST_MSE, self.test_mse)
        self.log(M.TEST_MAE, self.test_mae)
        self.log(M.PERSISTENCE_MSE, self.test_persistence)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.scheduler == "none":
            return optimizer
        max_epochs = max(self.trainer.max_epochs or 1, 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
