"""What rnnlab writes to TensorBoard beyond Lightning's own scalars: gradient norms, RNN health,
figures, optional histograms, and one HParams session per job with its real final metrics.

Everything per step is kept to a few tensor ops; logging happens once per epoch, because a
per-step ``self.log`` costs more than a training step of these small models.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from rnnlab import metrics as M
from rnnlab.internals import file_writer
from rnnlab.models.network import Networks
from rnnlab.observe import diagnostics, figures
from rnnlab.observe.csv_log import EpochCSVLogger
from rnnlab.observe.rollout import forecasts

#: HParams' status filter by the run's status; diverged and failed runs show as failures.
SESSION_STATUS = {"ok": api_pb2.STATUS_SUCCESS, "interrupted": api_pb2.STATUS_UNKNOWN}
#: Above this |h| a tanh unit passes almost no gradient (tanh'(2.65) = 0.02).
TANH_SATURATION = 0.99


def _writer(trainer: L.Trainer) -> SummaryWriter | None:
    """The TensorBoard writer of the run; None when TensorBoard logging is off, and on the
    processes other than rank 0 of a multi-device run."""
    logger = trainer.logger
    if not trainer.is_global_zero or not isinstance(logger, TensorBoardLogger):
        return None
    return logger.experiment


def _epoch_step(trainer: L.Trainer) -> int:
    """The step Lightning logs epoch-level metrics at: the epoch's last optimizer step."""
    return max(trainer.global_step - 1, 0)


def _per_network(value: Any) -> bool:
    """Whether ``value`` holds one number per network of several (a list, or a 1-d tensor)."""
    many = isinstance(value, list | tuple) or (torch.is_tensor(value) and value.dim() == 1)
    return many and len(value) > 1


def _one(value: Any) -> float:
    """One network's number, given as a number or as a list of one."""
    return float(value[0] if isinstance(value, list | tuple) else value)


@dataclass
class JobOutput:
    """Where one job's values go. A job run alone: every network of the module
    (``rows=slice(None)``) and the Trainer's loggers. A job of a pack (rnnlab.training.fused):
    its rows of the pack's networks and its own loggers, its ``tb/`` and ``csv/``.

    ``boards``: a job of several networks writes each one's values to its own run
    (``tb/replica_<r>``); ``nonlinearity``, ``clip`` and ``label``: its ``model.nonlinearity``,
    ``trainer.gradient_clip_val`` and the title of its figures (empty: the module's).
    """

    seeds: list[int]
    rows: slice = field(default_factory=lambda: slice(None))
    loggers: list[Logger] | None = None
    boards: ReplicaBoards | None = None
    nonlinearity: str = "tanh"
    clip: float | None = None
    label: str = ""

    def take(self, value: Any) -> Any:
        """This job's part of a value with one number per network of the module."""
        if self.rows == slice(None) or not _per_network(value):
            return value
        return value[self.rows]

    def loggers_of(self, trainer: L.Trainer) -> list[Logger]:
        return trainer.loggers if self.loggers is None else self.loggers

    def writer(self, trainer: L.Trainer) -> SummaryWriter | None:
        """The job's TensorBoard writer (None: TensorBoard off, or not rank 0)."""
        if self.loggers is None:
            return _writer(trainer)
        tb = [lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)]
        return tb[0].experiment if tb and trainer.is_global_zero else None

    def alive(self, trainer: L.Trainer) -> torch.Tensor:
        return trainer.lightning_module.alive.cpu()[self.rows]


def _log_epoch_scalars(
    trainer: L.Trainer,
    values: dict[str, Any],
    step: int | None,
    outputs: Sequence[JobOutput],
) -> None:
    """Write straight to each job's loggers at the epoch's step (or ``step``): ``self.log``
    costs about 1 ms a call here, more than a training step. A value with one number per
    network of several goes to each network's own run (the job's ``boards``), its mean and
    band to the job's (:func:`log_replica_values`); one network's number is the job's."""
    step = _epoch_step(trainer) if step is None else step
    for out in outputs:
        mine = {name: out.take(value) for name, value in values.items()}
        scalars = {name: _one(value) for name, value in mine.items() if not _per_network(value)}
        per_network = {name: value for name, value in mine.items() if _per_network(value)}
        own: dict[str, float] = {}
        if per_network:
            scalars |= log_replica_values(trainer, out, per_network, step, with_mean=True)
            own = _network_columns(per_network, out.alive(trainer))
        for logger in out.loggers_of(trainer):
            csv = isinstance(logger, EpochCSVLogger)
            logger.log_metrics(scalars | own if csv else scalars, step=step)


def _network_columns(values: dict[str, Any], alive: torch.Tensor) -> dict[str, float]:
    """Each network's own value of the names in rnnlab.metrics.PER_NETWORK_CSV, for the
    networks still training (as their band): csv/metrics.csv's columns for the report's
    medians over seeds, which TensorBoard keeps in each network's run instead."""
    return {
        M.network_column(name, r): float(v)
        for name in M.PER_NETWORK_CSV
        if name in values
        for r, v in enumerate(values[name])
        if alive[r]
    }


def log_replica_values(
    trainer: L.Trainer,
    out: JobOutput,
    values: dict[str, Any],
    step: int | None = None,
    with_mean: bool = False,
) -> dict[str, float]:
    """Write each network's value of ``values`` (the job's networks', several) to its run
    ``tb/replica_<r>`` (the job's ``boards``), and the lowest and highest over the networks
    still training to the job's run as ``<name>_replica_min`` and ``_max``. With ``with_mean``
    nothing goes to the job's run: the band and the mean (as ``<name>``) are returned for the
    caller to write (:func:`_log_epoch_scalars`); without, the module logs its means itself."""
    step = _epoch_step(trainer) if step is None else step
    alive = out.alive(trainer)
    band: dict[str, float] = {}
    table = {name: torch.as_tensor(v, dtype=torch.float64).cpu() for name, v in values.items()}
    for name, v in table.items():
        live = v[alive]
        if with_mean:
            band[name] = live.mean().item() if len(live) else math.nan
        if len(live):
            band[f"{name}_replica_min"] = live.min().item()
            band[f"{name}_replica_max"] = live.max().item()
    if out.boards is not None:
        out.boards.write(table, step, alive)
    if not with_mean:
        for logger in out.loggers_of(trainer):
            logger.log_metrics(band, step=step)
    return band


class ReplicaBoards:
    """One TensorBoard run per network of a job of several, ``tb/replica_<r>``, with its own
    curves; the job's run ``tb`` holds the means, the band over the networks still training
    (``<tag>_replica_min`` and ``_max``) and a custom-scalars layout that draws each mean inside
    its band (the Custom Scalars tab's margin charts). Written on rank 0 only."""

    #: The curves drawn as mean-with-band charts.
    BANDS = (M.TRAIN_LOSS, M.VAL_MSE, M.VAL_MSE_BEST, M.VAL_LOSS, M.GRAD_NORM)

    def __init__(self, run_dir: Path, seeds: list[int]) -> None:
        self.tb_dir = Path(run_dir) / "tb"
        self.seeds = list(seeds)
        self.writers: list[SummaryWriter] = []

    def open(self, writer: SummaryWriter | None) -> None:
        """Open each network's run, and draw the bands in the job's (``writer``)."""
        if not self.writers:
            self.writers = [
                SummaryWriter(self.tb_dir / f"replica_{r}") for r in range(len(self.seeds))
            ]
        if writer is None:
            return
        charts = {
            tag: ["Margin", [tag, f"{tag}_replica_min", f"{tag}_replica_max"]] for tag in self.BANDS
        }
        seeds = f"seeds {self.seeds[0]}..{self.seeds[-1]}"
        writer.add_custom_scalars(
            {f"mean and range over {len(self.seeds)} replicas ({seeds})": charts}
        )

    def write(self, table: dict[str, torch.Tensor], step: int, alive: torch.Tensor) -> None:
        """Replica r's values to its run, for the replicas still training: one event per
        replica for all of ``table`` (``add_scalar`` per value costs R x names events)."""
        rows = torch.stack(list(table.values()), 1).tolist() if table else []
        for r, writer in enumerate(self.writers):
            if alive[r]:
                scalars = [
                    Summary.Value(tag=name, simple_value=value)
                    for name, value in zip(table, rows[r], strict=True)
                ]
                file_writer(writer).add_summary(Summary(value=scalars), step)

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()


class NetworkScalars(Callback):
    """Each network's training loss, validation and test values, where its module logs only
    their means (a job of several networks) or nothing that reaches the job (``means``: a
    pack, whose jobs have loggers of their own; also each network's learning rate, as
    ``lr-Adam`` or ``lr-SGD``, the name Lightning's LearningRateMonitor gives it)."""

    def __init__(self, outputs: Sequence[JobOutput], means: bool = False) -> None:
        self.outputs, self.means = list(outputs), means

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            for out in self.outputs:
                if out.boards is not None and not out.boards.writers:
                    out.boards.open(out.writer(trainer))

    def _write(self, trainer: L.Trainer, values: dict[str, Any], step: int | None = None) -> None:
        if not trainer.is_global_zero:
            return
        if self.means:
            values = {**values, "epoch": torch.tensor(float(trainer.current_epoch))}
            _log_epoch_scalars(trainer, values, step, self.outputs)
            return
        for out in self.outputs:
            log_replica_values(trainer, out, {k: out.take(v) for k, v in values.items()}, step)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.means and trainer.is_global_zero:  # a pack (rnnlab.models.pack.PackForecaster)
            rates = pl_module.learning_rates()
            for out in self.outputs:  # a job's networks share its rate: one value, as alone
                lr = {pl_module.learning_rate_tag(): out.take(rates)[0]}
                _log_epoch_scalars(trainer, lr, trainer.global_step, [out])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, {M.TRAIN_LOSS: pl_module.train_losses()})

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module's on_validation_epoch_end, which computed each network's values
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._write(trainer, pl_module.val_values)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # each network's test of its best weights, at the step of the test metrics
        self._write(trainer, pl_module.test_values, trainer.global_step)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for out in self.outputs:
            if out.boards is not None:
                out.boards.flush()


class GradNormMonitor(Callback):
    """Mean and max of the total gradient norm over each epoch's steps, before clipping.

    ``on_before_optimizer_step`` runs after backward and before Lightning clips, so this is
    the norm that clipping acts on: the exploding-gradient question, answered per epoch.
    Per step it costs one concatenation and one norm (a norm per parameter costs 3x more).
    Each epoch also logs how often clipping acted (``diagnostics/clipped_fraction``) and the
    norm's median and 90th percentile; ``history`` keeps every step's norm for the run's
    final diagnostics, in checkpoints too, so a resumed run counts all its steps.
    """

    def __init__(self, outputs: Sequence[JobOutput]) -> None:
        self.outputs = list(outputs)
        self.norms: list[torch.Tensor] = []
        self.history: list[Any] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.norms = []

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        self.norms.append(pl_module.grad_norms())  # (R,) for replicas: each one's own

    def _clips(self, networks: int) -> list[float | None]:
        """Each network's ``trainer.gradient_clip_val``."""
        if len(self.outputs) == 1:
            return [self.outputs[0].clip] * networks
        return [out.clip for out in self.outputs for _ in out.seeds]

    def _clipping(self, norms: torch.Tensor, clip: float | None = None) -> dict[str, Any]:
        """clipping_stats of ``(steps,)`` norms, or per network of ``(steps, N)`` norms over
        the steps it trained (a frozen network's norms are NaN or zero)."""
        if norms.dim() == 1:
            return diagnostics.clipping_stats(norms, clip) if len(norms) else {}
        clips = self._clips(norms.shape[1])
        per = [
            self._clipping(col[torch.isfinite(col) & (col > 0)], c)
            for col, c in zip(norms.T, clips, strict=True)
        ]
        names = next((list(p) for p in per if p), [])
        return {k: torch.tensor([p.get(k, math.nan) for p in per]) for k in names}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.norms:
            norms = torch.stack(self.norms)
            self.history += norms.tolist()
            scalars = {M.GRAD_NORM: norms.mean(0), M.GRAD_NORM_MAX: norms.amax(0)}
            clipping = self._clipping(norms, self.outputs[0].clip)
            scalars |= {M.diagnostics_tag(k): v for k, v in clipping.items()}
            _log_epoch_scalars(trainer, scalars, None, self.outputs)

    def run_stats(self, networks: int = 1) -> list[dict[str, float]]:
        """Each of the ``networks``' clipping share and norm percentiles over every training
        step of the run."""
        norms = torch.tensor(self.history)
        if norms.dim() == 2:  # (steps, N): each network's
            clips = self._clips(networks)
            return [
                {k: float(v) for k, v in self._clipping(col, clip).items()}
                for col, clip in zip(norms.T, clips, strict=True)
            ]
        stats = self._clipping(norms, self.outputs[0].clip)
        return [{k: float(v) for k, v in stats.items()}] * networks

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))


class GradientFlow(Callback):
    """Gradient-flow diagnostics (rnnlab.observe.diagnostics) at initialisation and after every
    epoch's
    validation, on the first validation batch (fixed: validation is not shuffled): spectral
    radius and largest singular value of each layer's ``W_hh`` and how much of the last-step
    loss's gradient reaches the window's first step, as scalars; ``||dL/dh_t||`` against t as
    the image ``diagnostics/grad_norm_by_step`` at initialisation, every ``every_n_epochs``
    epochs, and for the tested checkpoint (drawing one costs about 0.1-0.3 s here, too much
    for every epoch by default). ``last`` holds the latest values, one dict per network."""

    def __init__(self, figures: bool, every_n_epochs: int, outputs: Sequence[JobOutput]) -> None:
        self.figures, self.every_n_epochs, self.outputs = figures, every_n_epochs, list(outputs)
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last: list[dict[str, Any]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.datamodule is not None:
            x, y = next(iter(trainer.datamodule.val_dataloader()))
            # a copy made here, outside Lightning's evaluation loop and its inference mode
            self.batch = (x.clone().to(pl_module.device), y.clone().to(pl_module.device))
        if trainer.current_epoch == 0:  # at initialisation, not again after a resume
            self.measure(trainer, pl_module, step=0, draw=True)

    def measure(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        step: int,
        draw: bool,
        networks: Networks | None = None,
        log: bool = True,
    ) -> list[dict[str, Any]]:
        """Measure ``networks`` (by default the module's current weights), ``log`` and
        (``draw``) draw; only rank 0 does, which alone logs and writes. One dict per network."""
        if self.batch is None or not trainer.is_global_zero:
            return []
        networks = pl_module.networks() if networks is None else networks
        self.last = diagnostics.diagnose(networks, self.batch)
        if log:
            self._log(trainer, self.last, step)
        if draw and self.figures:
            title = f"step {step}" if step else "at initialisation"
            norms = [found[M.GRAD_NORM_BY_STEP] for found in self.last]
            for out in self.outputs:
                writer = out.writer(trainer)
                if writer is not None:
                    label = out.label or figures.run_label(pl_module)
                    fig = figures.grad_flow_figure(norms[out.rows], label, title)
                    png = figures.to_png(fig)
                    add_png(writer, M.diagnostics_tag(M.GRAD_NORM_BY_STEP), png, step)
        return self.last

    def _log(self, trainer: L.Trainer, measured: list[dict[str, Any]], step: int) -> None:
        """Each network's scalars: how much gradient reaches the first step, each layer's
        spectral radius and largest singular value."""
        reach = [M.first_over_last(found[M.GRAD_NORM_BY_STEP]) for found in measured]
        scalars = {M.GRAD_FIRST_OVER_LAST: reach}
        for k in range(len(measured[0][M.SPECTRAL_RADIUS])):
            for name in (M.SPECTRAL_RADIUS, M.SIGMA_MAX):
                values = [found[name][k] for found in measured]
                if not all(math.isnan(v) for v in values):  # a gated cell's: not defined
                    scalars[f"{name}_l{k}"] = values
        tagged = {M.diagnostics_tag(k): v for k, v in scalars.items()}
        _log_epoch_scalars(trainer, tagged, step, self.outputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        epoch = trainer.current_epoch + 1
        draw = self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0
        self.measure(trainer, pl_module, _epoch_step(trainer), draw)


@torch.no_grad()
def hidden_state_health(h: torch.Tensor, nonlinearity: str) -> dict[str, torch.Tensor]:
    """Mean and max |h| of hidden states ``(B, L, H)`` (per replica of ``(R, B, L, H)``), plus
    the fraction of saturated entries (tanh: |h| > 0.99) or of dead units (ReLU: zero for every
    sample and step)."""
    magnitude = h.abs()
    dims = (-3, -2, -1)  # batch, steps and units: per replica for ``(R, B, L, H)``
    stats = {M.HIDDEN_MEAN_ABS: magnitude.mean(dims), M.HIDDEN_MAX_ABS: magnitude.amax(dims)}
    if nonlinearity == "tanh":
        stats[M.TANH_SATURATED] = (magnitude > TANH_SATURATION).float().mean(dims)
    else:
        stats[M.RELU_DEAD] = (h == 0).all(-2).all(-2).float().mean(-1)
    return stats


class HiddenStateHealth(Callback):
    """RNN health once per epoch, from the top layer's hidden states on the first validation
    batch (fixed, since validation is not shuffled): one extra forward pass per epoch."""

    def __init__(self, outputs: Sequence[JobOutput]) -> None:
        self.outputs = list(outputs)
        self._inputs: torch.Tensor | None = None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0:
            self._inputs = batch[0]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._inputs is None:
            return
        with torch.no_grad():
            h = pl_module.hidden(self._inputs)
        for out in self.outputs:  # each job's by its own nonlinearity
            health = hidden_state_health(out.take(h), out.nonlinearity)
            _log_epoch_scalars(trainer, health, None, [out])


class ParamHistograms(Callback):
    """Weight and gradient (before clipping) histograms on each epoch's last step."""

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        writer = _writer(trainer)
        if writer is None or not trainer.is_last_batch:
            return
        for name, param in pl_module.named_parameters():
            writer.add_histogram(f"weights/{name}", param.detach(), trainer.global_step)
            if param.grad is not None:
                writer.add_histogram(f"grads/{name}", param.grad, trainer.global_step)


def add_png(writer: SummaryWriter, tag: str, png: bytes, step: int) -> None:
    """Write already-encoded PNG bytes as a TensorBoard image (no decode and re-encode)."""
    width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
    file_writer(writer).add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def emit_figures(
    writer: SummaryWriter | None, figs: dict[str, Figure], step: int, folder: Path | None
) -> None:
    """Each figure as a TensorBoard image ``figures/<name>`` (``writer``), and as
    ``<name>.png`` in ``folder`` (None: TensorBoard only)."""
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        png = figures.to_png(fig)
        if writer is not None:
            add_png(writer, f"figures/{name}", png, step)
        if folder is not None:
            (Path(folder) / f"{name}.png").write_bytes(png)


class ForecastFigures(Callback):
    """Figures under the ``figures/`` image tags, and as PNG files in ``figures_dir``.

    All are drawn after testing, so the forecasts are those of the weights the test metrics
    score, and drawing stays out of the fit time. The forecast figures (one-step predictions,
    rollout, rollout error; for replicas their rollouts and errors) can also be drawn every
    ``every_n_epochs`` epochs during training (TensorBoard only), to watch the rollout improve.
    ``seeds``: the job's networks', for the titles.
    """

    def __init__(
        self,
        figures_dir: Path,
        every_n_epochs: int,
        rollout_steps: int | None,
        seeds: Sequence[int],
    ) -> None:
        self.figures_dir = Path(figures_dir)
        self.every_n_epochs, self.rollout_steps = every_n_epochs, rollout_steps
        self.seeds = list(seeds)

    def _emit(self, trainer: L.Trainer, figs: dict[str, Figure], step: int, save: bool) -> None:
        emit_figures(_writer(trainer), figs, step, self.figures_dir if save else None)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs <= 0 or epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        # The last epoch is left to on_test_end, which draws the tested weights.
        if trainer.sanity_checking or epoch == trainer.max_epochs:
            return
        fcs = forecasts(pl_module.networks().predict, trainer.datamodule, self.rollout_steps)
        figs = figures.forecast_figures(fcs, figures.job_label(pl_module, self.seeds))
        self._emit(trainer, figs, _epoch_step(trainer), save=False)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        figs = figures.final_figures(
            pl_module.networks(tested=True).predict,
            trainer.datamodule,
            figures.job_label(pl_module, self.seeds),
            self.seeds,
            self.rollout_steps,
        )
        self._emit(trainer, figs, trainer.global_step, save=True)  # the test metrics' step


class Observers(NamedTuple):
    """The callbacks ``conf/logger/tensorboard.yaml`` asks for (``every``, in hook order), and
    those whose results a job's record reads (``grad_norms``, ``grad_flow``)."""

    grad_norms: GradNormMonitor
    grad_flow: GradientFlow
    every: list[Callback]


def tensorboard_callbacks(
    logger_cfg: Any, run_dir: Path, forecasting: bool, outputs: Sequence[JobOutput]
) -> Observers:
    """The callbacks the ``logger`` section asks for; the forecast figures only for a
    forecasting task (the adding problem has no rollout). ``outputs``: where each job's
    values go (one job run alone; a pack's jobs, which draw their forecast figures after
    testing, rnnlab.training.fused, and no histograms)."""
    every = logger_cfg.figures_every_n_epochs
    grad_norms = GradNormMonitor(outputs)
    grad_flow = GradientFlow(logger_cfg.figures, every, outputs)
    callbacks: list[Callback] = [grad_norms, HiddenStateHealth(outputs), grad_flow]
    alone = len(outputs) == 1 and outputs[0].loggers is None
    if logger_cfg.figures and forecasting and alone:
        callbacks.append(
            ForecastFigures(
                Path(run_dir) / "figures",
                every_n_epochs=every,
                rollout_steps=logger_cfg.rollout_steps,
                seeds=outputs[0].seeds,
            )
        )
    if logger_cfg.histograms and alone:
        callbacks.append(ParamHistograms())
    return Observers(grad_norms, grad_flow, callbacks)


def _hparams_summary(tag: str, **data: Any) -> Summary:
    content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(**data))
    return Summary(value=[Summary.Value(tag=tag, metadata=content)])


def _hparam(
    session: plugin_data_pb2.SessionStartInfo, name: str, value: Any, differs: bool
) -> api_pb2.HParamInfo:
    """Store ``value`` in the session; return its column (numbers, booleans, the rest as text)."""
    if isinstance(value, bool):
        session.hparams[name].bool_value = value
        kind = api_pb2.DATA_TYPE_BOOL
    elif isinstance(value, int | float):
        session.hparams[name].number_value = value
        kind = api_pb2.DATA_TYPE_FLOAT64
    else:
        session.hparams[name].string_value = str(value)
        kind = api_pb2.DATA_TYPE_STRING
    return api_pb2.HParamInfo(name=name, type=kind, differs=differs)


def hparams_of(cfg: DictConfig) -> tuple[dict[str, Any], set[str]]:
    """The HParams columns of a job, and the ones its command line set.

    Outside Hydra (a test calling ``rnnlab.training.experiment.train_and_test``) nothing counts as
    set.
    """
    from hydra.core.hydra_config import HydraConfig

    choices, command_line = {}, set[str]()
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        choices = hydra_cfg.runtime.choices
        command_line = {o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.task}
        # a sweep preset's or a search's keys vary across the sweep too
        command_line |= set(hydra_cfg.sweeper.get("params") or {})
    params: dict[str, Any] = {"model": choices["model"]} if "model" in choices else {}
    params.update({f"model.{k}": v for k, v in OmegaConf.to_container(cfg.model).items()})
    params.update({f"data.{k}": v for k, v in OmegaConf.to_container(cfg.data).items()})
    params["seed"] = cfg.seed
    params["replicas"] = cfg.replicas  # a replicas job's metrics are their means
    params.update({f"trainer.{k}": cfg.trainer.get(k) for k in ("max_epochs", "gradient_clip_val")})
    return params, command_line & set(params)


@rank_zero_only
def log_final_results(
    logger: TensorBoardLogger,
    params: dict[str, Any],
    result: dict[str, Any],
    step: int,
    varied: Collection[str] = (),
) -> None:
    """Write this job's HParams session: its hyperparameters and, as metrics, the scalar tags
    of ``M.HPARAMS_METRICS``, whose last values TensorBoard shows (no ``-1`` placeholder).

    The metrics Lightning logged during fit and test are already scalars; the rollout MSE and
    the data baselines are computed after testing and are written here, at the last step.
    Nothing is written at step 0, which would put a stray point at the start of every curve.

    TensorBoard's table shows five hyperparameter columns at first, those marked ``differs``
    before the rest: ``varied`` names the ones this job set on its command line, which in a
    sweep are the ones being compared.
    """
    after_test = {k: v for k in M.AFTER_TEST if (v := result.get(k)) is not None}
    if after_test:
        logger.log_metrics(after_test, step=step)
    session = plugin_data_pb2.SessionStartInfo()
    infos = [_hparam(session, k, v, differs=k in varied) for k, v in params.items()]
    # Every job declares the same metric columns, filled or not; the table shows five at first.
    metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in M.HPARAMS_METRICS]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos)
    status = SESSION_STATUS.get(result["status"], api_pb2.STATUS_FAILURE)
    end = plugin_data_pb2.SessionEndInfo(status=status)
    writer = file_writer(logger.experiment)
    for summary in (
        _hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment),
        _hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=session),
        _hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end),
    ):
        writer.add_summary(summary)
    logger.experiment.flush()
