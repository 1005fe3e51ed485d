"""The Lightning callbacks that save a run's checkpoints.

- :func:`best_checkpoint`: ``checkpoints/best.ckpt``, the epoch with the lowest ``val/mse``
  (what the test metrics score);
- :func:`last_epoch_checkpoint`: ``checkpoints/last.ckpt``, written at every epoch end, where
  ``resume=`` continues from.

A Forecaster refuses to save a model that is no longer finite (its ``on_save_checkpoint``), so
the last checkpoint of a diverged run is its last finite one.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from rnnlab import metrics as M
from rnnlab.config.resume import BEST_CHECKPOINT, CHECKPOINT_DIR, last_checkpoint


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


def save_module(module: L.LightningModule, path: Path, epoch: int, step: int) -> Path:
    """Save ``module`` as a checkpoint its class's ``load_from_checkpoint`` reads (its weights
    and hyperparameters), without a Trainer: what a job of a fused pack writes as its
    ``best.ckpt`` (rnnlab.training.fused)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "epoch": epoch,
        "global_step": step,
        "pytorch-lightning_version": L.__version__,
        "state_dict": module.state_dict(),
        module.CHECKPOINT_HYPER_PARAMS_KEY: dict(module.hparams),
    }
    if module.keeps_best_weights:  # how each network ended (a Forecaster's hook needs a Trainer)
        module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path
