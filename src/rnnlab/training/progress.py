"""What a run records about itself besides its metrics: progress lines for ``train.log`` and
its total training time across stops and resumes."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from rnnlab import metrics as M

log = logging.getLogger("rnnlab.run")

#: The per-epoch values a progress line shows, in this order.
PROGRESS_METRICS = (M.TRAIN_LOSS, M.VAL_MSE, M.VAL_MSE_BEST)


def _line(trainer: L.Trainer, values: dict[str, Any]) -> tuple[str, int, Any, str]:
    shown = " ".join(f"{k}={float(values[k]):.4g}" for k in PROGRESS_METRICS if k in values)
    return "epoch %d/%s: %s", trainer.current_epoch + 1, trainer.max_epochs, shown


class ProgressLog(Callback):
    """One line per epoch in the job's log (``train.log``): the epoch, the training loss, the
    validation MSE and the best so far. (The console shows only warnings; see
    conf/hydra/job_logging/rnnlab.yaml.)"""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        values = dict(trainer.callback_metrics)
        # The module logs train/loss after the callbacks' hooks: ask it for the value.
        values[M.TRAIN_LOSS] = pl_module.epoch_train_loss()
        log.info(*_line(trainer, values))


class JobsProgressLog(Callback):
    """:class:`ProgressLog`'s lines for each job of a pack (rnnlab.training.fused), in its own
    log: ``jobs`` pairs a job's rows of the pack with its logger. A job's values are the means
    over its networks still training, as a job of several networks logs them."""

    def __init__(self, jobs: list[tuple[slice, logging.Logger]]) -> None:
        self.jobs = jobs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        per_network = {**pl_module.val_values, M.TRAIN_LOSS: pl_module.train_losses()}
        for rows, logger in self.jobs:
            alive = pl_module.alive[rows]
            values = {
                k: v[rows][alive].mean() if alive.any() else v[rows].new_tensor(float("nan"))
                for k, v in per_network.items()
            }
            logger.info(*_line(trainer, values))


class FitClock(Callback):
    """Seconds spent in ``trainer.fit`` over every segment of a run: the time before a resume
    is stored in the checkpoint (Lightning saves and restores a callback's ``state_dict``)."""

    def __init__(self) -> None:
        self.before = 0.0  # seconds of earlier segments, from the resumed checkpoint
        self._start: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def seconds(self) -> float:
        """Total so far, this segment included."""
        now = time.perf_counter()
        return self.before + (now - self._start if self._start is not None else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before = float(state_dict.get("seconds", 0.0))
