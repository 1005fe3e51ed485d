"""Hydra callbacks (``hydra.callbacks`` in conf/config.yaml): hooks Hydra calls around a run
or a sweep, in the process that launches the jobs.

Hydra also unpickles these callbacks in the worker processes of the joblib and submitit
launchers, which resolve the job's directory name (``${rnnlab.job_name:...}``) before any of
rnnlab's code runs there: so importing this module registers rnnlab's resolvers, the one
registration that happens on import (train.py registers them explicitly).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rnnlab import internals
from rnnlab.config import hydra_setup
from rnnlab.config.checks import check_distinct_seeds, check_output_dir, validate
from rnnlab.config.errors import ConfigError
from rnnlab.metrics import METRICS_FILE, TEST_MSE

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


def runs_jobs_here(hydra: DictConfig) -> bool:
    """Whether the launcher composes and runs the jobs in this process (Hydra's basic launcher,
    rnnlab's fused one), which then reuse the configs :class:`ValidateConfig` composed."""
    target = str(hydra.launcher.get("_target_", ""))
    return target.endswith(("BasicLauncher", "FusedLauncher"))


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
                if runs_jobs_here(config.hydra):
                    internals.compose_each_job_once(config)
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


#: In the sweep directory: when the sweep started and how many jobs it has (SweepProgress).
PROGRESS_STATE = ".progress.json"
#: In the sweep directory: one line per finished job, as the console shows them.
SWEEP_LOG = "sweep.log"


def _total_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep runs: every job of a basic sweep, the trials of a search."""
    if is_basic_sweep(config.hydra):
        return sum(1 for _ in internals.sweep_job_overrides(config))
    trials = config.hydra.sweeper.get("n_trials")
    return int(trials) if trials is not None else None


def finished_jobs(sweep_dir: Path) -> int:
    return sum(1 for _ in Path(sweep_dir).glob(f"*/{METRICS_FILE}"))


def report_progress(
    sweep_dir: Path, run_dir: Path, result: dict[str, Any], done: int | None = None
) -> str:
    """Print, and add to the sweep's ``sweep.log``, the line for a job that just finished:
    ``[17/72] <job> ok, test MSE 0.00123, ETA 3 min`` (the time left from this sweep's pace
    so far: jobs finished before a resume count as done, not as pace). ``done``: how many
    jobs have finished (default: those with a ``metrics.json``)."""
    from rnnlab.analysis.text import fmt

    sweep_dir = Path(sweep_dir)
    try:
        state = json.loads((sweep_dir / PROGRESS_STATE).read_text())
    except (OSError, ValueError):
        state = {}
    total = state.get("total")
    done = finished_jobs(sweep_dir) if done is None else done
    line = f"[{done}/{total if total is not None else '?'}] {Path(run_dir).name} {result['status']}"
    test = result.get(TEST_MSE)
    if test is not None:
        line += f", test MSE {fmt(test)}"
    ran, before = done - state.get("done_before", 0), state.get("start")
    if total is not None and before is not None and ran > 0 and total > done:
        left = (time.time() - before) / ran * (total - done)
        line += f", ETA {left / 60:.0f} min" if left >= 90 else f", ETA {left:.0f} s"
    print(line, flush=True)
    with (sweep_dir / SWEEP_LOG).open("a") as file:
        file.write(line + "\n")
    return line


class SweepProgress(Callback):
    """One line per finished job on the console and in the sweep's ``sweep.log``
    (:func:`report_progress`), whatever the launcher: Hydra calls ``on_job_end`` where the job
    ran (a joblib worker too); the fused launcher reports its jobs as their packs finish."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "start": time.time(),
            "total": _total_jobs(config),
            "done_before": finished_jobs(sweep_dir),
        }
        (sweep_dir / PROGRESS_STATE).write_text(json.dumps(state))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        prepared = job_return.status == JobStatus.COMPLETED and job_return.return_value is None
        if prepared:  # a job the fused launcher prepared, to train in a pack: reported then
            return
        run_dir = Path(config.hydra.runtime.output_dir)
        try:
            result = json.loads((run_dir / METRICS_FILE).read_text())
        except (OSError, ValueError):
            result = {"status": "failed"}
        report_progress(Path(config.hydra.sweep.dir), run_dir, result)
