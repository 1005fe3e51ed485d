"""The notebook API: train a configuration and read runs and sweeps back, from Python::

    import rnnlab

    run = rnnlab.train(["model=concat", "trainer.max_epochs=20"])  # python train.py model=concat
    run.metrics["test/mse"], run.model, run.run_dir, run.config
    rnnlab.load_run(run.run_dir)                                # the same Run, from disk
    rnnlab.load_sweep("outputs/multirun/<date>/<time>")          # one row per network

:func:`train` is ``python train.py <overrides>`` without a shell. It composes the checkout's
``conf/`` with Hydra's compose API, after registering what train.py registers (the schema, the
resolvers); expands ``resume=`` as the command line does; runs the Hydra callbacks that
conf/config.yaml configures before a run (ValidateConfig: every check, before anything is
written); writes the run's ``.hydra/`` record and ``train.log`` as Hydra does; and runs the
same job, rnnlab.training.experiment.hydra_job. So a run gives the same metrics, bit for bit, and
its directory is a command-line run's (``python train.py resume=<run dir>`` continues it). A
config the command line refuses in one line raises :class:`ConfigError` with that line.

Hydra keeps global state: the compose API refuses to start while another initialisation is
alive ("GlobalHydra is already initialized"), and the job reads its directory from HydraConfig.
Each call sets both for itself and puts back what it found, so :func:`train` works any number of
times in one kernel, next to a user's own ``hydra.initialize``. Torch-free at import: a bad config
is refused in about a second; torch and Lightning load when a run trains or a model is read.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from rnnlab import metrics as M
from rnnlab.config.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from rnnlab.models.forecaster import Forecaster
    from rnnlab.models.replicas import ReplicaForecaster

#: The checkout's config directory, next to train.py, and what train.py's ``@hydra.main`` names.
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
CONFIG_NAME, VERSION_BASE = "config", "1.3"
#: hydra.job.name, which names the run's log (``train.log``): train.py's, its file's name.
JOB_NAME = "train"
#: Where Hydra writes a run's record of how it was started.
RECORD_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


class Run:
    """A run: its directory, its config, its ``metrics.json`` and, read on first use, its model.

    - ``run_dir``: the run's directory (``outputs/<date>/<time>_<overrides>`` by default);
    - ``config``: the composed config the run trained with (``.hydra/config.yaml``);
    - ``metrics``: ``metrics.json`` as a dict: ``status``, the final metrics by their names
      (``run.metrics["test/mse"]``), ``epochs``, ``replicas``, ``diagnostics``, ...;
    - ``model``: the weights the run's test scored (the best validation epoch's), a
      :class:`~rnnlab.models.forecaster.Forecaster`, or with ``replicas=R > 1`` a
      :class:`~rnnlab.models.replicas.ReplicaForecaster`; None when the run saved none.
    """

    def __init__(self, run_dir: Path, config: DictConfig, metrics: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.metrics = metrics

    @property
    def status(self) -> str:
        return str(self.metrics.get("status"))

    @cached_property
    def model(self) -> Forecaster | ReplicaForecaster | None:
        from rnnlab.config.resume import CHECKPOINT_DIR
        from rnnlab.models.forecaster import Forecaster
        from rnnlab.models.replicas import ReplicaForecaster
        from rnnlab.training.experiment import replicas_of

        saved = self.metrics.get("best_checkpoint")
        if not saved:
            return None
        # by its name in this directory: the record's path is relative to where the run was
        # started, and the directory may have moved since
        path = self.run_dir / CHECKPOINT_DIR / Path(saved).name
        module = Forecaster if replicas_of(self.config) == 1 else ReplicaForecaster
        return module.load_from_checkpoint(path, map_location="cpu").eval()

    def __repr__(self) -> str:
        test = self.metrics.get(M.TEST_MSE)
        shown = "n/a" if test is None else f"{test:.4g}"
        return f"Run({str(self.run_dir)!r}, status={self.status}, {M.TEST_MSE}={shown})"


@contextmanager
def _global_hydra() -> Iterator[None]:
    """Hydra initialised on the checkout's conf/ for the ``with`` block; an initialisation that
    was alive before (a user's ``hydra.initialize`` without ``with``, a cell that stopped inside
    one) is set aside and put back after, instead of making the compose API refuse to start."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    found = GlobalHydra.instance()
    theirs = found.hydra if found.is_initialized() else None
    found.clear()
    try:
        with initialize_config_dir(
            config_dir=str(CONF_DIR), job_name=JOB_NAME, version_base=VERSION_BASE
        ):
            yield
    finally:
        now = GlobalHydra.instance()  # leaving the block puts back a copy, not the same object
        now.clear()
        if theirs is not None:
            now.initialize(theirs)


@contextmanager
def _hydra_config(cfg: DictConfig) -> Iterator[None]:
    """HydraConfig set to the run's Hydra node for the ``with`` block, as Hydra sets it around
    a job (rnnlab.training.experiment.hydra_job reads the run's directory there), then put back."""
    from hydra.core.hydra_config import HydraConfig

    holder = HydraConfig.instance()
    theirs = holder.cfg
    holder.set_config(cfg)
    try:
        yield
    finally:
        holder.cfg = theirs


@contextmanager
def _job_logging(cfg: DictConfig) -> Iterator[None]:
    """The run's logging, configured as Hydra configures a job's (conf/hydra/job_logging/:
    ``train.log`` in the run's directory, warnings on the terminal); the root logger's handlers
    and level are put back after, so that the next run's lines do not go into this one's log."""
    from hydra.core.utils import configure_log

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_log(cfg.hydra.job_logging, cfg.hydra.verbose)
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers = handlers
        root.setLevel(level)


def _one_line(err: BaseException, overrides: Sequence[str]) -> ConfigError | None:
    """train.py's one-line error for what the user caused (rnnlab.config.cli.error_line), as a
    :class:`ConfigError`; None for anything else (a bug, re-raised as it is)."""
    from rnnlab.config.cli import error_line

    line = error_line(err, list(overrides))
    return None if line is None else ConfigError(line)


def compose(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> DictConfig:
    """The config ``python train.py <overrides>`` composes, with Hydra's node (``cfg.hydra``;
    ``cfg.hydra.runtime.output_dir`` is the run's directory: ``run_dir``, or conf/config.yaml's
    ``hydra.run.dir``, ``outputs/<date>/<time>_<overrides>`` under the working directory), checked
    as train.py checks it before a run, its directory created. Raises :class:`ConfigError` with
    the line train.py prints for a config it refuses."""
    if isinstance(overrides, str):
        raise TypeError(f"overrides is a list of strings, such as [{overrides!r}]")
    from rnnlab.config.hydra_callbacks import InvalidConfig

    overrides = list(overrides)
    try:
        return _compose(overrides, run_dir)
    except (Exception, InvalidConfig) as err:  # InvalidConfig: a callback's refusal
        refused = _one_line(err, overrides)
        if refused is None:
            raise
        raise refused from None  # the line says it all; Hydra's traceback says nothing more


def _compose(overrides: list[str], run_dir: str | Path | None) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra.types import RunMode
    from hydra.utils import instantiate

    from rnnlab.config import hydra_setup
    from rnnlab.config.resume import expand_resume

    if not (CONF_DIR / f"{CONFIG_NAME}.yaml").is_file():
        raise ConfigError(
            f"rnnlab composes the conf/ directory of its checkout, and {CONF_DIR} has no "
            f"{CONFIG_NAME}.yaml; install rnnlab from its checkout (pip install -e .)"
        )
    hydra_setup.register()  # as train.py does before Hydra composes conf/
    args = expand_resume(overrides)  # as train.py's command line does
    with _global_hydra():
        cfg = hydra_compose(CONFIG_NAME, overrides=args, return_hydra_config=True)
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode.RUN  # as Hydra's run sets it
        # resolved once: ${now:...} reads the clock each time it is read
        cfg.hydra.run.dir = str(run_dir if run_dir is not None else cfg.hydra.run.dir)
        with open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = os.path.abspath(cfg.hydra.run.dir)
    for callback in cfg.hydra.callbacks.values():  # ValidateConfig: every check, the directory
        instantiate(callback).on_run_start(config=cfg, config_name=CONFIG_NAME)
    return cfg


def _task_config(cfg: DictConfig) -> DictConfig:
    """The config the job gets (``.hydra/config.yaml``): all but Hydra's node."""
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def _write_record(cfg: DictConfig, task: DictConfig) -> None:
    """``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml``, as Hydra writes them before
    a job (none with ``hydra.output_subdir=null``, which ``resume=`` sets: the record stays the
    run's first)."""
    from hydra.core.hydra_config import HydraConfig

    if cfg.hydra.output_subdir is None:
        return
    folder = Path(cfg.hydra.runtime.output_dir) / cfg.hydra.output_subdir
    folder.mkdir(parents=True, exist_ok=True)
    written = (task, HydraConfig.instance().cfg, cfg.hydra.overrides.task)
    for name, node in zip(RECORD_FILES, written, strict=True):
        (folder / name).write_text(OmegaConf.to_yaml(node), encoding="utf-8")


def train(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> Run:
    """Train and test one configuration, as ``python train.py <overrides>`` does; returns its
    :class:`Run`.

    ``overrides`` are train.py's arguments (``["model=concat", "model.nonlinearity=relu",
    "replicas=5"]``; ``["resume=<run dir>"]`` continues a stopped run). ``run_dir``: where the
    run goes; by default conf/config.yaml's ``outputs/<date>/<time>_<overrides>`` under the
    working directory, as for train.py. A config train.py refuses raises :class:`ConfigError`
    with the same line, before anything is written or trained. A run interrupted by the
    kernel's interrupt (once: it stops at the epoch's end) returns its Run with status
    ``interrupted``; ``train(["resume=<its run_dir>"])`` continues it."""
    cfg = compose(overrides, run_dir)
    from rnnlab.training.experiment import hydra_job  # torch and Lightning: seconds

    task = _task_config(cfg)
    output_dir = Path(cfg.hydra.runtime.output_dir)
    with _hydra_config(cfg):
        output_dir.mkdir(parents=True, exist_ok=True)
        with _job_logging(cfg):
            try:
                _write_record(cfg, task)
                hydra_job(task)
            except SystemExit:  # hydra_job exits as the signal would after an interruption
                if _read_metrics(output_dir).get("status") != "interrupted":
                    raise
            except Exception as err:
                refused = _one_line(err, list(overrides))
                if refused is None:
                    raise
                raise refused from None
    return load_run(output_dir)


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json``; {} when it has none that can be read."""
    try:
        record = json.loads((Path(run_dir) / M.METRICS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def load_run(run_dir: str | Path) -> Run:
    """The :class:`Run` in ``run_dir``, a finished run's or sweep job's directory (one with
    ``metrics.json``). Its config is ``.hydra/config.yaml``, or metrics.json's copy where that
    is missing. Raises :class:`ConfigError` for a directory that holds no run."""
    from rnnlab.analysis.jobs import is_job_dir

    run_dir = Path(run_dir)
    record = _read_metrics(run_dir)
    if not record:
        metrics = run_dir / M.METRICS_FILE
        if not run_dir.is_dir():
            why = "does not exist" if not run_dir.exists() else "is a file, not a directory"
            raise ConfigError(f"{run_dir} {why}; give a run directory, outputs/<date>/<time>")
        if not is_job_dir(run_dir) and any(is_job_dir(p) for p in run_dir.iterdir()):
            raise ConfigError(
                f"{run_dir} is a sweep directory, not a run's; read it with "
                "rnnlab.load_sweep, or give one of its job directories"
            )
        why = "cannot be read" if metrics.exists() else "does not exist"
        raise ConfigError(
            f"{run_dir} holds no finished run: {metrics} {why} (a run writes it when it ends)"
        )
    saved = run_dir / ".hydra" / RECORD_FILES[0]
    config = OmegaConf.load(saved) if saved.is_file() else OmegaConf.create(record["config"])
    return Run(run_dir, config, record)


def load_sweep(sweep_dir: str | Path) -> pd.DataFrame:
    """A sweep's networks as a pandas DataFrame, one row per trained network (a ``replicas=R``
    job gives R): the sweep's ``networks.csv`` (rnnlab.analysis.networks.networks_table):
    ``job``, ``seed``, ``status``, a column per swept factor, every final metric and the
    diagnostics. Raises :class:`ConfigError` for a directory that holds no jobs."""
    from rnnlab.analysis.jobs import not_a_jobs_dir

    problem = not_a_jobs_dir(Path(sweep_dir))
    if problem:
        raise ConfigError(problem)
    from rnnlab.analysis.networks import networks_table  # pandas and scipy: a second

    return networks_table(sweep_dir)
