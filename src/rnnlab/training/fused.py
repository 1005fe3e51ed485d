"""Fused sweeps (``hydra/launcher=fused``): the jobs of a sweep trained as a few packs, each pack
one batched network (rnnlab.models.pack.PackForecaster) under one Trainer, and every job's
directory written as if the job had run alone.

- :func:`pack_key` and :func:`plan`: which jobs share a pack. Jobs whose configs differ only in
  ``choices.FUSABLE`` (and ``replicas``) train in lock-step on tensors of the same shapes, so
  they may; a pack holds at most ``max_networks`` networks and what fits in memory
  (rnnlab.config.checks.network_bytes).
- :func:`run_pack`: one pack, from building it to each job's ``metrics.json``. Rows are the
  jobs' networks, each job's contiguous, the jobs ordered by ``model.nonlinearity`` (two runs
  of one activation each, rnnlab.models.cells.row_activation). During training each job's
  values go to its own ``tb/``, ``csv/metrics.csv`` and ``train.log`` (rnnlab.observe's
  callbacks, each given the jobs' :class:`~rnnlab.observe.tensorboard.JobOutput`); after
  testing, each job's networks are taken out of the pack as the module the job would have
  trained alone (a Forecaster, or a ReplicaForecaster for ``replicas>1``), which records them,
  draws the job's figures and is saved as the job's ``checkpoints/best.ckpt``.

The pack's own checkpoint, written at every epoch's end for resuming, is in the sweep's
``.packs/<pack>/`` folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from rnnlab import metrics as M
from rnnlab.config import choices
from rnnlab.config.checks import networks_that_fit, training_work
from rnnlab.config.resume import BEST_CHECKPOINT, CHECKPOINT_DIR, last_checkpoint
from rnnlab.data.tasks import ReplicaDataModule
from rnnlab.internals import no_profiler
from rnnlab.models.forecaster import Diverged, Forecaster
from rnnlab.models.pack import PackForecaster
from rnnlab.models.replicas import ReplicaForecaster
from rnnlab.observe import figures
from rnnlab.observe.csv_log import CSVEpochs, EpochCSVLogger
from rnnlab.observe.tensorboard import (
    JobOutput,
    NetworkScalars,
    emit_figures,
    hparams_of,
    log_final_results,
    tensorboard_callbacks,
)
from rnnlab.training.checkpoints import last_epoch_checkpoint, save_module
from rnnlab.training.experiment import (
    build_datamodule,
    build_model,
    count_parameters,
    datamodule_class,
    final_diagnostics,
    forecaster_kwargs,
    job_output,
    network_records,
    quiet_known_warnings,
    seeds_of,
)
from rnnlab.training.progress import FitClock, JobsProgressLog
from rnnlab.training.record import job_record, summary_text, write_metrics
from rnnlab.training.signals import StopAtEpochEnd

log = logging.getLogger(__name__)

#: Where a sweep keeps its packs' checkpoints, inside the sweep directory.
PACKS_DIR = ".packs"
#: The share of this machine's memory the networks of one pack may take.
MEMORY_SHARE = 0.5


def pack_key(cfg: DictConfig) -> str:
    """What the jobs of one pack share: the config without the keys a pack's networks may each
    have (``choices.FUSABLE``), ``replicas``, and where and how jobs run (``hydra``,
    ``resume``). ``logger`` and ``threads`` stay: one Trainer and its callbacks run a pack."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in (*choices.FUSABLE, "replicas", "hydra", "resume"):
        section, _, name = key.rpartition(".")
        (config.get(section, {}) if section else config).pop(name, None)
    return json.dumps(config, sort_keys=True, default=str)


def plan(
    configs: Sequence[DictConfig], max_networks: int, n_jobs: int = 1
) -> list[list[int]]:
    """The packs, as lists of indices into ``configs``: jobs with one :func:`pack_key`, in
    order, filled up to ``max_networks`` networks and to what fits in memory (a job is never
    split; one larger than the cap is a pack of its own), then cut so that ``n_jobs`` workers
    share the work (:func:`balance`), the most work first."""
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(pack_key(cfg), []).append(i)
    packs = []
    for members in groups.values():
        fit = networks_that_fit(configs[members[0]], MEMORY_SHARE)
        cap = max_networks if fit is None else max(1, min(max_networks, fit))
        current: list[int] = []
        size = 0
        for i in members:
            n = int(configs[i].replicas)
            if current and size + n > cap:
                packs.append(current)
                current, size = [], 0
            current.append(i)
            size += n
        packs.append(current)
    return balance(packs, [training_work(c) * int(c.replicas) for c in configs], n_jobs)


def balance(packs: list[list[int]], work: Sequence[float], n_jobs: int) -> list[list[int]]:
    """``packs`` for ``n_jobs`` workers taking the next pack as they finish one: a pack with
    more than a ``2 n_jobs``-th of all the ``work`` (per job) is cut into that many parts of
    whole jobs, in order, so that the workers end together (one pack of a whole study would
    keep all but one idle; a few unequal packs, all but one waiting on the largest). Each
    network's result does not depend on its pack (tests/test_pack.py). The largest first.
    The cut depends on the jobs planned together: plan a whole sweep, finished jobs too, so
    that a resumed sweep forms the packs it had."""
    cost = [sum(work[i] for i in pack) for pack in packs]
    share = sum(cost) / (2 * n_jobs) if n_jobs > 1 else math.inf
    cut = []
    for pack, c in zip(packs, cost, strict=True):
        parts = min(len(pack), max(1, math.ceil(c / share - 1e-9))) if share else 1
        size = math.ceil(len(pack) / parts)
        cut += [pack[k : k + size] for k in range(0, len(pack), size)]
    return sorted(cut, key=lambda p: -sum(work[i] for i in p))


def pack_dir(sweep_dir: Path, run_dirs: Sequence[Path]) -> Path:
    """A pack's folder in the sweep, named by its jobs' directories (the same jobs, the same
    folder: a resumed sweep finds its packs' checkpoints)."""
    names = "\n".join(sorted(Path(d).name for d in run_dirs))
    return Path(sweep_dir) / PACKS_DIR / hashlib.sha1(names.encode()).hexdigest()[:12]


@dataclass
class PackJob:
    """One job of a pack: its config, Hydra's config of it (``hydra`` node: the HParams
    columns it set, its log format) and its directory."""

    cfg: DictConfig
    hydra_cfg: DictConfig
    run_dir: Path


@dataclass
class _Job:
    """A job inside a running pack: its rows, its DataModule, its loggers."""

    spec: PackJob
    rows: slice
    dm: Any
    out: JobOutput
    tb: TensorBoardLogger
    csv: EpochCSVLogger
    log: logging.Logger


def _job_log(spec: PackJob) -> logging.Logger:
    """A logger writing to the job's own log file (``train.log``) in Hydra's job format."""
    hydra = spec.hydra_cfg.hydra
    fmt = OmegaConf.select(hydra, "job_logging.formatters.simple.format", default=None)
    logger = logging.Logger("rnnlab.run")  # not in logging's registry: one per job
    handler = logging.FileHandler(Path(spec.run_dir) / f"{hydra.job.name}.log")
    handler.setFormatter(logging.Formatter(fmt or logging.BASIC_FORMAT))
    logger.addHandler(handler)
    return logger


def _order(jobs: Sequence[PackJob]) -> list[PackJob]:
    """Jobs by nonlinearity (stable): each activation's rows in one run."""
    return sorted(jobs, key=lambda job: choices.NONLINEARITIES.index(job.cfg.model.nonlinearity))


def run_pack(jobs: Sequence[PackJob], folder: Path) -> list[dict[str, Any]]:
    """Train, test and record the jobs of one pack (:func:`plan`) in ``folder``; returns each
    job's ``metrics.json`` record, in the order of ``jobs``."""
    quiet_known_warnings()
    first = jobs[0].cfg
    torch.set_num_threads(first.threads)
    L.seed_everything(first.seed, workers=True, verbose=False)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    resume = last_checkpoint(folder) if last_checkpoint(folder).is_file() else None

    ordered, members, networks, start = [], [], [], 0
    for spec in _order(jobs):
        dm = build_datamodule(spec.cfg)
        n = len(seeds_of(spec.cfg))
        rows = slice(start, start + n)
        start += n
        tb = TensorBoardLogger(spec.run_dir, name="tb", version="", default_hp_metric=False)
        csv = EpochCSVLogger(spec.run_dir, resume=resume is not None)
        label = figures.job_label(build_model_hparams(spec.cfg), seeds_of(spec.cfg))
        out = job_output(spec.cfg, spec.run_dir, rows=rows, loggers=[tb, csv], label=label)
        ordered.append(_Job(spec, rows, dm, out, tb, csv, _job_log(spec)))
        members += dm.members if n > 1 else [dm]
        clip = spec.cfg.trainer.get("gradient_clip_val")
        model = forecaster_kwargs(spec.cfg)
        networks += [{"seed": seed, "clip": clip, **model} for seed in seeds_of(spec.cfg)]
    pack_dm = ReplicaDataModule(members)
    pack = PackForecaster(networks, clip_algorithm=first.trainer.get("gradient_clip_algorithm"))

    outputs = [job.out for job in ordered]
    forecasting = datamodule_class(first).forecasting
    observers = tensorboard_callbacks(first.logger, folder, forecasting, outputs)
    stop, clock = StopAtEpochEnd(), FitClock()
    callbacks = [
        last_epoch_checkpoint(folder),
        stop,
        *[CSVEpochs(job.csv) for job in ordered],
        NetworkScalars(outputs, means=True),
        JobsProgressLog([(job.rows, job.log) for job in ordered]),
        clock,
        *observers.every,
    ]
    trainer_kwargs = OmegaConf.to_container(first.trainer, resolve=True)
    for key in ("gradient_clip_val", "gradient_clip_algorithm"):  # each network's, in the pack
        trainer_kwargs.pop(key, None)
    trainer_kwargs.update(enable_progress_bar=False, enable_model_summary=False)
    trainer_kwargs.setdefault("profiler", no_profiler())
    trainer = L.Trainer(
        logger=False, callbacks=callbacks, default_root_dir=folder, **trainer_kwargs
    )
    log.info(
        "pack of %d jobs, %d networks%s",
        len(ordered),
        len(networks),
        f": resuming from {resume}" if resume else "",
    )
    began = time.perf_counter()
    status = "ok"
    try:
        trainer.fit(pack, datamodule=pack_dm, ckpt_path=resume)
    except Diverged:
        status = "diverged"  # every network: each is recorded as such below
    fit_seconds = clock.before + time.perf_counter() - began
    if status == "ok" and stop.signum is not None and trainer.current_epoch < trainer.max_epochs:
        status = "interrupted"
    if status == "ok":
        trainer.test(pack, datamodule=pack_dm, verbose=False)
    ends = pack.network_ends(tested=status == "ok")
    fresh = final_diagnostics(trainer, pack, observers.grad_flow, ends)
    last = observers.grad_flow.last
    clipping = observers.grad_norms.run_stats(len(ends))
    epochs_done = int(torch.load(resume, weights_only=False)["epoch"]) + 1 if resume else None
    results = {}
    for job in ordered:
        rows = job.rows
        measured = (last[rows] if last else [], fresh[rows] if fresh else [])
        results[id(job.spec)] = _finish_job(
            trainer,
            pack,
            job,
            status,
            ends[rows],
            measured,
            clipping[rows],
            fit_seconds=round(fit_seconds, 3),
            resumed_after_epochs=epochs_done,
            time_s=round(time.perf_counter() - began, 3),
        )
    return [results[id(spec)] for spec in jobs]


def build_model_hparams(cfg: DictConfig) -> Any:
    """What figure titles read of a module (``hparams``), from a job's config."""
    from types import SimpleNamespace

    return SimpleNamespace(hparams=SimpleNamespace(**OmegaConf.to_container(cfg.model)))


def _outcome(pack: PackForecaster, rows: slice, status: str, sweep_dir: Path, trainer) -> dict:
    """The job's status and why: as the pack's, unless every one of its networks diverged."""
    if status == "interrupted":
        return {
            "status": "interrupted",
            "stopped_by": "SIGINT",
            "error": f"stopped after {trainer.current_epoch} of {trainer.max_epochs} epochs; "
            f"resume the sweep with: python train.py -m resume={sweep_dir}",
        }
    alive = pack.alive[rows].cpu()
    if alive.any() and status == "ok":
        return {"status": "ok"}
    epochs, steps = pack.diverged_epoch[rows].cpu(), pack.diverged_step[rows].cpu()
    last = int(torch.argmax(steps))
    what = pack.diverged_what.get(rows.start + last, "loss")
    err = Diverged(int(epochs[last]), int(steps[last]), math.nan, what)
    return {
        "status": "diverged",
        "error": str(err),
        "diverged_epoch": err.epoch,
        "diverged_step": err.step,
    }


def own_module(
    pack: PackForecaster, rows: slice, cfg: DictConfig, tested: bool
) -> Forecaster | ReplicaForecaster:
    """The job's networks taken out of the pack as the module the job would have trained
    alone, in the state a lone run ends in: a Forecaster holding the weights its test scored
    (or those it diverged with), or a ReplicaForecaster with each replica's current and best
    weights and how it ended."""
    with torch.random.fork_rng(devices=[]):
        module = build_model(cfg).to(pack.device)
    ids = range(rows.start, rows.stop)
    module.val_values = {k: v[rows].clone() for k, v in pack.val_values.items()}
    module.test_values = {k: v[rows].clone() for k, v in pack.test_values.items()}
    if isinstance(module, Forecaster):
        state = (pack.best if tested else pack.net).replica_state(rows.start)
        module.load_state_dict(state, strict=False)
        module.val_values = {k: v[0] for k, v in module.val_values.items()}
        module.test_values = {k: v[0] for k, v in module.test_values.items()}
        return module
    with torch.no_grad():
        for name in module.net.names:
            module.net.param(name).copy_(pack.net.param(name)[rows])
            module.best.param(name).copy_(pack.best.param(name)[rows])
    for buffer in ("alive", "best_val_mse", "diverged_epoch", "diverged_step"):
        getattr(module, buffer).copy_(getattr(pack, buffer)[rows])
    module.diverged_what = {i - rows.start: w for i, w in pack.diverged_what.items() if i in ids}
    return module


def _finish_job(
    trainer: L.Trainer,
    pack: PackForecaster,
    job: _Job,
    status: str,
    ends: list,
    measured: tuple[list, list],
    clipping: list,
    **run: Any,
) -> dict[str, Any]:
    """One job's record, figures, checkpoint, HParams session and ``metrics.json``."""
    from hydra.core.hydra_config import HydraConfig

    cfg, run_dir, rows = job.spec.cfg, Path(job.spec.run_dir), job.rows
    sweep_dir = run_dir.parent
    outcome = _outcome(pack, rows, status, sweep_dir, trainer)
    module = own_module(pack, rows, cfg, tested=bool(ends[0].tested))
    job.dm.setup("test")  # a job of several networks: its own stack of its members' windows
    seeds = seeds_of(cfg)
    records = network_records(module, job.dm, seeds, outcome["status"], ends, measured, clipping)
    best = Path(run_dir) / CHECKPOINT_DIR / BEST_CHECKPOINT
    has_best = bool(torch.isfinite(pack.best_val_mse[rows]).any())
    if has_best:
        save_module(module, best, trainer.current_epoch, trainer.global_step)
    diverged = outcome["status"] == "diverged"
    result = job_record(
        outcome,
        records,
        epochs=outcome["diverged_epoch"] if diverged else trainer.current_epoch,
        steps=outcome["diverged_step"] if diverged else trainer.global_step,
        **{k: run[k] for k in ("fit_seconds", "resumed_after_epochs", "time_s")},
        params=count_parameters(module),
        forecasting=job.dm.forecasting,
        **job.dm.record(),  # a series' scale: its forecasts in the data's units
        best_checkpoint=str(best) if has_best else None,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    tested = outcome["status"] == "ok"
    if tested and cfg.logger.figures and job.dm.forecasting:
        predict = module.networks(tested=True).predict
        steps = cfg.logger.rollout_steps
        figs = figures.final_figures(predict, job.dm, job.out.label, seeds, steps)
        emit_figures(job.tb.experiment, figs, trainer.global_step, run_dir / "figures")
    HydraConfig.instance().set_config(job.spec.hydra_cfg)  # the columns this job's sweep set
    params, varied = hparams_of(cfg)
    log_final_results(job.tb, params, result, trainer.global_step, varied)
    for logger in (job.tb, job.csv):
        logger.finalize(result["status"])
    if job.out.boards is not None:
        job.out.boards.flush()
    write_metrics(run_dir, result)
    job.log.info("%s", summary_text(result, run_dir))
    for handler in job.log.handlers:
        handler.close()
    return result


def check_launcher_options(
    max_networks: Any, n_jobs: Any, executor: Any, executors: Sequence[str]
) -> None:
    """The launcher's options, refused in one line each (rnnlab.config.errors)."""
    from rnnlab.config.errors import invalid

    if not isinstance(max_networks, int) or max_networks < 1:
        raise invalid("hydra.launcher.max_networks", max_networks, "an integer >= 1")
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise invalid("hydra.launcher.n_jobs", n_jobs, "an integer >= 1")
    choices.check_choice("hydra.launcher.executor", executor, executors)


def prepare_job(cfg: DictConfig) -> float | None:
    """The fused launcher's task for each job, run by Hydra as it runs any job (its directory,
    ``.hydra/``, ``train.log``): what :func:`rnnlab.training.experiment.hydra_job` does before
    training. Returns None for a job to train in a pack, else its objective: a job that
    finished before (a resumed sweep) or one refused (a searched value out of range)."""
    from hydra.core.hydra_config import HydraConfig

    from rnnlab.config.checks import validate
    from rnnlab.config.hydra_callbacks import is_basic_sweep
    from rnnlab.training.experiment import already_finished
    from rnnlab.training.record import objective, record_failure

    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    finished = already_finished(cfg, run_dir)
    if finished is not None:
        return objective(finished)
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True).rstrip())
    try:
        if not is_basic_sweep(hydra):
            validate(cfg)  # a searched value (Optuna); a basic sweep checked every job up front
    except Exception as err:
        record_failure(cfg, run_dir, err)
        return math.inf
    return None


def launch_packs(
    todo: Sequence[tuple[Any, PackJob]],
    sweep_dir: Path,
    max_networks: int,
    n_jobs: int,
    executor: str,
    submitit: dict[str, Any],
    planned: Sequence[DictConfig] | None = None,
) -> None:
    """Train ``todo``'s jobs as packs and set each job's return value (Hydra's JobReturn, the
    first of each pair) to its objective, reporting each as its pack finishes. ``planned``: the
    configs of every job of the sweep, finished ones too, ``todo``'s among them: the packs are
    planned over those (:func:`plan`), so that a resumed sweep forms the packs it had."""
    from rnnlab.config.hydra_callbacks import finished_jobs, report_progress
    from rnnlab.training.record import objective, record_failure

    specs = [spec for _, spec in todo]
    planned = list(planned) if planned is not None else [s.cfg for s in specs]
    where = {id(cfg): k for k, cfg in enumerate(planned)}
    mine = {where[id(spec.cfg)]: k for k, spec in enumerate(specs)}
    packs = [
        [todo[mine[i]] for i in pack if i in mine]
        for pack in plan(planned, max_networks, n_jobs if executor == "local" else 1)
    ]
    packs = [pack for pack in packs if pack]
    args = [
        ([spec for _, spec in pack], pack_dir(sweep_dir, [spec.run_dir for _, spec in pack]))
        for pack in packs
    ]
    if packs:
        sizes = [sum(len(seeds_of(spec.cfg)) for _, spec in pack) for pack in packs]
        log.info("%d jobs in %d packs of %s networks", len(specs), len(packs), sizes)

    done = finished_jobs(sweep_dir) - sum(1 for _, spec in todo if _has_record(spec.run_dir))

    def finish(pack: Sequence[tuple[Any, PackJob]], results: Any) -> None:
        nonlocal done
        for (ret, spec), result in zip(pack, results, strict=True):
            if isinstance(result, BaseException):  # the pack crashed: each job records why
                result = record_failure(spec.cfg, spec.run_dir, result)
            ret.return_value = objective(result)
            done += 1
            report_progress(sweep_dir, spec.run_dir, result, done)

    for pack, results in zip(packs, _run_all(args, n_jobs, executor, submitit), strict=True):
        finish(pack, results)


def _has_record(run_dir: Path) -> bool:
    return (Path(run_dir) / M.METRICS_FILE).is_file()


def _run_safely(jobs: Sequence[PackJob], folder: Path) -> list[dict[str, Any]] | list[Exception]:
    """:func:`run_pack`, a crash returned for each job instead of raised (Hydra's sweepers
    stop at an exception and skip the sweep summary)."""
    try:
        return run_pack(jobs, folder)
    except Exception as err:
        log.exception("pack failed")
        return [err] * len(jobs)


def _run_packed(arg: tuple[Sequence[PackJob], Path]) -> list[dict[str, Any]] | list[Exception]:
    return _run_safely(*arg)


def _run_all(args: list[tuple[Any, Path]], n_jobs: int, executor: str, submitit: dict[str, Any]):
    """Each pack's results, in order, as each finishes: here one after another, or in
    ``n_jobs`` forked worker processes, or as submitit jobs."""
    if executor == "submitit":
        import submitit as sub

        options = dict(submitit)
        cluster, folder = options.pop("cluster"), options.pop("folder")
        ex = sub.AutoExecutor(folder=folder, cluster=None if cluster == "slurm" else cluster)
        extra = options.pop("additional_parameters", {}) or {}
        partition = options.pop("partition", None)
        params = {k: v for k, v in options.items() if v is not None}
        if cluster == "slurm":
            params |= {"slurm_partition": partition} if partition else {}
            params |= {"slurm_additional_parameters": extra} if extra else {}
        ex.update_parameters(**params)
        submitted = [ex.submit(_run_safely, jobs, folder) for jobs, folder in args]
        for job in submitted:
            yield job.result()
    elif n_jobs > 1 and len(args) > 1:
        # Forked workers start with this process's imports (Lightning: about 6 s a process
        # here) and its logging; a fresh worker (joblib's loky) would import everything again.
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(min(n_jobs, len(args))) as pool:
            yield from pool.imap(_run_packed, args)
    else:
        for jobs, folder in args:
            yield _run_safely(jobs, folder)
