"""Fake sweep jobs for the analysis tests: job directories as a real sweep leaves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rnnlab import metrics as M
from rnnlab.config.hydra_setup import job_name, unnamed_keys


def write_job(
    sweep_dir: Path,
    num: int,
    overrides: list[str],
    status: str | None = "ok",
    test: float | None = None,
    val: float | None = None,
    replicas: list[dict] | None = None,
    **extra: Any,
) -> Path:
    """A job directory as a sweep leaves it: named ``<num>_<overrides>`` as Hydra names it,
    with ``.hydra/overrides.yaml`` and a metrics.json holding ``status``, the test and best
    validation MSE (``test``, ``val``), a run's record (epochs, fit time, parameters), the
    config a job records (its seed, cell and loss mode) and ``extra``. ``status=None``: no
    metrics.json (a job still running, or killed); ``replicas``: per-network records
    ``{seed, status, test, val}`` of a replicas job."""
    job = sweep_dir / f"{num}{job_name(overrides, unnamed_keys())}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if status is None:
        return job
    given = dict(o.split("=", 1) for o in overrides)
    config = {"seed": int(given.get("seed", 0)), "model": {"cell": given.get("model", "scratch")}}
    config["model"]["loss"] = "last"
    record = dict.fromkeys(M.FINAL_METRICS)
    record.update({M.TEST_MSE: test, M.VAL_MSE_BEST: val, M.PERSISTENCE_MSE: 5e-3})
    record.update(status=status, epochs=3, fit_seconds=1.5, params=1218, config=config)
    if replicas is not None:
        reps = []
        for r in replicas:
            rep = dict.fromkeys(M.FINAL_METRICS)
            rep.update({M.TEST_MSE: r.get("test"), M.VAL_MSE_BEST: r.get("val")})
            rep.update(seed=r["seed"], status=r.get("status", "ok"), diagnostics={})
            reps.append(rep)
        finished = [r["test"] for r in replicas if r.get("status", "ok") == "ok"]
        record[M.TEST_MSE] = float(np.mean(finished)) if finished else None
        record.update(replicas=reps, seeds=[r["seed"] for r in replicas])
    record.update(extra)
    (job / M.METRICS_FILE).write_text(json.dumps(record))
    return job


def trained_run(run_dir: Path, cfg: Any, overrides: tuple[str, ...]) -> dict[str, Any]:
    """A finished run directory as train.py leaves it, ``.hydra/`` record included: ``cfg``
    (composed from ``overrides``) trained and tested in ``run_dir``; returns its record."""
    from omegaconf import OmegaConf

    from rnnlab.training import experiment

    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / ".hydra" / "overrides.yaml")
    return experiment.train_and_test(cfg, run_dir)
