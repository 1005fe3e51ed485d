"""One row per trained network (``networks.csv``): the table every statistic of the analysis
starts from, and the file a reader recomputes the report's claims from.

A *network* is one trained model: a single-seed job is one, a ``replicas=R`` job is R (seeds
``seed .. seed+R-1``, each with its own status and metrics in metrics.json's ``replicas``). Each
row: ``job``, ``seed``, ``status``, ``exploded``, a column per factor, every final metric
(rnnlab.metrics.FINAL_METRICS) and the diagnostics' scalars (``diagnostics/<name>``; one column
per layer for the spectra, ``diagnostics/spectral_radius/0``, ...).

``status`` is the network's outcome as the statistics count it: ``diverged`` also covers a
network that finished with a finite error past :data:`EXPLODED_MULTIPLE` times its task's naive
baseline (``exploded`` True; metrics.json says ``ok``): such a network is no better than a
non-finite one, and counting it as finished would let 3e23 into a mean.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from rnnlab import metrics as M
from rnnlab.analysis.jobs import Job, collect, swept_factors
from rnnlab.analysis.text import as_number
from rnnlab.config import choices

NETWORKS_NAME = "networks.csv"
FINISHED, DIVERGED = "ok", "diverged"
#: A finished network whose ``val/mse_best`` or ``test/mse`` exceeds this multiple of its task's
#: naive baseline (persistence; the mean on the adding problem) counts as diverged. A network that
#: learnt nothing sits at 1-100x (predicting zero on sin/cos: 100x persistence); 1000x is past
#: anything but a loss that blew up.
EXPLODED_MULTIPLE = 1000.0
#: Diagnostics that are one number per network, and those that are one per layer.
DIAGNOSTIC_SCALARS = (M.CLIPPED_FRACTION, M.GRAD_NORM_P50, M.GRAD_NORM_P90)
DIAGNOSTIC_LAYERS = (M.SPECTRAL_RADIUS, M.SIGMA_MAX)


#: Swept keys that choose seeds, never a configuration (a replicas job's networks are seeds).
SEEDS = ("seed", "replicas")


def factors(jobs: list[Job]) -> list[str]:
    """The swept keys that make a configuration: all but :data:`SEEDS` and keys without
    effect on results (:data:`rnnlab.config.choices.NO_EFFECT`: ``logger.*``, ``threads``,
    ...)."""
    return [k for k in swept_factors(jobs) if k not in SEEDS and choices.has_effect(k)]


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.nan


def _seed(job: Job) -> int | None:
    number = as_number(job.setting("seed"))
    return int(number) if number is not None else None


def _factor_value(job: Job, key: str) -> str:
    """The job's override, else its config's value (a job that left the key at its default)."""
    if key in job.overrides:
        return job.overrides[key]
    value = job.setting(key)
    return "" if value is None else str(value)


def diagnostic_columns(record: dict[str, Any]) -> dict[str, float]:
    """A network's diagnostics as scalars: :data:`DIAGNOSTIC_SCALARS`, the share of the gradient
    reaching the window's first step (rnnlab.metrics.first_over_last) and, per layer,
    :data:`DIAGNOSTIC_LAYERS`."""
    diag = record.get(M.DIAGNOSTICS) or {}
    out = {M.diagnostics_tag(name): _finite(diag.get(name)) for name in DIAGNOSTIC_SCALARS}
    norms = diag.get(M.GRAD_NORM_BY_STEP)
    reach = M.first_over_last(norms) if norms and None not in norms else math.nan
    out[M.diagnostics_tag(M.GRAD_FIRST_OVER_LAST)] = _finite(reach)
    for name in DIAGNOSTIC_LAYERS:
        for layer, value in enumerate(diag.get(name) or []):
            out[f"{M.diagnostics_tag(name)}/{layer}"] = _finite(value)
    return out


def exploded(row: dict[str, Any]) -> bool:
    """A finished network whose error passed :data:`EXPLODED_MULTIPLE` times its naive baseline."""
    base = row.get(M.PERSISTENCE_MSE)
    if not (isinstance(base, float) and base > 0):
        base = row.get(M.MEAN_MSE)
    if not (isinstance(base, float) and base > 0):
        return False
    errors = (row.get(M.VAL_MSE_BEST), row.get(M.TEST_MSE))
    return any(isinstance(e, float) and e > EXPLODED_MULTIPLE * base for e in errors)


def networks(jobs: list[Job], keys: list[str]) -> pd.DataFrame:
    """One row per trained network (the module's columns), factors ``keys``. A replicas job
    expands to its replicas; a failed or missing job is one row without metrics."""
    rows = []
    for job in sorted(jobs, key=lambda j: j.num):
        setting = {k: _factor_value(job, k) for k in keys}
        replicas = job.record.get("replicas")
        records = replicas if isinstance(replicas, list) and replicas else [None]
        for rep in records:
            source = rep if rep is not None else job.record
            row: dict[str, Any] = {
                "job": job.num,
                "seed": rep.get("seed") if rep is not None else _seed(job),
                "status": str(rep.get("status", job.status)) if rep is not None else job.status,
                **setting,
                **{m: _finite(source.get(m)) for m in M.FINAL_METRICS},
            }
            row["exploded"] = row["status"] == FINISHED and exploded(row)
            if row["exploded"]:
                row["status"] = DIVERGED
            rows.append({**row, **diagnostic_columns(source)})
    columns = ["job", "seed", "status", "exploded", *keys, *M.FINAL_METRICS]
    extra = list(dict.fromkeys(c for row in rows for c in row if c not in columns))
    nets = pd.DataFrame(rows, columns=[*columns, *extra])
    nets["seed"] = nets["seed"].astype("Int64")
    nets["exploded"] = nets["exploded"].astype(bool)
    for key in keys:
        nets[key] = _typed(nets[key])
    return nets


def _typed(column: pd.Series) -> pd.Series:
    """A factor column as numbers when every value is one (ints when all are whole)."""
    numbers = [as_number(v) for v in column]
    if not numbers or any(n is None for n in numbers):
        return column.astype(object)
    pairs = zip(numbers, column, strict=True)
    if all(float(n).is_integer() and "." not in str(v) and "e" not in str(v) for n, v in pairs):
        return pd.Series([int(n) for n in numbers], index=column.index, dtype="int64")
    return pd.Series(numbers, index=column.index, dtype="float64")


def networks_table(sweep_dir: Path | str) -> pd.DataFrame:
    """The networks of the sweep in ``sweep_dir``, one row each, its factors as columns
    (:func:`factors`): what ``networks.csv`` holds."""
    jobs = collect(Path(sweep_dir))
    return networks(jobs, factors(jobs))


def write_networks(nets: pd.DataFrame, path: Path) -> None:
    nets.to_csv(path, index=False)
