"""Hydra callbacks (``hydra.callbacks`` in conf/config.yaml): hooks Hydra calls around a run
or a sweep, in the process that launches the jobs.

Hydra also unpickles these callbacks in the worker processes of the joblib and submitit
launchers, which resolve the job's directory name (``${rnnlab.job_name:...}``) before any of
rnnlab's code runs there: so importing this module registers rnnlab's resolvers, the one
registration that happens on import (train.py registers them explicitly).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rnnlab import internals
from rnnlab.config import hydra_setup
from rnnlab.config.checks import check_distinct_seeds, check_output_dir, validate
from rnnlab.config.errors import ConfigError

log = logging.getLogger(__name__)
hydra_setup.register()


class InvalidConfig(SystemExit):
    """A :class:`ConfigError` leaving a Hydra callback. Hydra turns an ``Exception`` raised in a
    callback into a warning and goes on; a ``SystemExit`` stops it. rnnlab.config.cli prints it."""


def is_basic_sweep(hydra: DictConfig) -> bool:
    """Whether the sweep's jobs are known up front (Hydra's basic sweeper), so that
    :class:`ValidateConfig` checked each of them before the sweep started; other sweepers
    (Optuna) choose values as they go, and each job checks its own."""
    return "BasicSweeper" in str(hydra.sweeper.get("_target_", ""))


def _validated_jobs(config: DictConfig) -> Iterator[DictConfig]:
    """Each job's config of a basic sweep, validated, one at a time (a sweep's jobs are not all
    held in memory at once)."""
    for overrides in internals.sweep_job_overrides(config):
        job = internals.load_job_config(config, overrides)
        validate(job)
        yield job


class ValidateConfig(Callback):
    """Validates a run, or every job of a basic sweep, once, before Hydra creates any
    directory, so a bad value neither trains nor writes anything; a basic sweep two of whose
    jobs would train the same seed is refused too (checks.check_distinct_seeds). Then creates
    the run or sweep directory, refusing one that cannot be (checks.check_output_dir)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
            check_output_dir(config.hydra.run.dir, "hydra.run.dir")
        except ConfigError as err:
            raise InvalidConfig(str(err)) from err

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            if not is_basic_sweep(config.hydra):
                validate(config)  # the values every job shares; the sweeper's are checked later
            else:
                check_distinct_seeds(_validated_jobs(config))  # and no two train the same seed
            check_output_dir(config.hydra.sweep.dir, "hydra.sweep.dir")
        except ConfigError as err:
            raise InvalidConfig(str(err)) from err


class SweepSummary(Callback):
    """Writes summary.csv/.md/.png into the sweep directory when a multirun ends.

    Jobs record crashes instead of raising (see ``rnnlab.training.experiment.hydra_job``), so Hydra
    reaches this hook even when some jobs failed. A broken summary is logged, not raised: the
    jobs' own results are already on disk and ``python -m rnnlab.sweep`` can rebuild it.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnlab.analysis.summary import summarize

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = summarize(sweep_dir)
        except Exception:
            log.exception(
                "sweep summary failed; rebuild with: python -m rnnlab.sweep %s", sweep_dir
            )
            return
        log.info("sweep summary: %s", ", ".join(str(p) for p in paths))
