"""Every place rnnlab relies on a private or undocumented detail of Lightning, Hydra or torch.

Each is here, in one module, with what it buys, and tests/test_internals.py fails loudly when
an upgrade breaks one, rather than letting it silently stop working. Gains per training step at
the default config (B=32, L=4, H=32; a step is about 3.7 ms), as calls per step times the
saving per call, both measured in a real two-epoch fit (with the other core busy):

- :class:`CheapHookName` (``LightningModule._current_fx_name``): Lightning sets this attribute
  around every hook call, 48 times a step; ``nn.Module.__setattr__``'s parameter, buffer and
  module checks cost 3.6 us more a call than a plain attribute: 0.17 ms a step, about 5%.
- :func:`no_profiler` (Lightning's "no profiler" protocol): Lightning enters
  ``profiler.profile(name)`` around every hook of the module, the strategy and each callback,
  89 times a step; the default ``PassThroughProfiler``'s generator-based context manager costs
  3.4 us more a call than a shared ``nullcontext``: 0.30 ms a step, about 8%.
- :func:`file_writer` (``SummaryWriter._get_file_writer``): writes already-encoded PNGs and the
  HParams session protos as they are. ``add_image`` would decode and re-encode every figure, and
  ``add_hparams`` writes each job's session into a new sub-run with a ``-1`` placeholder.
- :func:`sweep_job_overrides` (``hydra._internal...BasicSweeper.split_arguments``) and
  :func:`load_job_config` (``GlobalHydra.config_loader``): compose every job of a basic sweep
  up front, so one bad value is refused before any job trains or writes; :func:`group_options`
  (the same loader) lists the launchers for ``python train.py --help``.
- :func:`compose_each_job_once` (the config loader's ``load_sweep_config``, replaced on the
  one loader instance of the running sweep): Hydra's basic sweeper composes each job to check
  its batch, :func:`load_job_config` to validate it and an in-process launcher to run it, about
  0.2 s each here: a 72-job study spent 30 s of its fused run composing the same configs twice
  more.
- :func:`is_lightning_config_error`: recognises Lightning's ``MisconfigurationException``
  without importing Lightning (8 s) on the command line's error path.
- :class:`KeepsEarlierCSV` (``_ExperimentWriter._check_log_dir_exists``) and :func:`csv_writer`
  (``CSVLogger._experiment``): ``csv/metrics.csv`` with one row per epoch
  (rnnlab.observe.csv_log) from Lightning's CSVLogger, whose own writer writes a row per
  ``log_metrics`` call (about ten an epoch) and deletes the file a resumed run already has;
  the logger's own ``log_hyperparams``, ``save`` and ``finalize`` still reach the writer.

Tried and dropped (under 3% of a step): caching ``ModelCheckpoint.state_key`` and skipping its
per-batch interval check (14 calls of 5 us and 2 of 1 us a step for the two checkpoint
callbacks: 0.07 ms, about 2%).

This module imports neither torch nor Lightning at import time.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: The attribute Lightning sets on the LightningModule around every hook call.
HOOK_NAME_ATTRIBUTE = "_current_fx_name"


class CheapHookName:
    """Mixin for a LightningModule: set :data:`HOOK_NAME_ATTRIBUTE` as a plain attribute.

    It is never a tensor or a module, so skipping ``nn.Module.__setattr__``'s checks is exact.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == HOOK_NAME_ATTRIBUTE:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)


@functools.cache
def _no_profiler_class() -> type:
    from lightning.pytorch.profilers import PassThroughProfiler

    class NoProfiler(PassThroughProfiler):
        """Lightning's default "no profiler", with a shared ``nullcontext`` (a tenth of the
        cost). A configured ``+trainer.profiler=...`` replaces it."""

        _NULL = nullcontext()

        def profile(self, action_name: str) -> nullcontext:
            return self._NULL

    return NoProfiler


def no_profiler() -> Any:
    """The profiler rnnlab's Trainer uses unless ``trainer.profiler`` is set."""
    return _no_profiler_class()()


def file_writer(writer: Any) -> Any:
    """The ``FileWriter`` behind a ``torch.utils.tensorboard.SummaryWriter``."""
    return writer._get_file_writer()


def sweep_job_overrides(cfg: DictConfig) -> Iterator[list[str]]:
    """Each job's overrides in a basic-sweeper multirun, as Hydra's BasicSweeper expands them
    (``hydra.sweeper.params`` first, then the command line)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = cfg.hydra.sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += list(cfg.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    for batch in BasicSweeper.split_arguments(parsed, None):
        yield from batch


def load_job_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The config one job of the running sweep gets, composed as Hydra composes it."""
    from hydra.core.global_hydra import GlobalHydra

    return GlobalHydra.instance().config_loader().load_sweep_config(cfg, overrides)


def compose_each_job_once(cfg: DictConfig) -> None:
    """From now on the running Hydra composes each job's config once: its config loader keeps
    what ``load_sweep_config`` returned for the sweep's config and a job's overrides, and gives
    each later caller its own copy (a launcher sets ``hydra.job.*`` on the one it gets). Only
    for launchers that compose in this process: the joblib and submitit launchers pickle the
    loader into their workers, and would pickle the kept configs with it."""
    import copy

    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    if hasattr(loader, "rnnlab_composed"):
        return
    compose, composed = loader.load_sweep_config, {}

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        if master_config is not cfg:  # another sweep's config: composed as Hydra would
            return compose(master_config, sweep_overrides)
        key = tuple(sweep_overrides)
        if key not in composed:
            composed[key] = compose(master_config, list(sweep_overrides))
        job = copy.deepcopy(composed[key])
        # as Hydra's own last step does: the sweep's resolved ${now:...} (its directory) as of
        # this call, which may come after the first composition
        OmegaConf.copy_cache(from_config=master_config, to_config=job)
        return job

    loader.load_sweep_config, loader.rnnlab_composed = load_sweep_config, composed


def is_lightning_config_error(err: BaseException) -> bool:
    """Lightning's MisconfigurationException, without importing Lightning to find out."""
    module = sys.modules.get("lightning.fabric.utilities.exceptions")
    return module is not None and isinstance(err, module.MisconfigurationException)


def group_options(group: str) -> list[str]:
    """The options of a config group (``hydra/launcher``), as ``python train.py --help`` lists
    them, from the running Hydra's config repository."""
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        return []
    loader = GlobalHydra.instance().config_loader()
    return [name for name in loader.get_group_options(group) if name != "basic"]


class KeepsEarlierCSV:
    """Mixin for Lightning's CSV ``ExperimentWriter``: its constructor deletes a metrics.csv
    already in the log directory (``_check_log_dir_exists``) unless :meth:`kept_earlier_rows`
    says it read the file's rows to go on with them."""

    def kept_earlier_rows(self) -> bool:
        return False

    def _check_log_dir_exists(self) -> None:
        if not self.kept_earlier_rows():
            super()._check_log_dir_exists()  # Lightning's: warns, and deletes the file


def csv_writer(logger: Any, make: Callable[[], Any]) -> Any:
    """The writer of a Lightning ``CSVLogger``: made by ``make`` on first use, in place of
    Lightning's own ``ExperimentWriter``, and kept where the logger's methods find it."""
    if logger._experiment is None:
        logger._experiment = make()
    return logger._experiment

