"""A sweep's jobs, read back from disk: the model that summary.csv/.md (rnnlab.analysis.summary) and
summary.png (rnnlab.analysis.summary_plot) are two views of.

Why from disk: jobs run in other processes (joblib, submitit) or crash, and Hydra skips
``on_multirun_end`` after a failed job, so each job's ``metrics.json`` and
``.hydra/overrides.yaml`` are the only records every launcher leaves.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rnnlab import metrics as M

#: Status order in tables: finished jobs first. ``missing``: a job directory without a readable
#: ``metrics.json`` (still running, killed, or crashed before writing it).
STATUSES = ("ok", "diverged", "failed", "missing")
#: Ranking key: the sweep's objective. Test numbers are reported, never used to choose.
RANK_BY = M.VAL_MSE_BEST
#: A numeric factor with more distinct values than this comes from a search (Optuna), not a grid.
MANY_VALUES = 6


@dataclass
class Job:
    """One job directory of a sweep, read back from disk."""

    num: int
    path: Path
    overrides: dict[str, str]
    status: str
    record: dict[str, Any] = field(default_factory=dict)  # metrics.json, {} when missing
    error: str | None = None
    multirun: bool = True  # started by a -m sweep (Hydra's mode in .hydra/hydra.yaml)

    def metric(self, name: str) -> float | None:
        value = self.record.get(name)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def setting(self, dotted: str, override: str | None = None) -> Any:
        """A config value (``model.loss``) from metrics.json, else from the overrides."""
        node: Any = self.record.get("config")
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            node = self.overrides.get(override or dotted)
        return node

    @property
    def cell(self) -> str:
        return str(self.setting("model.cell", override="model") or "?")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _parse_overrides(lines: Iterable[str], excluded: Iterable[str]) -> dict[str, str]:
    """``["model=torch", "+trainer.x=1"]`` -> ``{"model": "torch", "trainer.x": "1"}``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(lines))
    out = {}
    for override in parsed:
        key = override.key_or_group + (f"@{override.package}" if override.package else "")
        if key in excluded or override.is_delete():
            continue
        out[key] = override.get_value_element_as_str()
    return out


def read_job(path: Path, fallback_num: int) -> Job:
    """Read one job directory; never raises for a missing or damaged file."""
    hydra_cfg = (_read_yaml(path / ".hydra" / "hydra.yaml") or {}).get("hydra", {})
    job_cfg = hydra_cfg.get("job", {}) if isinstance(hydra_cfg, dict) else {}
    excluded = job_cfg.get("config", {}).get("override_dirname", {}).get("exclude_keys")
    if not excluded or not isinstance(excluded, list):  # hydra.yaml keeps "${rnnlab...:}"
        from rnnlab.config.hydra_setup import unnamed_keys

        excluded = unnamed_keys()
    match = re.match(r"(\d+)_", path.name)
    num = job_cfg.get("num")  # a single run's is "???" (missing): then from its name
    if not isinstance(num, int):
        num = int(match.group(1)) if match else fallback_num
    multirun = hydra_cfg.get("mode", "MULTIRUN") == "MULTIRUN" if hydra_cfg else True
    lines = _read_yaml(path / ".hydra" / "overrides.yaml") or []
    try:
        overrides = _parse_overrides(lines, excluded)
    except Exception:  # a hand-edited or foreign file: keep the job, lose its overrides
        overrides = {}

    try:
        record = json.loads((path / M.METRICS_FILE).read_text())
    except FileNotFoundError:
        error = f"no {M.METRICS_FILE}"
        return Job(num, path, overrides, "missing", error=error, multirun=multirun)
    except (OSError, ValueError) as err:
        error = f"unreadable {M.METRICS_FILE}: {err}"
        return Job(num, path, overrides, "missing", error=error, multirun=multirun)
    if not isinstance(record, dict):  # valid JSON but no record: a damaged or foreign file
        error = f"unreadable {M.METRICS_FILE}: a JSON {type(record).__name__}, not an object"
        return Job(num, path, overrides, "missing", error=error, multirun=multirun)
    status = record.get("status") if record.get("status") in STATUSES else "failed"
    return Job(num, path, overrides, status, record, record.get("error"), multirun)


def is_job_dir(path: Path) -> bool:
    """A job's (or a single run's) directory: Hydra's ``.hydra/`` record or a ``metrics.json``."""
    return path.is_dir() and ((path / ".hydra").is_dir() or (path / M.METRICS_FILE).exists())


def collect(sweep_dir: Path) -> list[Job]:
    """Every job directory directly under ``sweep_dir``, in job-number order."""
    dirs = sorted(p for p in Path(sweep_dir).iterdir() if is_job_dir(p))
    return sorted((read_job(p, i) for i, p in enumerate(dirs)), key=lambda j: (j.num, j.path))


def not_a_jobs_dir(path: Path) -> str | None:
    """Why the commands (``python -m rnnlab.sweep``, ``python -m rnnlab.report``) cannot read
    jobs from ``path``, in one line that says what to give instead; None when they can."""
    where = "a sweep directory, outputs/multirun/<date>/<time>"
    if not path.exists():
        return f"{path} does not exist; give {where}"
    if not path.is_dir():
        return f"{path} is a file, not a directory; give {where}"
    try:
        found = any(is_job_dir(p) for p in path.iterdir())
    except OSError as err:
        return f"cannot read {path}: {err.strerror}"
    if found:
        return None
    if is_job_dir(path):
        return (
            f"{path} is the directory of one run or job, not of a sweep; give the directory "
            f"that holds the jobs, {where}"
        )
    return f"{path} holds no job directories (ones with .hydra/ or {M.METRICS_FILE}); give {where}"


def override_keys(jobs: list[Job]) -> list[str]:
    return list(dict.fromkeys(k for job in jobs for k in job.overrides))


def swept_factors(jobs: list[Job]) -> list[str]:
    """Override keys that take more than one value across the jobs."""
    return [k for k in override_keys(jobs) if len({job.overrides.get(k) for job in jobs}) > 1]


def ranked(jobs: list[Job]) -> list[Job]:
    """Best first: ok jobs by the objective, then diverged, failed and missing ones."""

    def key(job: Job) -> tuple:
        value = job.metric(RANK_BY)
        return (STATUSES.index(job.status), value is None, value or 0.0, job.num)

    return sorted(jobs, key=key)


#: The baselines a job's test MSE is shown against: the task's naive one first (persistence for
#: a forecast, the mean on the adding problem), then least squares on the window.
NAIVE_BASELINES = ((M.PERSISTENCE_MSE, "persistence"), (M.MEAN_MSE, "mean"))
BASELINES = (*NAIVE_BASELINES, (M.LINEAR_MSE, "linear"))


def present_baselines(
    jobs: list[Job], table: tuple[tuple[str, str], ...] = BASELINES
) -> list[tuple[str, str]]:
    """The ``(metric, name)`` of each baseline of ``table`` that some job has."""
    return [(m, name) for m, name in table if any(j.metric(m) is not None for j in jobs)]
