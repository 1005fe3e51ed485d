"""``<run dir>/csv/metrics.csv``: a job's learning curves as one CSV row per epoch, readable
without TensorBoard (pandas, a spreadsheet).

Lightning's ``CSVLogger`` writes one row per ``log_metrics`` call; rnnlab logs an epoch in about
ten calls (Lightning's own epoch metrics, the learning rate at the epoch's start, and each of
its callbacks' scalars, :func:`rnnlab.observe.tensorboard._log_epoch_scalars`), so
:class:`EpochCSVLogger`
merges everything logged during one epoch into that epoch's row (``epoch``; ``step``: the
epoch's last step). What is logged outside an epoch gets a row of its own, without ``epoch``:
the gradient-flow diagnostics at initialisation (step 0) and the test metrics (the step after
the last epoch). A replicas job's row holds the means and ``<tag>_replica_min``/``_max``, and
for rnnlab.metrics.PER_NETWORK_CSV each network's own value (``<tag>_replica_<r>``); each
replica's other curves are only in TensorBoard (``tb/replica_<r>/``). Written on rank 0 only.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

from rnnlab import internals

#: The file, relative to the run directory.
CSV_FILE = Path("csv") / ExperimentWriter.NAME_METRICS_FILE
#: The columns that come first; the metrics follow in alphabetical order.
FIRST = ("epoch", "step")


class _EpochRows(internals.KeepsEarlierCSV, ExperimentWriter):
    """Rows keyed by epoch (or by step outside an epoch), rewritten whole on every save: a run
    has tens of rows, and a new metric only adds a column."""

    def __init__(self, log_dir: str, resume: bool) -> None:
        self.resume = resume
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        super().__init__(log_dir)

    def kept_earlier_rows(self) -> bool:
        """A resumed run goes on with the rows it has; a fresh run starts a fresh file."""
        path = Path(self.metrics_file_path)
        if not (self.resume and path.is_file()):
            return False
        with path.open(newline="") as file:
            for row in csv.DictReader(file):
                row = {k: int(v) if k in FIRST else float(v) for k, v in row.items() if v != ""}
                epoch = row.get("epoch")
                key = ("epoch", epoch) if epoch is not None else ("step", row["step"])
                self.rows[key] = row
        return True

    def keep_epochs_before(self, epoch: int) -> None:
        """After a resume from the end of epoch ``epoch - 1``: drop the rows of the epochs it
        trains again and the earlier test's, keep those before and the initialisation row."""
        self.rows = {
            key: row
            for key, row in self.rows.items()
            if (key[0] == "epoch" and key[1] < epoch) or key == ("step", 0)
        }

    def log_row(self, metrics: dict[str, Any], step: int, epoch: int | None) -> None:
        key = ("epoch", epoch) if epoch is not None else ("step", step)
        row = self.rows.setdefault(key, {})
        row.update({k: v.item() if torch.is_tensor(v) else v for k, v in metrics.items()})
        row["step"] = max(step, row.get("step", step))
        if epoch is None:
            row.pop("epoch", None)  # Lightning's test metrics carry the epoch count
        else:
            row["epoch"] = epoch

    def save(self) -> None:
        if not self.rows:
            return
        rows = sorted(self.rows.values(), key=lambda r: (r["step"], r.get("epoch", -1)))
        names = sorted(set().union(*rows) - set(FIRST))
        tmp = Path(self.metrics_file_path).with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=[*FIRST, *names])
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.metrics_file_path)


class EpochCSVLogger(CSVLogger):
    """Lightning's CSVLogger, one row per epoch (:mod:`rnnlab.observe.csv_log`); it needs
    :class:`CSVEpochs` among the Trainer's callbacks to know the epoch. ``resume``: keep the
    rows of the run being resumed."""

    def __init__(self, save_dir: str | Path, resume: bool = False) -> None:
        super().__init__(save_dir=save_dir, name="csv", version="")
        self.resume = resume
        self.epoch: int | None = None  # set by CSVEpochs while an epoch trains and validates

    @property
    def experiment(self) -> _EpochRows:
        if rank_zero_only.rank != 0:
            return super().experiment  # Lightning's stand-in on the other ranks
        return internals.csv_writer(self, lambda: _EpochRows(self.log_dir, self.resume))

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.experiment.log_row(metrics, 0 if step is None else step, self.epoch)


class CSVEpochs(Callback):
    """Tells :class:`EpochCSVLogger` which epoch is training, and writes the file after each
    epoch, so the curves can be read while a run trains."""

    def __init__(self, logger: EpochCSVLogger) -> None:
        self.logger = logger

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.logger.experiment.keep_epochs_before(trainer.current_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.logger.epoch is not None:  # the previous epoch is complete
            self.logger.save()
        self.logger.epoch = trainer.current_epoch

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.logger.epoch = None
        self.logger.save()
