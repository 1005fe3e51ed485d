"""Build a job from a composed config, train it, test it and write its record (``metrics.json``,
rnnlab.training.record).

:func:`train_and_test` reads as Lightning + Hydra's train.py: build the DataModule, the model,
the callbacks and the Trainer; fit; test; record each network; write. The model is any
LightningModule with rnnlab.models.network.NetworkModule's members, read the same way whether
it trains one network (Forecaster) or several (ReplicaForecaster).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rnnlab import metrics as M
from rnnlab.config.checks import validate
from rnnlab.config.hydra_callbacks import is_basic_sweep
from rnnlab.config.resume import checkpoint_to_resume, last_checkpoint
from rnnlab.data.baselines import network_baselines
from rnnlab.data.tasks import DATAMODULES, ReplicaDataModule, WindowDataModule
from rnnlab.internals import no_profiler
from rnnlab.models.forecaster import Diverged, Forecaster
from rnnlab.models.network import NetworkEnd, NetworkModule
from rnnlab.models.replicas import ReplicaForecaster
from rnnlab.observe.csv_log import CSVEpochs, EpochCSVLogger
from rnnlab.observe.rollout import forecasts
from rnnlab.observe.tensorboard import (
    GradientFlow,
    GradNormMonitor,
    JobOutput,
    NetworkScalars,
    ReplicaBoards,
    hparams_of,
    log_final_results,
    tensorboard_callbacks,
)
from rnnlab.training.checkpoints import best_checkpoint, last_epoch_checkpoint
from rnnlab.training.progress import FitClock, ProgressLog
from rnnlab.training.record import (
    finished_run,
    finite_or_none,
    job_record,
    network_record,
    objective,
    record_failure,
    summary_text,
    write_metrics,
)
from rnnlab.training.signals import StopAtEpochEnd, interruption

log = logging.getLogger(__name__)


def quiet_known_warnings() -> None:
    """Silence Lightning messages that are expected for this project and say nothing useful."""
    # Loading is in-memory and batch-indexed: worker processes would only slow it down.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # Few batches per epoch is the nature of a 1000-point series.
    warnings.filterwarnings("ignore", message=r".*number of training batches.*lower than.*")
    # Train loss is logged once per epoch on purpose, so the per-step interval is irrelevant.
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    # Lightning's own use of a torch API that torch deprecated; nothing for users to change.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # Hardware and litmodels tips at start-up: one line each, repeated in every sweep job.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)


def datamodule_class(cfg: DictConfig) -> type[WindowDataModule]:
    """The DataModule of the task ``data.name``."""
    return DATAMODULES[cfg.data.name]


def replicas_of(cfg: DictConfig) -> int:
    """``replicas``: how many seeds, from ``seed`` on, this job trains together."""
    return int(cfg.replicas)


def seeds_of(cfg: DictConfig) -> list[int]:
    """The seed of each network the job trains: ``seed .. seed+replicas-1``."""
    return [cfg.seed + r for r in range(replicas_of(cfg))]


def build_datamodule(cfg: DictConfig) -> WindowDataModule:
    """The task's DataModule; for replicas, one per seed served together."""
    kwargs = OmegaConf.to_container(cfg.data, resolve=True)
    del kwargs["name"]  # chose the class
    task = datamodule_class(cfg)
    if replicas_of(cfg) == 1:
        return task(**kwargs, seed=cfg.seed)
    return ReplicaDataModule([task(**kwargs, seed=seed) for seed in seeds_of(cfg)])


def forecaster_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The Forecaster's keyword arguments: ``model``, and the input and output sizes of the
    task."""
    input_size, output_size = datamodule_class(cfg).model_sizes(cfg.data)
    return dict(
        input_size=input_size,
        output_size=output_size,
        **OmegaConf.to_container(cfg.model, resolve=True),
    )


def build_model(cfg: DictConfig) -> Forecaster | ReplicaForecaster:
    """The Forecaster for the config, its input and output sizes from the task; for replicas,
    the ReplicaForecaster of seeds ``seed .. seed+replicas-1``."""
    kwargs = forecaster_kwargs(cfg)
    if replicas_of(cfg) == 1:
        return Forecaster(**kwargs)
    return ReplicaForecaster(replicas=replicas_of(cfg), seed=cfg.seed, **kwargs)


def _progress_bar(setting: Any) -> bool:
    """``auto``: a bar in an interactive single run, none in sweeps or logs."""
    if setting != "auto":
        return bool(setting)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return sys.stdout.isatty() and not multirun


@dataclass
class JobCallbacks:
    """A job's loggers and callbacks (``every``, in the order their hooks run), and by name
    those the driver reads after ``fit``."""

    best: ModelCheckpoint  # the first: trainer.checkpoint_callback, what a Forecaster's test loads
    stop: StopAtEpochEnd
    clock: FitClock
    grad_norms: GradNormMonitor
    grad_flow: GradientFlow
    loggers: list[Logger]
    every: list[Callback]


def job_output(cfg: DictConfig, run_dir: Path, **where: Any) -> JobOutput:
    """Where the job's values go: the Trainer's loggers, or those in ``where`` (a pack's job);
    a job of several networks also writes a TensorBoard run for each, tb/replica_<r>."""
    seeds = seeds_of(cfg)
    return JobOutput(
        seeds=seeds,
        boards=ReplicaBoards(run_dir, seeds) if len(seeds) > 1 else None,
        nonlinearity=cfg.model.nonlinearity,
        clip=cfg.trainer.get("gradient_clip_val"),
        **where,
    )


def build_callbacks(cfg: DictConfig, run_dir: Path, extra: Sequence[Callback] = ()) -> JobCallbacks:
    """rnnlab's loggers and callbacks for a job, and ``extra`` callbacks after them."""
    out = job_output(cfg, run_dir)
    # TensorBoard first: trainer.logger, which the HParams session and rnnlab's figures use
    tb = TensorBoardLogger(save_dir=run_dir, name="tb", version="", default_hp_metric=False)
    csv_logger = EpochCSVLogger(run_dir, resume=cfg.resume is not None)  # csv/metrics.csv
    best, stop, clock = best_checkpoint(run_dir), StopAtEpochEnd(), FitClock()
    forecasting = datamodule_class(cfg).forecasting
    observers = tensorboard_callbacks(cfg.logger, run_dir, forecasting, [out])
    every = [
        best,
        last_epoch_checkpoint(run_dir),
        stop,  # SIGINT/SIGTERM: stop at the epoch's end
        CSVEpochs(csv_logger),  # before any callback that logs at an epoch's start
        LearningRateMonitor(logging_interval="epoch"),
        ProgressLog(),
        clock,
        *observers.every,
        *extra,
        *([NetworkScalars([out])] if out.boards else []),
    ]
    grad_norms, grad_flow = observers.grad_norms, observers.grad_flow
    return JobCallbacks(best, stop, clock, grad_norms, grad_flow, [tb, csv_logger], every)


def build_trainer(
    cfg: DictConfig, run_dir: Path, callbacks: JobCallbacks | Sequence[Callback] = ()
) -> L.Trainer:
    """The Trainer train.py uses: with a job's :func:`build_callbacks`, or with rnnlab's own
    and ``callbacks`` after them (the benchmark times steps with one)."""
    if not isinstance(callbacks, JobCallbacks):
        callbacks = build_callbacks(cfg, run_dir, callbacks)
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs.setdefault("profiler", no_profiler())
    trainer_kwargs["enable_progress_bar"] = _progress_bar(trainer_kwargs.get("enable_progress_bar"))
    return L.Trainer(
        logger=callbacks.loggers,
        callbacks=callbacks.every,
        default_root_dir=run_dir,
        **trainer_kwargs,
    )


def count_parameters(model: torch.nn.Module) -> int:
    return sum(
        p.numel() for p in model.parameters() if p.requires_grad
    )  # not replicas' best copies


def train_and_test(
    cfg: DictConfig, run_dir: Path, callbacks: Sequence[Callback] = ()
) -> dict[str, Any]:
    """Train and test one configuration in ``run_dir``; returns what is written to
    ``metrics.json``. ``callbacks`` are extra Lightning callbacks for the Trainer."""
    quiet_known_warnings()
    torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build_datamodule(cfg)
    model = build_model(cfg)
    job = build_callbacks(cfg, run_dir, callbacks)
    trainer = build_trainer(cfg, run_dir, job)
    resume = checkpoint_to_resume(cfg, run_dir)
    if resume is not None:
        log.info("resuming from %s after %d epochs", resume.path, resume.epochs_done)

    outcome: dict[str, Any] = {"status": "ok"}
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=resume.path if resume else None)
    except Diverged as err:
        outcome.update(
            status="diverged", error=str(err), diverged_epoch=err.epoch, diverged_step=err.step
        )
    # every segment of a resumed run, this one measured around fit as a fresh run's is
    fit_seconds = job.clock.before + time.perf_counter() - start
    if outcome["status"] == "ok":
        outcome.update(interruption(job.stop, trainer, run_dir))  # after SIGINT/SIGTERM

    tested = outcome["status"] == "ok"
    if tested:  # the best-validation weights: the best checkpoint's, or those the module keeps
        best = None if model.keeps_best_weights else job.best.best_model_path
        trainer.test(model, datamodule=dm, ckpt_path=best, verbose=False)
    ends = model.network_ends(tested=tested)
    fresh = final_diagnostics(trainer, model, job.grad_flow, ends)
    clipping = job.grad_norms.run_stats(len(ends))
    measured = (job.grad_flow.last, fresh)
    records = network_records(model, dm, seeds_of(cfg), outcome["status"], ends, measured, clipping)

    result = job_record(
        outcome,
        records,
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        fit_seconds=round(fit_seconds, 3),
        resumed_after_epochs=resume.epochs_done if resume else None,
        time_s=round(time.perf_counter() - start, 3),
        params=count_parameters(model),
        forecasting=dm.forecasting,  # false: no rollout or forecast figures (the adding problem)
        # a ReplicaForecaster's every checkpoint holds each replica's best
        best_checkpoint=str(last_checkpoint(run_dir))
        if model.keeps_best_weights
        else job.best.best_model_path or None,
        config=OmegaConf.to_container(cfg, resolve=True),
        **dm.record(),  # a series' scale (data_scale): its forecasts in the data's units
    )
    _log_hparams(trainer, cfg, result)
    if trainer.is_global_zero:  # one metrics.json per run, also under DDP
        write_metrics(run_dir, result)
    return result


def final_diagnostics(
    trainer: L.Trainer, model: NetworkModule, grad_flow: GradientFlow, ends: list[NetworkEnd]
) -> list[dict[str, Any]]:
    """The gradient-flow diagnostics of the weights that are each network's last word: those
    its test scored, or those its module froze it with when it diverged (one dict per network;
    none when no network has such weights). Logged and drawn as the tested weights' when any
    network was tested."""
    finished = torch.tensor([end.tested for end in ends])
    final = finished | ~model.alive.cpu()
    if not final.any():
        return []
    shown = bool(finished.any())
    networks = model.networks(tested=finished)
    return grad_flow.measure(trainer, model, trainer.global_step, shown, networks, log=shown)


def network_records(
    model: NetworkModule,
    dm: WindowDataModule,
    seeds: Sequence[int],
    status: str,
    ends: list[NetworkEnd],
    measured: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    clipping: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Each network's record (:func:`network_record`): how it ended (``ends``, by its module);
    its test rollout and its data's baselines; its diagnostics (``measured``: the latest in
    training, and :func:`final_diagnostics`), of its final weights where it has them, and
    otherwise of the weights last measured in training (those a diverged Forecaster stopped
    with may no longer be finite); and its gradient clipping over the run."""
    finished = torch.tensor([end.tested for end in ends])
    final = finished | ~model.alive.cpu()
    networks = model.networks(tested=finished)
    rollouts = forecasts(networks.predict, dm) if dm.forecasting and finished.any() else []
    last, fresh = measured
    baselines = network_baselines(dm.members)
    records = []
    for r, end in enumerate(ends):
        values = {k: finite_or_none(v) for k, v in end.values.items()}
        if end.tested and dm.forecasting:  # a rollout feeds predictions back as inputs
            values[M.TEST_ROLLOUT_MSE] = rollouts[r].rollout_errors.mean().item()
        values.update(baselines[r])
        found = fresh if final[r] else last
        diagnostics = {**(found[r] if found else {}), **clipping[r]}
        records.append(network_record(seeds[r], status, end, values, diagnostics))
    return records


def _log_hparams(trainer: L.Trainer, cfg: DictConfig, result: dict[str, Any]) -> None:
    """One HParams entry per job, with the real final metrics (never a -1 placeholder)."""
    params, varied = hparams_of(cfg)
    log_final_results(trainer.logger, params, result, trainer.global_step, varied)
    for logger in trainer.loggers:  # TensorBoard's session status, the CSV file's last rows
        logger.finalize(result["status"])


def shown_path(path: Path) -> Path:
    """``path`` as a person types it: relative to the working directory when it lies inside it
    (``outputs/<date>/<time>``), else absolute."""
    path = Path(path).resolve()
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def already_finished(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The record of a resumed run (or job of a resumed sweep) that already trained all its
    epochs and was tested, said on the console; None if it has more to do."""
    finished = finished_run(cfg, run_dir)
    if finished is not None:
        print(
            f"rnnlab: {shown_path(run_dir)} already finished: {finished['epochs']} of "
            f"{cfg.trainer.max_epochs} epochs, status ok; nothing changed (train longer with "
            f"trainer.max_epochs=N)"
        )
    return finished


def hydra_job(cfg: DictConfig) -> float:
    """Hydra task: run in Hydra's job directory, print the summary, return the objective
    sweepers minimise (``val/mse_best``; infinity when the run diverged or a sweep job crashed)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    shown = shown_path(run_dir)
    multirun = hydra.mode == RunMode.MULTIRUN
    finished = already_finished(cfg, run_dir)
    if finished is not None:
        return objective(finished)
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True).rstrip())
    try:
        if multirun and not is_basic_sweep(hydra):
            validate(cfg)  # a searched value (Optuna); a basic sweep checked every job up front
        result = train_and_test(cfg, run_dir)
    except Exception as err:
        if not multirun:
            raise  # a single run that crashes exits non-zero
        result = record_failure(cfg, run_dir, err)
        print(f"rnnlab: job failed: {result['error']}\n  run directory: {shown}")
        return math.inf
    if rank_zero_only.rank == 0:
        text = summary_text(result, shown)
        log.info("%s", text)
        print(text)
    if result["status"] == "interrupted":  # exit as the signal would have: 130 or 143
        sys.exit(128 + signal.Signals[result["stopped_by"]])
    return objective(result)
