"""Build a run from a composed config, train it, test it and write ``metrics.json``."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from traceback import format_exception
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rnnlab import metrics as M
from rnnlab.analysis import stats
from rnnlab.analysis.text import fmt as _fmt  # as summary.md and report.md write numbers
from rnnlab.config import choices
from rnnlab.config.checks import validate
from rnnlab.config.hydra_callbacks import is_basic_sweep
from rnnlab.config.resume import checkpoint_to_resume, last_checkpoint
from rnnlab.data.baselines import data_baselines
from rnnlab.data.tasks import DATAMODULES, ReplicaDataModule, WindowDataModule
from rnnlab.internals import no_profiler
from rnnlab.models.forecaster import Diverged, Forecaster
from rnnlab.models.replicas import ReplicaForecaster, replica_diagnostics
from rnnlab.observe.csv_log import CSVEpochs, EpochCSVLogger
from rnnlab.observe.rollout import replica_forecasts, rollout_mse
from rnnlab.observe.tensorboard import (
    GradientFlow,
    GradNormMonitor,
    ReplicaBoards,
    hparams_of,
    log_final_results,
    tensorboard_callbacks,
)
from rnnlab.training.checkpoints import FiniteCheckpoints, best_checkpoint, last_epoch_checkpoint
from rnnlab.training.progress import FitClock, ProgressLog
from rnnlab.training.signals import StopAtEpochEnd, interruption

log = logging.getLogger(__name__)

METRICS_FILE = M.METRICS_FILE


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
    return choices.pick("data.name", cfg.data.name, choices.DATASETS, DATAMODULES)


def replicas_of(cfg: DictConfig) -> int:
    """``replicas``: how many seeds, from ``seed`` on, this job trains together."""
    return int(cfg.get("replicas", 1))


def build_datamodule(cfg: DictConfig) -> WindowDataModule:
    """The task's DataModule; for replicas, one per seed served together."""
    kwargs = OmegaConf.to_container(cfg.data, resolve=True)
    del kwargs["name"]  # chose the class
    task = datamodule_class(cfg)
    if replicas_of(cfg) == 1:
        return task(**kwargs, seed=cfg.seed)
    return ReplicaDataModule([task(**kwargs, seed=cfg.seed + r) for r in range(replicas_of(cfg))])


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


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: Sequence[Callback] = ()) -> L.Trainer:
    """The Trainer train.py uses; ``callbacks`` are added to rnnlab's own (the benchmark
    times steps with one)."""
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs.setdefault("profiler", no_profiler())
    trainer_kwargs["enable_progress_bar"] = _progress_bar(trainer_kwargs.get("enable_progress_bar"))
    # TensorBoard first: trainer.logger, which the HParams session and rnnlab's figures use
    tb = TensorBoardLogger(save_dir=run_dir, name="tb", version="", default_hp_metric=False)
    csv_logger = EpochCSVLogger(run_dir, resume=cfg.get("resume") is not None)  # csv/metrics.csv
    every = [
        best_checkpoint(run_dir),  # first: trainer.checkpoint_callback, what testing loads
        last_epoch_checkpoint(run_dir),
        FiniteCheckpoints(),
        StopAtEpochEnd(),  # SIGINT/SIGTERM: stop at the epoch's end
        CSVEpochs(csv_logger),  # before any callback that logs at an epoch's start
        LearningRateMonitor(logging_interval="epoch"),
        ProgressLog(),
        FitClock(),
        *tensorboard_callbacks(
            cfg.logger,
            run_dir,
            datamodule_class(cfg).forecasting,
            clip=cfg.trainer.get("gradient_clip_val"),
        ),
        *callbacks,
    ]
    if replicas_of(cfg) > 1:
        every.append(ReplicaBoards(run_dir, [cfg.seed + r for r in range(replicas_of(cfg))]))
    loggers = [tb, csv_logger]
    return L.Trainer(logger=loggers, callbacks=every, default_root_dir=run_dir, **trainer_kwargs)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(
        p.numel() for p in model.parameters() if p.requires_grad
    )  # not replicas' best copies


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def final_diagnostics(trainer: L.Trainer, model: Forecaster, tested: bool) -> dict[str, Any]:
    """metrics.json's ``diagnostics``: spectra and gradient flow of the tested checkpoint (of the
    last measured model when the run did not finish), and clipping over every training step."""
    monitor = next(c for c in trainer.callbacks if isinstance(c, GradNormMonitor))
    flow = next(c for c in trainer.callbacks if isinstance(c, GradientFlow))
    values = flow.measure(trainer, model, trainer.global_step, draw=True) if tested else flow.last
    return _finite_diagnostics({**values, **monitor.run_stats()})


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
    trainer = build_trainer(cfg, run_dir, callbacks)
    resume = checkpoint_to_resume(cfg, run_dir)
    if resume is not None:
        log.info("resuming from %s after %d epochs", resume.path, resume.epochs_done)

    result: dict[str, Any] = {"status": "ok"}
    if isinstance(model, ReplicaForecaster):
        result["seeds"] = model.seeds
    clock = next(c for c in trainer.callbacks if isinstance(c, FitClock))
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=resume.path if resume else None)
    except Diverged as err:
        result.update(
            status="diverged", error=str(err), diverged_epoch=err.epoch, diverged_step=err.step
        )
    # every segment of a resumed run, this one measured around fit as a fresh run's is
    fit_seconds = clock.before + time.perf_counter() - start
    if result["status"] == "ok":
        result.update(interruption(trainer, run_dir))  # status "interrupted" after SIGINT/SIGTERM

    if isinstance(model, ReplicaForecaster):
        result.update(_replicas_result(trainer, model, dm, result["status"]))
    else:
        result.update(_run_result(trainer, model, dm, tested=result["status"] == "ok"))
    result.update(
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        fit_seconds=round(fit_seconds, 3),
        resumed_after_epochs=resume.epochs_done if resume else None,
        time_s=round(time.perf_counter() - start, 3),
        params=count_parameters(model),
        forecasting=dm.forecasting,  # false: no rollout or forecast figures (the adding problem)
        best_checkpoint=trainer.checkpoint_callback.best_model_path or None,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    if isinstance(model, ReplicaForecaster):  # every checkpoint holds each replica's best
        result["best_checkpoint"] = str(last_checkpoint(run_dir))
    _log_hparams(trainer, cfg, result)
    if trainer.is_global_zero:  # one metrics.json per run, also under DDP
        write_metrics(run_dir, result)
    return result


def _run_result(
    trainer: L.Trainer, model: Forecaster, dm: WindowDataModule, tested: bool
) -> dict[str, Any]:
    """A single run's final metrics and diagnostics, testing its best checkpoint first."""
    values = {k: _finite_or_none(v) for k, v in trainer.callback_metrics.items()}
    if tested:
        best = trainer.checkpoint_callback.best_model_path  # the first, val/mse, checkpoint
        trainer.test(model, datamodule=dm, ckpt_path=best, verbose=False)
        values.update({k: _finite_or_none(v) for k, v in trainer.callback_metrics.items()})
        if dm.forecasting:  # a rollout feeds predictions back as inputs: forecasting only
            values[M.TEST_ROLLOUT_MSE] = rollout_mse(model, dm)
    if dm.windows:  # set up by fit (always, unless it failed before)
        values.update(data_baselines(dm.windows, dm.forecasting))
    result = {M.DIAGNOSTICS: final_diagnostics(trainer, model, tested=tested)}
    return result | {name: values.get(name) for name in M.FINAL_METRICS}


def _replicas_result(
    trainer: L.Trainer, model: ReplicaForecaster, dm: ReplicaDataModule, status: str
) -> dict[str, Any]:
    """A replicas job's record: each replica's metrics as its own run would report them (under
    ``replicas``), their means over the replicas that finished at the top level, and for each
    final metric its spread across them (``replica_spread``: n, mean, std, 95% bootstrap
    interval of the mean, rnnlab.analysis.stats)."""
    tested = status == "ok"
    if tested:  # each replica's best-validation weights (ReplicaForecaster.test_step)
        trainer.test(model, datamodule=dm, verbose=False)
    monitor = next(c for c in trainer.callbacks if isinstance(c, GradNormMonitor))
    flow = next(c for c in trainer.callbacks if isinstance(c, GradientFlow))
    forecasts = replica_forecasts(model, dm) if tested and dm.forecasting else []
    finished_mask = model.alive & tested
    diagnosed = replica_diagnostics(model, finished_mask, flow.batch) if flow.batch else []
    shared = dm.windows["train"][0].stride(0) == 0  # every replica has the same data
    baselines = data_baselines(dm.members[0].windows, dm.forecasting) if shared else None
    records = []
    for r, member in enumerate(dm.members):
        finished = tested and bool(model.alive[r])
        values: dict[str, Any] = {k: v[r] for k, v in model.last_val.items()}
        values[M.VAL_MSE_BEST] = model.best_val_mse[r]
        if finished:
            values |= {k: v[r] for k, v in model.test_values.items()}
        values = {k: _finite_or_none(v) for k, v in values.items()}
        if finished and member.forecasting:
            values[M.TEST_ROLLOUT_MSE] = forecasts[r].rollout_errors.mean().item()
        if member.windows:
            values.update(baselines or data_baselines(member.windows, member.forecasting))
        record: dict[str, Any] = {"seed": model.seeds[r], "status": status}
        if finished:
            record["status"] = "ok"
        elif not bool(model.alive[r]):
            record.update(
                status="diverged",
                error=f"{model.diverged_what.get(r, 'loss')} stopped being finite",
                diverged_epoch=int(model.diverged_epoch[r]),
                diverged_step=int(model.diverged_step[r]),
            )
        record |= {name: values.get(name) for name in M.FINAL_METRICS}
        diag = {**(diagnosed[r] if diagnosed else {}), **monitor.run_stats(r)}
        record[M.DIAGNOSTICS] = _finite_diagnostics(diag)
        records.append(record)
    done = [rec for rec in records if rec["status"] == "ok"] or records
    spread = {name: stats.spread([rec[name] for rec in done]) for name in M.FINAL_METRICS}
    # the top level: each metric's mean over the finished replicas, as in its spread
    means = {name: _finite_or_none(s["mean"]) if s["n"] else None for name, s in spread.items()}
    diag_means = _mean_diagnostics([rec[M.DIAGNOSTICS] for rec in done])
    return {
        **means,
        M.DIAGNOSTICS: diag_means,
        "replicas": records,
        "replica_spread": spread,
        "replicas_finished": sum(rec["status"] == "ok" for rec in records),
    }


def _finite_diagnostics(values: dict[str, Any]) -> dict[str, Any]:
    """Diagnostics as metrics.json holds them: non-finite numbers (in lists too) as null."""
    return {
        k: [_finite_or_none(x) for x in v] if isinstance(v, list) else _finite_or_none(v)
        for k, v in values.items()
    }


def _mean_diagnostics(per_replica: list[dict[str, Any]]) -> dict[str, Any]:
    """The replicas' diagnostics averaged name by name (lists element by element)."""
    out: dict[str, Any] = {}
    for name in per_replica[0] if per_replica else ():
        rows = [d[name] for d in per_replica if d.get(name) is not None]
        if not rows:  # no replica has it: every one diverged before it was measured
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
            [_finite_or_none(x) for x in mean]
            if isinstance(rows[0], list)
            else _finite_or_none(mean[0])
        )
    return out


def _log_hparams(trainer: L.Trainer, cfg: DictConfig, result: dict[str, Any]) -> None:
    """One HParams entry per job, with the real final metrics (never a -1 placeholder)."""
    params, varied = hparams_of(cfg)
    log_final_results(trainer.logger, params, result, trainer.global_step, varied)
    for logger in trainer.loggers:  # TensorBoard's session status, the CSV file's last rows
        logger.finalize(result["status"])


def write_metrics(run_dir: Path, result: dict[str, Any]) -> Path:
    path = Path(run_dir) / METRICS_FILE
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


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


def finished_run(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The record of a resumed run that already trained all its epochs and was tested, else
    None: resuming it again changes nothing (ask for more with ``trainer.max_epochs``)."""
    if cfg.get("resume") is None or not last_checkpoint(run_dir).is_file():
        return None
    try:
        record = json.loads((Path(run_dir) / METRICS_FILE).read_text())
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
