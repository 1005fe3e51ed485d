"""[loop] Training samples/s of the project's path (DataModule + Forecaster + the Trainer that
train.py builds) against a plain PyTorch loop over the same model, data, batch size, optimizer,
clipping and number of steps, and against the same model under the bare Trainer; then the same
three loops around a step that does no model work, which isolates the Trainer's own cost."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torchmetrics import MeanSquaredError

from rnnlab import metrics as M
from rnnlab.bench.common import (
    StepClock,
    bare_trainer,
    compose,
    interleaved,
    median,
    size,
    sync,
    table,
)
from rnnlab.config.choices import VANILLA_CELLS as CELL_NAMES
from rnnlab.internals import CheapHookName
from rnnlab.models.forecaster import Forecaster, optimizer_and_schedule
from rnnlab.models.network import Networks
from rnnlab.training.experiment import build_datamodule, build_model, build_trainer


def empty_loss(model: Forecaster) -> torch.Tensor:
    """A loss that costs next to nothing: what remains of a step is the loop around it."""
    return model.readout.linear.bias.sum() * 0.0


class EmptyStep(CheapHookName, L.LightningModule):
    """The instrument for the Trainer's own cost per step: a Forecaster's parameters, optimizer
    and clipping around a training step that does no model work. It holds the Forecaster
    rather than subclassing it: the project is measured, not modified. Its hooks cost what the
    Forecaster's do (the same ``CheapHookName``).

    It validates just enough for the project's callbacks to run as in a real fit: ``val/mse``
    for the checkpoints, ``hparams`` and, from its Forecaster, what the callbacks read of a
    module (rnnlab.models.network.NetworkModule).
    """

    def __init__(self, forecaster: Forecaster) -> None:
        super().__init__()
        self.forecaster = forecaster
        self.hparams.update(forecaster.hparams)
        self.val_mse = MeanSquaredError()

    # what rnnlab's callbacks read of a module: its Forecaster's
    @property
    def alive(self) -> torch.Tensor:
        return self.forecaster.alive

    def epoch_train_loss(self) -> torch.Tensor:
        return self.forecaster.epoch_train_loss()

    def grad_norms(self) -> torch.Tensor:
        return self.forecaster.grad_norms()

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.forecaster.hidden(x)

    def networks(self, tested: bool | torch.Tensor = False) -> Networks:
        return self.forecaster.networks(tested)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        return empty_loss(self.forecaster)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred = self.forecaster(x, last_only=True)
        self.val_mse.update(pred[:, -1], y[:, -1].contiguous())  # torchmetrics views its inputs

    def on_validation_epoch_end(self) -> None:
        self.log(M.VAL_MSE, self.val_mse.compute())
        self.val_mse.reset()

    def configure_optimizers(self):
        return optimizer_and_schedule(self.parameters(), self.hparams, self.trainer.max_epochs)


def project_fit(
    cfg: DictConfig, out_dir: Path, empty: bool, bare: bool = False
) -> tuple[float, int, float]:
    """Seconds in training steps, number of steps and seconds in ``fit`` of the project's path
    (``bare``: of the same model and data under the bare Trainer)."""
    L.seed_everything(cfg.seed, verbose=False)
    dm, model = build_datamodule(cfg), build_model(cfg)
    if empty:
        model = EmptyStep(model)
    clock = StepClock()
    trainer = bare_trainer(cfg, [clock]) if bare else build_trainer(cfg, out_dir, [clock])
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    return clock.train_seconds, trainer.global_step, time.perf_counter() - start


def plain_fit(cfg: DictConfig, device: str, empty: bool) -> tuple[float, int]:
    """The same model, data, optimizer, scheduler and clipping in a hand-written loop."""
    L.seed_everything(cfg.seed, verbose=False)
    dm, model = build_datamodule(cfg), build_model(cfg).to(device)
    dm.setup("fit")
    epochs, clip = cfg.trainer.max_epochs, cfg.trainer.get("gradient_clip_val")
    # the optimizer and schedule that Forecaster.configure_optimizers gives the Trainer
    configured = optimizer_and_schedule(model.parameters(), model.hparams, epochs)
    optimizer, scheduler = configured["optimizer"], configured.get("lr_scheduler")
    loader, steps = dm.train_dataloader(), 0
    last_only = model.hparams.loss == "last"  # as training_step: the readout where the loss is
    model.train()
    sync(device)
    start = time.perf_counter()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = empty_loss(model) if empty else model.loss_fn(model(x, last_only), y)
            optimizer.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            steps += 1
        if scheduler is not None:
            scheduler.step()
    sync(device)
    return time.perf_counter() - start, steps


def loop_row(
    cell: str, opts: argparse.Namespace, work: Path, empty: bool = False
) -> dict[str, Any]:
    accelerator = "gpu" if opts.device.startswith("cuda") else "cpu"
    cfg = compose(
        [
            f"model={cell}",
            f"trainer.max_epochs={opts.epochs}",
            f"trainer.accelerator={accelerator}",
            "trainer.enable_progress_bar=false",
            f"threads={opts.threads}",
            *opts.overrides,
        ]
    )
    runs = iter(range(10**6))
    steps: dict[str, int] = {}
    fit_s: dict[str, list[float]] = {"project": [], "bare": []}

    def lightning(name: str) -> Callable[[], float]:
        def fn() -> float:
            out_dir = work / f"loop_{cell}_{empty}_{next(runs)}"
            seconds, steps[name], fit = project_fit(cfg, out_dir, empty, bare=name == "bare")
            fit_s[name].append(fit)
            return seconds

        return fn

    def plain() -> float:
        seconds, steps["plain"] = plain_fit(cfg, opts.device, empty)
        return seconds

    fns = {"plain": plain, "project": lightning("project"), "bare": lightning("bare")}
    times = interleaved(fns, opts.reps)
    batch = cfg.data.batch_size
    outside = {
        name: [fit - steps_s for fit, steps_s in zip(fits, times[name], strict=True)]
        for name, fits in fit_s.items()
    }
    rate = {name: steps[name] * batch / median(t) for name, t in times.items()}
    plain_rate, project_rate = rate["plain"], rate["project"]
    return {
        "cell": "(empty step)" if empty else cell,
        "empty_step": empty,
        "batch_size": batch,
        "seq_len": cfg.data.seq_len,
        "hidden_size": cfg.model.hidden_size,
        "steps": steps["plain"],
        "plain_samples_per_s": plain_rate,
        "project_samples_per_s": project_rate,
        "plain_ms_per_step": 1e3 * batch / plain_rate,
        "project_ms_per_step": 1e3 * batch / project_rate,
        "ratio": project_rate / plain_rate,
        "bare_ms_per_step": 1e3 * batch / rate["bare"],
        "bare_ratio": rate["bare"] / plain_rate,
        # validation, checkpoints and epoch-end logging: fit time outside the training steps
        "epoch_overhead_ms": 1e3 * median(outside["project"]) / opts.epochs,
        "bare_epoch_overhead_ms": 1e3 * median(outside["bare"]) / opts.epochs,
        "plain_s": times["plain"],
        "project_s": times["project"],
        "bare_s": times["bare"],
        "fit_s": fit_s,
    }


def measure(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    rows = [loop_row(cell, opts, work) for cell in CELL_NAMES]
    # The Trainer's own cost per step: the same loops around a step that does no model work.
    rows.append(loop_row("scratch", opts, work, empty=True))
    empty = rows[-1]
    overrides = f" with {' '.join(opts.overrides)}" if opts.overrides else ""
    return {
        "epochs": opts.epochs,
        "overrides": overrides,
        "rows": rows,
        "trainer_ms_per_step": empty["project_ms_per_step"] - empty["plain_ms_per_step"],
        "bare_trainer_ms_per_step": empty["bare_ms_per_step"] - empty["plain_ms_per_step"],
    }


def print_table(loop: dict[str, Any]) -> None:
    print(
        f"\n[loop] training samples/s at the default config{loop['overrides']}, "
        f"{loop['epochs']} epochs "
        "(project: time in training steps; epoch+ ms: validation, checkpoints and epoch-end "
        "logging per epoch, outside the steps)"
    )
    keys = ["steps", "plain_samples_per_s", "project_samples_per_s", "plain_ms_per_step"]
    keys += ["project_ms_per_step", "ratio", "epoch_overhead_ms", "bare_ms_per_step"]
    keys += ["bare_ratio", "bare_epoch_overhead_ms"]
    headers = ["cell", "BxLxH", "steps", "plain/s", "project/s", "plain ms", "proj ms", "ratio"]
    headers += ["epoch+ ms", "bare ms", "bare ratio", "bare epoch+"]
    rows = [[r["cell"], size(r), *(r[k] for k in keys)] for r in loop["rows"]]
    print(table(headers, rows))
    print(
        "  bare: the same model and data under a Trainer with no logger, checkpoints or callbacks"
        " (the bench's clock aside),\n  the floor of any project on Lightning's Trainer. The"
        " Trainer's own cost per step "
        f"(empty step, minus plain): project {loop['trainer_ms_per_step']:.2f} ms, "
        f"bare {loop['bare_trainer_ms_per_step']:.2f} ms"
    )
