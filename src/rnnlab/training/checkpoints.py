"""The Lightning callbacks that save a run's checkpoints.

- :func:`best_checkpoint`: ``checkpoints/best.ckpt``, the epoch with the lowest ``val/mse``
  (what the test metrics score);
- :func:`last_epoch_checkpoint`: ``checkpoints/last.ckpt``, written at every epoch end, where
  ``resume=`` continues from;
- :class:`FiniteCheckpoints`: refuses to save a model that is no longer finite, so the last
  checkpoint of a diverged run is its last finite one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from rnnlab import metrics as M
from rnnlab.config.resume import BEST_CHECKPOINT, CHECKPOINT_DIR, last_checkpoint
from rnnlab.models.forecaster import Diverged
from rnnlab.models.replicas import ReplicaForecaster


def best_checkpoint(run_dir: Path) -> ModelCheckpoint:
    """``checkpoints/best.ckpt``: the lowest validation MSE so far."""
    return ModelCheckpoint(
        dirpath=Path(run_dir) / CHECKPOINT_DIR,
        filename=Path(BEST_CHECKPOINT).stem,
        monitor=M.VAL_MSE,
        mode="min",
        save_top_k=1,
    )


def last_epoch_checkpoint(run_dir: Path) -> ModelCheckpoint:
    """``checkpoints/last.ckpt`` at the end of every epoch.

    Not ``ModelCheckpoint(save_last=True)``: since Lightning 2.6 that writes only in epochs
    where the monitored metric improved.
    """
    path = last_checkpoint(run_dir)
    return ModelCheckpoint(dirpath=path.parent, filename=path.stem, enable_version_counter=False)


class FiniteCheckpoints(Callback):
    """Raises :class:`Diverged` instead of saving a model whose weights or validation MSE are
    no longer finite.

    The loss check in ``Forecaster.training_step`` sees a NaN one step after the update that
    made it, and a finite training loss can still overflow on the validation split.
    """

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if isinstance(pl_module, ReplicaForecaster):
            return  # a ReplicaForecaster freezes its diverged replicas and goes on
        val_mse = trainer.callback_metrics.get(M.VAL_MSE)
        if val_mse is not None and not torch.isfinite(val_mse):
            raise Diverged(trainer.current_epoch, trainer.global_step, float(val_mse), M.VAL_MSE)
        if not all(torch.isfinite(p).all() for p in pl_module.parameters()):
            raise Diverged(trainer.current_epoch, trainer.global_step, math.nan, "weights")
