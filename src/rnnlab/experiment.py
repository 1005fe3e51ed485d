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
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from traceback import format_exception
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rnnlab import metrics as M
from rnnlab.config import validate
from rnnlab.data import SinCosDataModule
from rnnlab.faults import (
    EpochCheckpoint,
    FiniteCheckpoints,
    StopAtEpochEnd,
    interruption,
    last_epoch_checkpoint,
)
from rnnlab.figures import forecast_test_split
from rnnlab.model import Diverged, Forecaster
from rnnlab.resume import CHECKPOINT_DIR, checkpoint_to_resume
from rnnlab.tb_logging import hparams_of, log_final_results, tensorboard_callbacks

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


def build_datamodule(cfg: DictConfig) -> SinCosDataModule:
    return SinCosDataModule(**OmegaConf.to_container(cfg.data, resolve=True), seed=cfg.seed)


def build_model(cfg: DictConfig) -> Forecaster:
    return Forecaster(input_size=SinCosDataModule.channels, **OmegaConf.to_container(cfg.model))


def _progress_bar(setting: Any) -> bool:
    """``auto``: a bar in an interactive single run, none in sweeps or logs."""
    if setting != "auto":
        return bool(setting)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return sys.stdout.isatty() and not multirun


class NoProfiler(PassThroughProfiler):
    """Lightning's default "no profiler", minus its cost.

    Lightning enters ``profiler.profile(...)`` around every hook of the module, the strategy
    and each callback: about 70 times per training step here. The default's generator-based
    context manager costs ~3 us each (~10% of a step at the default config); a shared
    ``nullcontext`` costs a tenth of that. A configured ``+trainer.profiler=...`` replaces it.
    """

    _NULL = nullcontext()

    def profile(self, action_name: str) -> AbstractContextManager[None]:
        return self._NULL


def build_trainer(
    cfg: DictConfig, run_dir: Path, callbacks: Sequence[Callback] = ()
) -> L.Trainer:
    """The Trainer train.py uses; ``callbacks`` are added to rnnlab's own (the benchmark
    times steps with one)."""
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs.setdefault("profiler", NoProfiler())
    trainer_kwargs["enable_progress_bar"] = _progress_bar(trainer_kwargs.get("enable_progress_bar"))
    logger = TensorBoardLogger(save_dir=run_dir, name="tb", version="", default_hp_metric=False)
    checkpoint = EpochCheckpoint(
        dirpath=run_dir / CHECKPOINT_DIR,
        filename="best",
        monitor=M.VAL_MSE,
        mode="min",
        save_top_k=1,
    )
    extra = list(callbacks)
    callbacks = [checkpoint, LearningRateMonitor(logging_interval="epoch")]
    # checkpoints/last.ckpt every epoch, finite only, and a clean stop on SIGINT/SIGTERM
    callbacks += [last_epoch_checkpoint(run_dir), FiniteCheckpoints(), StopAtEpochEnd()]
    callbacks += [*tensorboard_callbacks(cfg.logger, run_dir), *extra]
    return L.Trainer(logger=logger, callbacks=callbacks, default_root_dir=run_dir, **trainer_kwargs)


def rollout_mse(model: Forecaster, dm: SinCosDataModule, steps: int | None = None) -> float:
    """MSE of an autoregressive forecast from the first test window over the test split: the
    rollout the figures draw, so the metric and the picture cannot disagree."""
    return forecast_test_split(model, dm, steps).rollout_errors.mean().item()


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def train_and_test(
    cfg: DictConfig, run_dir: Path, callbacks: Sequence[Callback] = ()
) -> dict[str, Any]:
    """Train and test one configuration in ``run_dir``; returns what is written to
    ``metrics.json``. ``callbacks`` are extra Lightning callbacks for the Trainer."""
    validate(cfg)  # done before Hydra's job starts too; here for API use and sweepers' choices
    quiet_known_warnings()
    torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build_datamodule(cfg)
    model = build_model(cfg)
    trainer = build_trainer(cfg, run_dir, callbacks)
    ckpt_path = checkpoint_to_resume(cfg, run_dir)

    result: dict[str, Any] = {"status": "ok"}
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    except Diverged as err:
        result.update(
            status="diverged", error=str(err), diverged_epoch=err.epoch, diverged_step=err.step
        )
    fit_seconds = time.perf_counter() - start
    if result["status"] == "ok":
        result.update(interruption(trainer, run_dir))  # status "interrupted" after SIGINT/SIGTERM

    values = {k: _finite_or_none(v) for k, v in trainer.callback_metrics.items()}
    if result["status"] == "ok":
        best = trainer.checkpoint_callback.best_model_path  # the first, val/mse, checkpoint
        trainer.test(model, datamodule=dm, ckpt_path=best, verbose=False)
        values.update({k: _finite_or_none(v) for k, v in trainer.callback_metrics.items()})
        values[M.TEST_ROLLOUT_MSE] = rollout_mse(model, dm)
    result.update({name: values.get(name) for name in M.FINAL_METRICS})
    result.update(
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        fit_seconds=round(fit_seconds, 3),
        time_s=round(time.perf_counter() - start, 3),
        params=count_parameters(model),
        best_checkpoint=trainer.checkpoint_callback.best_model_path or None,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    _log_hparams(trainer, cfg, result)
    if trainer.is_global_zero:  # one metrics.json per run, also under DDP
        write_metrics(run_dir, result)
    return result


def _log_hparams(trainer: L.Trainer, cfg: DictConfig, result: dict[str, Any]) -> None:
    """One HParams entry per job, with the real final metrics (never a -1 placeholder)."""
    params, varied = hparams_of(cfg)
    log_final_results(trainer.logger, params, result, trainer.global_step, varied)
    trainer.logger.finalize(result["status"])


def write_metrics(run_dir: Path, result: dict[str, Any]) -> Path:
    path = Path(run_dir) / METRICS_FILE
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def summary_text(result: dict[str, Any], run_dir: Path) -> str:
    """What a person reads at the end of a run."""
    model = result["config"]["model"]
    test, base = result.get(M.TEST_MSE), result.get(M.PERSISTENCE_MSE)
    ratio = f" ({base / test:.0f}x better)" if test and base else ""
    lines = [
        f"rnnlab: {model['cell']} cell, {model['nonlinearity']}, hidden {model['hidden_size']}, "
        f"loss={model['loss']}: {result['status']} after {result['epochs']} epochs "
        f"in {result['fit_seconds']:.1f}s",
        f"  test MSE {_fmt(test)} vs persistence {_fmt(base)}{ratio}; "
        f"rollout MSE {_fmt(result.get(M.TEST_ROLLOUT_MSE))}",
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


def hydra_job(cfg: DictConfig) -> float:
    """Hydra task: run in Hydra's job directory, print the summary, return the objective
    sweepers minimise (``val/mse_best``; infinity when the run diverged or a sweep job crashed)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = train_and_test(cfg, run_dir)
    except Exception as err:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise  # a single run that crashes exits non-zero
        result = record_failure(cfg, run_dir, err)
        print(f"rnnlab: job failed: {result['error']}\n  run directory: {run_dir}")
        return math.inf
    if rank_zero_only.rank == 0:
        print(summary_text(result, run_dir))
    if result["status"] == "interrupted":  # exit as the signal would have: 130 or 143
        sys.exit(128 + signal.Signals[result["stopped_by"]])
    best = result.get(M.VAL_MSE_BEST)
    return best if best is not None and result["status"] == "ok" else math.inf
