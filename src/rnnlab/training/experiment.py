"""Build a job from a composed config, train it, test it and write ``metrics.json``.

:func:`train_and_test` reads as Lightning + Hydra's train.py: build the DataModule, the model,
the callbacks and the Trainer; fit; test; record each network; write. The model is any
LightningModule with rnnlab.models.network.NetworkModule's members, read the same way whether
it trains one network (Forecaster) or several (ReplicaForecaster).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from traceback import format_exception
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rnnlab import metrics as M
from rnnlab.analysis import stats
from rnnlab.analysis.text import fmt as _fmt  # as summary.md and report.md write numbers
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
    ReplicaBoards,
    hparams_of,
    log_final_results,
    tensorboard_callbacks,
)
from rnnlab.training.checkpoints import best_checkpoint, last_epoch_checkpoint
from rnnlab.training.progress import FitClock, ProgressLog
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


def build_model(cfg: DictConfig) -> Forecaster | ReplicaForecaster:
    """The Forecaster for the config, its input and output sizes from the task; for replicas,
    the ReplicaForecaster of seeds ``seed .. seed+replicas-1``."""
    task = datamodule_class(cfg)
    kwargs = dict(
        input_size=task.channels,
        output_size=task.output_size,
        **OmegaConf.to_container(cfg.model),
    )
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


def build_callbacks(cfg: DictConfig, run_dir: Path, extra: Sequence[Callback] = ()) -> JobCallbacks:
    """rnnlab's loggers and callbacks for a job, and ``extra`` callbacks after them."""
    seeds = seeds_of(cfg)
    # a job of several networks: a TensorBoard run for each, tb/replica_<r>
    boards = ReplicaBoards(run_dir, seeds) if len(seeds) > 1 else None
    # TensorBoard first: trainer.logger, which the HParams session and rnnlab's figures use
    tb = TensorBoardLogger(save_dir=run_dir, name="tb", version="", default_hp_metric=False)
    csv_logger = EpochCSVLogger(run_dir, resume=cfg.resume is not None)  # csv/metrics.csv
    best, stop, clock = best_checkpoint(run_dir), StopAtEpochEnd(), FitClock()
    forecasting = datamodule_class(cfg).forecasting
    clip = cfg.trainer.get("gradient_clip_val")
    observers = tensorboard_callbacks(cfg.logger, run_dir, forecasting, clip, seeds, boards)
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
        *([boards] if boards else []),
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
    records = network_records(trainer, model, dm, job, seeds_of(cfg), outcome["status"])

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
    )
    _log_hparams(trainer, cfg, result)
    if trainer.is_global_zero:  # one metrics.json per run, also under DDP
        write_metrics(run_dir, result)
    return result


def network_records(
    trainer: L.Trainer,
    model: NetworkModule,
    dm: WindowDataModule,
    job: JobCallbacks,
    seeds: Sequence[int],
    status: str,
) -> list[dict[str, Any]]:
    """Each network's record (:func:`network_record`): how it ended, by its module; its test
    rollout and its data's baselines; and its diagnostics, of the weights its test scored, of
    the weights its module froze it with when it diverged, and otherwise of the weights last
    measured in training (those a diverged Forecaster stopped with may no longer be finite)."""
    ends = model.network_ends(tested=status == "ok")
    finished = torch.tensor([end.tested for end in ends])
    final = finished | ~model.alive.cpu()  # weights that are the network's last word
    networks = model.networks(tested=finished)
    rollouts = forecasts(networks.predict, dm) if dm.forecasting and finished.any() else []
    last, fresh = job.grad_flow.last, []  # last: measured in training
    if final.any():  # shown (logged, drawn) as the tested weights' when any network was tested
        shown = bool(finished.any())
        step = trainer.global_step
        fresh = job.grad_flow.measure(trainer, model, step, shown, networks, log=shown)
    clipping = job.grad_norms.run_stats(len(ends))
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


# -- the record: metrics.json ----------------------------------------------------------------
# A network's record (network_record) holds its seed, its status, its final metrics
# (rnnlab.metrics.FINAL_METRICS) and its diagnostics. A job's results (job_results) are its one
# network's metrics and diagnostics at the top level; for a job of several networks
# (replicas=R), each metric's mean over the networks that finished at the top level, its spread,
# and each network's record under "replicas".


def finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def finite_diagnostics(values: dict[str, Any]) -> dict[str, Any]:
    """Diagnostics as metrics.json holds them: non-finite numbers (in lists too) as null."""
    return {
        k: [finite_or_none(x) for x in v] if isinstance(v, list) else finite_or_none(v)
        for k, v in values.items()
    }


def mean_diagnostics(per_network: list[dict[str, Any]]) -> dict[str, Any]:
    """The networks' diagnostics averaged name by name (lists element by element)."""
    out: dict[str, Any] = {}
    for name in per_network[0] if per_network else ():
        rows = [d[name] for d in per_network if d.get(name) is not None]
        if not rows:  # no network has it: every one diverged before it was measured
            out[name] = None
            continue
        arr = np.array(
            [
                [np.nan if x is None else x for x in (r if isinstance(r, list) else [r])]
                for r in rows
            ],
            dtype=float,
        )
        mean = np.nanmean(arr, axis=0)
        out[name] = (
            [finite_or_none(x) for x in mean]
            if isinstance(rows[0], list)
            else finite_or_none(mean[0])
        )
    return out


def network_record(
    seed: int,
    job_status: str,
    end: NetworkEnd,
    values: dict[str, Any],
    diagnostics: dict[str, Any],
) -> dict[str, Any]:
    """One network's record: its status (``ok`` when it was tested; ``diverged``, with why and
    when, when its module froze it; else the job's), its ``values`` by the final metrics' names
    and its ``diagnostics``."""
    record: dict[str, Any] = {"seed": seed, "status": job_status}
    if end.tested:
        record["status"] = "ok"
    elif end.diverged is not None:
        record.update(status="diverged", **end.diverged)
    record |= {name: values.get(name) for name in M.FINAL_METRICS}
    record[M.DIAGNOSTICS] = finite_diagnostics(diagnostics)
    return record


def job_results(records: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics.json's results from its networks' records: one network's metrics and
    diagnostics; for several, each final metric's mean over those that finished and its spread
    across them (``replica_spread``: n, mean, std, 95% bootstrap interval of the mean,
    rnnlab.analysis.stats), the diagnostics' means, and each network's record."""
    if len(records) == 1:
        (record,) = records
        return {M.DIAGNOSTICS: record[M.DIAGNOSTICS]} | {
            name: record[name] for name in M.FINAL_METRICS
        }
    done = [rec for rec in records if rec["status"] == "ok"] or records
    spread = {name: stats.spread([rec[name] for rec in done]) for name in M.FINAL_METRICS}
    # the top level: each metric's mean over the finished networks, as in its spread
    means = {name: finite_or_none(s["mean"]) if s["n"] else None for name, s in spread.items()}
    return {
        **means,
        M.DIAGNOSTICS: mean_diagnostics([rec[M.DIAGNOSTICS] for rec in done]),
        "replicas": records,
        "replica_spread": spread,
        "replicas_finished": sum(rec["status"] == "ok" for rec in records),
    }


def job_record(
    outcome: dict[str, Any], records: list[dict[str, Any]], **run: Any
) -> dict[str, Any]:
    """metrics.json: the job's status and why it stopped (``outcome``), the seeds of a job of
    several networks, the results (:func:`job_results`), then ``run``: epochs, times, config."""
    record: dict[str, Any] = {"status": outcome["status"]}
    if len(records) > 1:
        record["seeds"] = [rec["seed"] for rec in records]
    return record | outcome | job_results(records) | run


def write_metrics(run_dir: Path, result: dict[str, Any]) -> Path:
    path = Path(run_dir) / M.METRICS_FILE
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def record_failure(cfg: DictConfig, run_dir: Path, err: Exception) -> dict[str, Any]:
    """Write a crashed sweep job's ``metrics.json`` (status ``failed``, the error, the config).

    Why not raise: Hydra's sweepers stop at a job's exception and then skip ``on_multirun_end``,
    so one crash would lose the other jobs and the sweep summary.
    """
    log.error("job failed", exc_info=err)
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an unresolvable interpolation may be the crash itself
        config = OmegaConf.to_container(cfg, resolve=False)
    result: dict[str, Any] = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    result.update(dict.fromkeys(M.FINAL_METRICS))
    result.update(traceback="".join(format_exception(err)), config=config)
    write_metrics(run_dir, result)
    return result


def summary_text(result: dict[str, Any], run_dir: Path) -> str:
    """What a person reads at the end of a run."""
    model = result["config"]["model"]
    test = result.get(M.TEST_MSE)
    named = (
        ("persistence", result.get(M.PERSISTENCE_MSE)),
        ("mean", result.get(M.MEAN_MSE)),
        ("linear", result.get(M.LINEAR_MSE)),
    )
    baselines = [
        f"{name} {_fmt(value)}" + (f" ({words})" if (words := M.times_better(test, value)) else "")
        for name, value in named
        if value is not None
    ]
    rollout = f"rollout MSE {_fmt(result.get(M.TEST_ROLLOUT_MSE))}"
    if not result.get("forecasting", True):
        rollout = "no rollout (not a forecasting task)"
    layers = f"{model['num_layers']} layer{'s' if model['num_layers'] > 1 else ''}"
    resumed = result.get("resumed_after_epochs")
    resumed = f" (resumed after epoch {resumed})" if resumed else ""
    replicas, test_text = "", f"test MSE {_fmt(test)}"
    if result.get("replicas"):
        seeds, spread = result["seeds"], result["replica_spread"][M.TEST_MSE]
        replicas = (
            f", {len(seeds)} replicas (seeds {seeds[0]}..{seeds[-1]}, "
            f"{result['replicas_finished']} finished)"
        )
        if spread["ci_low"] is not None:
            interval = f"[95% CI {_fmt(spread['ci_low'])}, {_fmt(spread['ci_high'])}]"
            test_text = f"test MSE {_fmt(test)} {interval} (mean of {spread['n']})"
    lines = [
        f"rnnlab: {model['cell']} cell, {model['nonlinearity']}, hidden {model['hidden_size']}, "
        f"{layers}, lr {model['lr']:g}, loss={model['loss']}{replicas}: {result['status']} after "
        f"{result['epochs']} epochs in {result['fit_seconds']:.1f}s{resumed}",
        f"  {test_text} vs {', '.join(baselines) or 'no baseline'}; {rollout}",
        f"  run directory: {run_dir}",
        f"  tensorboard --logdir {run_dir}",
    ]
    if result["status"] != "ok":
        lines.insert(1, f"  {result.get('error', '')}")
    return "\n".join(lines)


def finished_run(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The record of a resumed run that already trained all its epochs and was tested, else
    None: resuming it again changes nothing (ask for more with ``trainer.max_epochs``)."""
    if cfg.resume is None or not last_checkpoint(run_dir).is_file():
        return None
    try:
        record = json.loads((Path(run_dir) / M.METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    done = record.get("epochs") or 0
    return record if record.get("status") == "ok" and done >= cfg.trainer.max_epochs else None


def hydra_job(cfg: DictConfig) -> float:
    """Hydra task: run in Hydra's job directory, print the summary, return the objective
    sweepers minimise (``val/mse_best``; infinity when the run diverged or a sweep job crashed)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    multirun = hydra.mode == RunMode.MULTIRUN
    finished = finished_run(cfg, run_dir)
    if finished is not None:
        print(
            f"rnnlab: {run_dir} already finished: {finished['epochs']} of "
            f"{cfg.trainer.max_epochs} epochs, status ok; nothing changed (train longer with "
            f"trainer.max_epochs=N)"
        )
        return finished.get(M.VAL_MSE_BEST) or math.inf
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True).rstrip())
    try:
        if multirun and not is_basic_sweep(hydra):
            validate(cfg)  # a searched value (Optuna); a basic sweep checked every job up front
        result = train_and_test(cfg, run_dir)
    except Exception as err:
        if not multirun:
            raise  # a single run that crashes exits non-zero
        result = record_failure(cfg, run_dir, err)
        print(f"rnnlab: job failed: {result['error']}\n  run directory: {run_dir}")
        return math.inf
    if rank_zero_only.rank == 0:
        text = summary_text(result, run_dir)
        log.info("%s", text)
        print(text)
    if result["status"] == "interrupted":  # exit as the signal would have: 130 or 143
        sys.exit(128 + signal.Signals[result["stopped_by"]])
    best = result.get(M.VAL_MSE_BEST)
    return best if best is not None and result["status"] == "ok" else math.inf
