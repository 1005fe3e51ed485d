"""Build a run from a composed config, train it, test it and write ``metrics.json``."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from rnnlab import metrics as M
from rnnlab.data import SinCosDataModule
from rnnlab.model import Diverged, Forecaster

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


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


def build_trainer(cfg: DictConfig, run_dir: Path) -> L.Trainer:
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs["enable_progress_bar"] = _progress_bar(trainer_kwargs.get("enable_progress_bar"))
    logger = TensorBoardLogger(save_dir=run_dir, name="tb", version="", default_hp_metric=False)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=M.VAL_MSE,
        mode="min",
        save_last=True,
        save_top_k=1,
    )
    callbacks = [checkpoint, LearningRateMonitor(logging_interval="epoch")]
    return L.Trainer(logger=logger, callbacks=callbacks, default_root_dir=run_dir, **trainer_kwargs)


def rollout_mse(model: Forecaster, dm: SinCosDataModule, steps: int | None = None) -> float:
    """MSE of an autoregressive forecast from the first test window over the test split."""
    inputs, targets = dm.windows["test"]
    truth = targets[:, -1]  # the test series after the first window
    steps = len(truth) if steps is None else min(steps, len(truth))
    model.eval()
    preds = model.rollout(inputs[:1].to(model.device), steps)[0].cpu()
    return torch.mean((preds - truth[:steps]) ** 2).item()


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train and test one configuration; returns what is written to ``metrics.json``."""
    quiet_known_warnings()
    torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = build_datamodule(cfg)
    model = build_model(cfg)
    trainer = build_trainer(cfg, run_dir)

    result: dict[str, Any] = {"status": "ok"}
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=dm)
    except Diverged as err:
        result.update(
            status="diverged", error=str(err), diverged_epoch=err.epoch, diverged_step=err.step
        )
    fit_seconds = time.perf_counter() - start

    values = {k: _finite_or_none(v) for k, v in trainer.callback_metrics.items()}
    if result["status"] == "ok":
        trainer.test(model, datamodule=dm, ckpt_path="best", verbose=False)
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
    write_metrics(run_dir, result)
    return result


def _log_hparams(trainer: L.Trainer, cfg: DictConfig, result: dict[str, Any]) -> None:
    """One HParams entry per job, with the real final metrics (never a -1 placeholder)."""
    params = {f"model.{k}": v for k, v in OmegaConf.to_container(cfg.model).items()}
    params.update({f"data.{k}": v for k, v in OmegaConf.to_container(cfg.data).items()})
    params["seed"] = cfg.seed
    params = {k: (str(v) if isinstance(v, list | tuple) else v) for k, v in params.items()}
    final = {k: result[k] for k in M.FINAL_METRICS if result.get(k) is not None}
    trainer.logger.log_hyperparams(params, final)
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


def train(cfg: DictConfig) -> float:
    """Hydra task: run in Hydra's job directory, print the summary, return the objective
    sweepers minimise (``val/mse_best``; infinity when the run diverged)."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    result = run(cfg, run_dir)
    print(summary_text(result, run_dir))
    best = result.get(M.VAL_MSE_BEST)
    return best if best is not None and result["status"] == "ok" else math.inf
