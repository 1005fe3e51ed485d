"""A job's record, ``metrics.json``: each network's, the job's from its networks', the record
of a crashed sweep job, and the summary a run prints when it ends.

A network's record (:func:`network_record`) holds its seed, its status, its final metrics
(rnnlab.metrics.FINAL_METRICS) and its diagnostics. A job's results (:func:`job_results`) are
its one network's metrics and diagnostics at the top level; for a job of several networks
(``replicas=R``), each metric's mean over the networks that finished at the top level, its
spread, and each network's record under ``replicas``.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from traceback import format_exception
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rnnlab import metrics as M
from rnnlab.analysis import stats
from rnnlab.analysis.text import fmt as _fmt  # as summary.md and report.md write numbers
from rnnlab.models.network import NetworkEnd

log = logging.getLogger(__name__)


def finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def finite_diagnostics(values: dict[str, Any]) -> dict[str, Any]:
    """Diagnostics as metrics.json holds them: non-finite numbers (in lists too) as null."""
    return {
        k: [finite_or_none(x) for x in v] if isinstance(v, list) else finite_or_none(v)
        for k, v in values.items()
    }


def mean_diagnostics(per_network: list[dict[str, Any]]) -> dict[str, Any]:
    """The networks' diagnostics averaged name by name (lists element by element)."""
    out: dict[str, Any] = {}
    for name in per_network[0] if per_network else ():
        rows = [d[name] for d in per_network if d.get(name) is not None]
        if not rows:  # no network has it: every one diverged before it was measured
            out[name] = None
            continue
        arr = np.array(
            [
                [np.nan if x is None else x for x in (r if isinstance(r, list) else [r])]
                for r in rows
            ],
            dtype=float,
        )
        with warnings.catch_warnings():  # an all-NaN column: no network has it, so null
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(arr, axis=0)
        out[name] = (
            [finite_or_none(x) for x in mean]
            if isinstance(rows[0], list)
            else finite_or_none(mean[0])
        )
    return out


def network_record(
    seed: int,
    job_status: str,
    end: NetworkEnd,
    values: dict[str, Any],
    diagnostics: dict[str, Any],
) -> dict[str, Any]:
    """One network's record: its status (``ok`` when it was tested; ``diverged``, with why and
    when, when its module froze it; else the job's), its ``values`` by the final metrics' names
    and its ``diagnostics``."""
    record: dict[str, Any] = {"seed": seed, "status": job_status}
    if end.tested:
        record["status"] = "ok"
    elif end.diverged is not None:
        record.update(status="diverged", **end.diverged)
    record |= {name: values.get(name) for name in M.FINAL_METRICS}
    record[M.DIAGNOSTICS] = finite_diagnostics(diagnostics)
    return record


def job_results(records: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics.json's results from its networks' records: one network's metrics and
    diagnostics; for several, each final metric's mean over those that finished and its spread
    across them (``replica_spread``: n, mean, std, 95% t-interval of the mean,
    rnnlab.analysis.stats), the diagnostics' means, and each network's record."""
    if len(records) == 1:
        (record,) = records
        return {M.DIAGNOSTICS: record[M.DIAGNOSTICS]} | {
            name: record[name] for name in M.FINAL_METRICS
        }
    done = [rec for rec in records if rec["status"] == "ok"] or records
    spread = {name: stats.spread([rec[name] for rec in done]) for name in M.FINAL_METRICS}
    # the top level: each metric's mean over the finished networks, as in its spread
    means = {name: finite_or_none(s["mean"]) if s["n"] else None for name, s in spread.items()}
    return {
        **means,
        M.DIAGNOSTICS: mean_diagnostics([rec[M.DIAGNOSTICS] for rec in done]),
        "replicas": records,
        "replica_spread": spread,
        "replicas_finished": sum(rec["status"] == "ok" for rec in records),
    }


def job_record(
    outcome: dict[str, Any], records: list[dict[str, Any]], **run: Any
) -> dict[str, Any]:
    """metrics.json: the job's status and why it stopped (``outcome``), the seeds of a job of
    several networks, the results (:func:`job_results`), then ``run``: epochs, times, config."""
    record: dict[str, Any] = {"status": outcome["status"]}
    if len(records) > 1:
        record["seeds"] = [rec["seed"] for rec in records]
    return record | outcome | job_results(records) | run


def write_metrics(run_dir: Path, result: dict[str, Any]) -> Path:
    path = Path(run_dir) / M.METRICS_FILE
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


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


def objective(result: dict[str, Any]) -> float:
    """What a sweeper minimises for a job: its ``val/mse_best``, infinity unless it finished."""
    best = result.get(M.VAL_MSE_BEST)
    return best if best is not None and result["status"] == "ok" else math.inf


def finished_run(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The record of a resumed run that already trained all its epochs and was tested, else
    None: resuming it again changes nothing (ask for more with ``trainer.max_epochs``)."""
    if cfg.resume is None:
        return None
    try:
        record = json.loads((Path(run_dir) / M.METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    # a resumed sweep also keeps its diverged jobs: resuming one would diverge again
    in_sweep = Path(cfg.resume).resolve() == Path(run_dir).resolve().parent
    if in_sweep and record.get("status") == "diverged":
        return record
    done = record.get("epochs") or 0
    return record if record.get("status") == "ok" and done >= cfg.trainer.max_epochs else None
