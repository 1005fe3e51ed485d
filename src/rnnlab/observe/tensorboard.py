"""What rnnlab writes to TensorBoard beyond Lightning's own scalars: gradient norms, RNN health,
figures, optional histograms, and one HParams session per job with its real final metrics.

Everything per step is kept to a few tensor ops; logging happens once per epoch, because a
per-step ``self.log`` costs more than a training step of these small models.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from rnnlab import metrics as M
from rnnlab.internals import file_writer
from rnnlab.models.replicas import ReplicaForecaster
from rnnlab.observe import diagnostics, figures
from rnnlab.observe.rollout import Forecasts, forecast_test_split

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


def _per_replica(value: Any) -> bool:
    """Whether ``value`` holds one number per replica (a list, or a 1-d tensor)."""
    return isinstance(value, list | tuple) or (torch.is_tensor(value) and value.dim() == 1)


def _log_epoch_scalars(trainer: L.Trainer, values: dict[str, Any], step: int | None = None) -> None:
    """Write straight to the loggers at the epoch's step (or ``step``): ``self.log`` costs
    about 1 ms a call here, more than a training step. A value with one number per replica
    goes to each replica's own run, its mean and band to the job's (:func:`log_replica_values`)."""
    step = _epoch_step(trainer) if step is None else step
    scalars = {name: float(value) for name, value in values.items() if not _per_replica(value)}
    per_replica = {name: value for name, value in values.items() if _per_replica(value)}
    if per_replica:
        scalars |= log_replica_values(trainer, per_replica, step, with_mean=True)
    for logger in trainer.loggers:
        logger.log_metrics(scalars, step=step)


def log_replica_values(
    trainer: L.Trainer, values: dict[str, Any], step: int | None = None, with_mean: bool = False
) -> dict[str, float]:
    """Write each replica's value of ``values`` (R numbers each) to its run ``tb/replica_<r>``
    (:class:`ReplicaBoards`), and the lowest and highest over the replicas still training to
    the job's run as ``<name>_replica_min`` and ``_max``. With ``with_mean`` nothing goes to the
    job's run: the band and the mean (as ``<name>``) are returned for the caller to write
    (:func:`_log_epoch_scalars`); without, the ReplicaForecaster logs its means itself."""
    step = _epoch_step(trainer) if step is None else step
    boards = next((c for c in trainer.callbacks if isinstance(c, ReplicaBoards)), None)
    alive = getattr(trainer.lightning_module, "alive", None)
    band: dict[str, float] = {}
    table = {name: torch.as_tensor(v, dtype=torch.float64).cpu() for name, v in values.items()}
    for name, v in table.items():
        live = v[alive.cpu()] if alive is not None and len(alive) == len(v) else v
        if with_mean:
            band[name] = live.mean().item() if len(live) else math.nan
        if len(live):
            band[f"{name}_replica_min"] = live.min().item()
            band[f"{name}_replica_max"] = live.max().item()
    if boards is not None:
        boards.write(table, step, alive)
    if not with_mean:
        for logger in trainer.loggers:
            logger.log_metrics(band, step=step)
    return band


class ReplicaBoards(Callback):
    """One TensorBoard run per replica, ``tb/replica_<r>``, with its own curves; the job's run
    ``tb`` holds the means, the band over the replicas still training (``<tag>_replica_min``
    and ``_max``) and a custom-scalars layout that draws each mean inside its band (the Custom
    Scalars tab's margin charts). Written on rank 0 only."""

    #: The curves drawn as mean-with-band charts.
    BANDS = (M.TRAIN_LOSS, M.VAL_MSE, M.VAL_MSE_BEST, M.VAL_LOSS, M.GRAD_NORM)

    def __init__(self, run_dir: Path, seeds: list[int]) -> None:
        self.tb_dir = Path(run_dir) / "tb"
        self.seeds = list(seeds)
        self.writers: list[SummaryWriter] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and not self.writers:
            self.writers = [
                SummaryWriter(self.tb_dir / f"replica_{r}") for r in range(len(self.seeds))
            ]

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = _writer(trainer)
        if writer is None:
            return
        charts = {
            tag: ["Margin", [tag, f"{tag}_replica_min", f"{tag}_replica_max"]] for tag in self.BANDS
        }
        seeds = f"seeds {self.seeds[0]}..{self.seeds[-1]}"
        writer.add_custom_scalars(
            {f"mean and range over {len(self.seeds)} replicas ({seeds})": charts}
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_replica_values(trainer, {M.TRAIN_LOSS: pl_module.replica_train_losses()})

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module's on_validation_epoch_end, which computed each replica's values
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            log_replica_values(trainer, pl_module.last_val)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # each replica's test of its best weights, at the step of the test metrics
        log_replica_values(trainer, pl_module.test_values, trainer.global_step)

    def write(self, table: dict[str, torch.Tensor], step: int, alive: torch.Tensor | None) -> None:
        """Replica r's values to its run, for the replicas still training: one event per
        replica for all of ``table`` (``add_scalar`` per value costs R x names events)."""
        rows = torch.stack(list(table.values()), 1).tolist() if table else []
        for r, writer in enumerate(self.writers):
            if alive is None or alive[r]:
                scalars = [
                    Summary.Value(tag=name, simple_value=value)
                    for name, value in zip(table, rows[r], strict=True)
                ]
                file_writer(writer).add_summary(Summary(value=scalars), step)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for writer in self.writers:
            writer.flush()


class GradNormMonitor(Callback):
    """Mean and max of the total gradient norm over each epoch's steps, before clipping.

    ``on_before_optimizer_step`` runs after backward and before Lightning clips, so this is
    the norm that clipping acts on: the exploding-gradient question, answered per epoch.
    Per step it costs one concatenation and one norm (a norm per parameter costs 3x more).
    Each epoch also logs how often clipping acted (``diagnostics/clipped_fraction``) and the
    norm's median and 90th percentile; ``history`` keeps every step's norm for the run's
    final diagnostics, in checkpoints too, so a resumed run counts all its steps.
    """

    def __init__(self, clip: float | None = None) -> None:
        self.clip = clip
        self._params: list[torch.nn.Parameter] = []
        self.norms: list[torch.Tensor] = []
        self.history: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._params = [p for p in pl_module.parameters() if p.requires_grad]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.norms = []

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        net = getattr(pl_module, "net", None)
        if net is not None:  # replicas: each one's own norm, (R,)
            self.norms.append(net.grad_norms())
            return
        grads = [p.grad.reshape(-1) for p in self._params if p.grad is not None]
        if grads:
            self.norms.append(torch.linalg.vector_norm(torch.cat(grads)))

    def _clipping(self, norms: torch.Tensor) -> dict[str, Any]:
        """clipping_stats of ``(steps,)`` norms, or per replica of ``(steps, R)`` norms over the
        steps it trained (a frozen replica's norms are NaN or zero)."""
        if norms.dim() == 1:
            return diagnostics.clipping_stats(norms, self.clip) if len(norms) else {}
        per = [self._clipping(col[torch.isfinite(col) & (col > 0)]) for col in norms.T]
        names = next((list(p) for p in per if p), [])
        return {k: torch.tensor([p.get(k, math.nan) for p in per]) for k in names}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.norms:
            norms = torch.stack(self.norms)
            self.history += norms.tolist()
            scalars = {M.GRAD_NORM: norms.mean(0), M.GRAD_NORM_MAX: norms.amax(0)}
            scalars |= {M.diagnostics_tag(k): v for k, v in self._clipping(norms).items()}
            _log_epoch_scalars(trainer, scalars)

    def run_stats(self, replica: int | None = None) -> dict[str, float]:
        """Clipping share and norm percentiles over every training step of the run (over
        replica ``replica``'s, in a replicas job)."""
        norms = torch.tensor(self.history)
        if replica is not None:
            norms = norms[:, replica] if len(norms) else norms
        return {k: float(v) for k, v in self._clipping(norms).items()}

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
    for every epoch by default). ``last`` holds the latest values."""

    def __init__(self, figures: bool, every_n_epochs: int) -> None:
        self.figures, self.every_n_epochs = figures, every_n_epochs
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last: dict[str, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.datamodule is not None:
            x, y = next(iter(trainer.datamodule.val_dataloader()))
            # a copy made here, outside Lightning's evaluation loop and its inference mode
            self.batch = (x.clone().to(pl_module.device), y.clone().to(pl_module.device))
        if trainer.current_epoch == 0:  # at initialisation, not again after a resume
            self.measure(trainer, pl_module, step=0, draw=True)

    def measure(
        self, trainer: L.Trainer, pl_module: L.LightningModule, step: int, draw: bool
    ) -> dict[str, Any]:
        """Measure, log and (``draw``) draw; only rank 0 does, which alone logs and writes."""
        if self.batch is None or not trainer.is_global_zero:
            return {}
        self.last = diagnostics.diagnose(pl_module, self.batch)
        norms = self.last[M.GRAD_NORM_BY_STEP]
        if isinstance(norms[0], list):  # replicas: one list each
            reach: Any = [diagnostics.first_over_last(n) for n in norms]
        else:
            reach = diagnostics.first_over_last(norms)
        scalars = {M.GRAD_FIRST_OVER_LAST: reach}
        for k, radius in enumerate(self.last[M.SPECTRAL_RADIUS]):
            scalars[f"{M.SPECTRAL_RADIUS}_l{k}"] = radius
            scalars[f"{M.SIGMA_MAX}_l{k}"] = self.last[M.SIGMA_MAX][k]
        _log_epoch_scalars(trainer, {M.diagnostics_tag(k): v for k, v in scalars.items()}, step)
        writer = _writer(trainer)
        if draw and self.figures and writer is not None:
            title = f"step {step}" if step else "at initialisation"
            fig = figures.grad_flow_figure(norms, figures.run_label(pl_module), title)
            add_png(writer, M.diagnostics_tag(M.GRAD_NORM_BY_STEP), figures.to_png(fig), step)
        return self.last

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

    def __init__(self) -> None:
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
        _log_epoch_scalars(trainer, hidden_state_health(h, pl_module.hparams.nonlinearity))


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


class ForecastFigures(Callback):
    """Figures under the ``figures/`` image tags, and as PNG files in ``figures_dir``.

    All are drawn after testing, so the forecasts are those of the checkpoint the test metrics
    score, and drawing stays out of the fit time. The forecast figures (one-step predictions,
    rollout, rollout error) can also be drawn every ``every_n_epochs`` epochs during training
    (TensorBoard only), to watch the rollout improve.
    """

    def __init__(self, figures_dir: Path, every_n_epochs: int, rollout_steps: int | None) -> None:
        self.figures_dir = Path(figures_dir)
        self.every_n_epochs, self.rollout_steps = every_n_epochs, rollout_steps

    def _emit(self, trainer: L.Trainer, figs: dict[str, Figure], step: int, save: bool) -> None:
        writer = _writer(trainer)
        if save:
            self.figures_dir.mkdir(parents=True, exist_ok=True)
        for name, fig in figs.items():
            png = figures.to_png(fig)
            if writer is not None:
                add_png(writer, f"figures/{name}", png, step)
            if save:
                (self.figures_dir / f"{name}.png").write_bytes(png)

    def _forecasts(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Forecasts:
        return forecast_test_split(pl_module, trainer.datamodule, self.rollout_steps)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs <= 0 or epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        # The last epoch is left to on_test_end, which draws the tested checkpoint.
        if trainer.sanity_checking or epoch == trainer.max_epochs:
            return
        if isinstance(pl_module, ReplicaForecaster):
            return  # during training, a replicas job draws its figures only at the end
        fc = self._forecasts(trainer, pl_module)
        figs = figures.forecast_figures(fc, figures.run_label(pl_module))
        self._emit(trainer, figs, _epoch_step(trainer), save=False)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if isinstance(pl_module, ReplicaForecaster):
            figs = figures.replica_final_figures(pl_module, trainer.datamodule, self.rollout_steps)
        else:
            figs = figures.final_figures(pl_module, trainer.datamodule, self.rollout_steps)
        self._emit(trainer, figs, trainer.global_step, save=True)  # the test metrics' step


def tensorboard_callbacks(
    logger_cfg: Any, run_dir: Path, forecasting: bool = True, clip: float | None = None
) -> list[Callback]:
    """The callbacks the ``logger`` section asks for; the forecast figures only for a
    forecasting task (the adding problem has no rollout). ``clip``: the Trainer's
    ``gradient_clip_val``, to count the steps it clips."""
    every = logger_cfg.figures_every_n_epochs
    callbacks: list[Callback] = [GradNormMonitor(clip), HiddenStateHealth()]
    callbacks.append(GradientFlow(logger_cfg.figures, every))
    if logger_cfg.figures and forecasting:
        callbacks.append(
            ForecastFigures(
                Path(run_dir) / "figures",
                every_n_epochs=every,
                rollout_steps=logger_cfg.rollout_steps,
            )
        )
    if logger_cfg.histograms:
        callbacks.append(ParamHistograms())
    return callbacks


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
