"""Ctrl-C and ``kill``: SIGINT/SIGTERM finish the current epoch, so the last checkpoint sits on
an epoch boundary and a resumed run reproduces an uninterrupted one exactly.

A second signal stops at once (Lightning then exits with status 1), leaving the previous
epoch's checkpoint to resume from. (A mid-epoch checkpoint would not resume exactly: the data
loader's position and the epoch's running sums are not in it.)
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from rnnlab.config.resume import last_checkpoint, resume_command
from rnnlab.models.forecaster import Diverged

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopAtEpochEnd(Callback):
    """Turns the first SIGINT/SIGTERM during training into a stop at the end of the epoch.

    ``signum`` is the signal that stopped the run (None if none did). Lightning's own SIGTERM
    handler (stop after the current batch) is replaced while training runs and put back after.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._trainer: L.Trainer | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # the second signal: stop now
        self.signum = signum
        trainer = self._trainer
        log.warning(
            "%s: stopping after epoch %s of %s, once its checkpoint is saved "
            "(send it again to stop at once)",
            signal.Signals(signum).name,
            trainer.current_epoch + 1 if trainer else "?",
            trainer.max_epochs if trainer else "?",
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trainer = trainer
        for signum in STOP_SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals to Lightning
                return

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        signum = self.signum or 0
        if trainer.world_size > 1:  # a signal may reach one rank only; all must stop together
            signum = torch.tensor(signum, device=pl_module.device)
            signum = int(trainer.strategy.reduce(signum, reduce_op="max"))
        if signum:
            self.signum = signum
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
        if isinstance(exception, Diverged) or not trainer.is_global_zero:
            return
        run_dir = trainer.default_root_dir
        saved = last_checkpoint(run_dir).is_file()
        if not isinstance(exception, KeyboardInterrupt):  # a crash: the error says why
            if saved:
                log.warning("the last epoch's checkpoint is kept: %s", resume_command(run_dir))
            return
        if saved:
            log.warning(
                "stopped; resume from the last epoch's checkpoint with: %s", resume_command(run_dir)
            )
        else:
            log.warning("stopped before the first checkpoint; start the run again")


def interruption(stop: StopAtEpochEnd, trainer: L.Trainer, run_dir: Path) -> dict[str, Any]:
    """``metrics.json`` fields for a run that ``stop`` stopped before its last epoch (status
    ``interrupted``, the signal, how to resume); empty if it was not."""
    if stop.signum is None or trainer.current_epoch >= (trainer.max_epochs or 0):
        return {}
    name = signal.Signals(stop.signum).name
    return {
        "status": "interrupted",
        "stopped_by": name,
        "error": f"stopped by {name} after {trainer.current_epoch} of {trainer.max_epochs} "
        f"epochs; resume with: {resume_command(run_dir)}",
    }
