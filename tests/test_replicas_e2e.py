"""``replicas=R`` end to end, with real ``train.py`` processes: each replica of a job ends as its
own run of its seed would, through a SIGKILL and resume, in sweeps (basic, joblib, Optuna), and
as an ordinary Forecaster extracted from the job's checkpoint."""

from __future__ import annotations

import json
import math
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import run_train, signal_after_first_checkpoint

from rnnlab import metrics as M
from rnnlab.config import choices

pytestmark = pytest.mark.slow

SEED, R = 10, 3
SEEDS = [SEED + r for r in range(R)]
COMMON = ("trainer.deterministic=true", "trainer.max_epochs=3", "logger.figures=false")
#: What each replica must share with its own run (relative 1e-3: the batched matmuls of concat
#: and torch sum in another order than one network's, about 2e-6 apart; scratch is exact).
EQUAL = (
    M.VAL_MSE_BEST,
    M.TEST_MSE,
    M.VAL_MSE,
    M.TEST_MAE,
    M.TEST_ROLLOUT_MSE,
    M.LINEAR_MSE,
)


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / M.METRICS_FILE).read_text())


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if (p / M.METRICS_FILE).is_file())


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


# -- every process of this file, launched at once ----------------------------------------------

# 8000 points: epochs long enough for the kill to land mid-training (as tests/test_resume.py).
RESUME_ARGS = (
    f"replicas={R}",
    "data.n_points=8000",
    "trainer.max_epochs=4",
    "trainer.deterministic=true",
    "seed=3",
    "logger.figures=false",
)
SWEEP = ("model=scratch,torch", "replicas=2", "trainer.max_epochs=2", "logger.figures=false")
OPTUNA = (
    "hparams_search=optuna",
    "hydra.sweeper.n_trials=2",  # 2 trials (1 would leave no minimum to check), 1 epoch
    "replicas=2",
    "trainer.max_epochs=1",
    "logger.figures=false",
)


def kill_after_first_checkpoint(run_dir: Path) -> subprocess.CompletedProcess:
    """Start the resume test's job, SIGKILL it once its first epoch checkpoint exists."""
    return signal_after_first_checkpoint(run_dir, signal.SIGKILL, RESUME_ARGS)


def kill_then_resume(run_dir: Path) -> tuple[subprocess.CompletedProcess, bool, Any]:
    """The killed process, whether metrics.json existed after the kill, the resumed process."""
    killed = kill_after_first_checkpoint(run_dir)
    return killed, (run_dir / M.METRICS_FILE).exists(), run_train(f"resume={run_dir}")


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """Every train.py process the tests below read, started at once, two at a time (each is one
    thread; the machine has two cores), longest first: ``(out dir, {name: future})``. Each
    process costs a Python, torch and Lightning start-up, so runs alone share a sweep."""
    out = tmp_path_factory.mktemp("replicas_e2e")
    cells, seeds = ",".join(choices.VANILLA_CELLS), ",".join(map(str, SEEDS))
    tasks = {
        # 1. the runs of seeds 10, 11, 12 alone: the 9 jobs of one basic sweep (a sweep job is a
        # run of its own: same seed_everything, data and Trainer as `python train.py seed=s`)
        "alone": (run_train, "-m", f"model={cells}", f"seed={seeds}", *COMMON,
                  f"hydra.sweep.dir={out}/alone"),
        "joblib": (run_train, "-m", *SWEEP, "hydra/launcher=joblib",
                   f"hydra.sweep.dir={out}/joblib"),
        "killed": (kill_then_resume, out / "killed"),
        "uninterrupted": (run_train, *RESUME_ARGS, f"hydra.run.dir={out}/uninterrupted"),
        "basic": (run_train, "-m", *SWEEP, f"hydra.sweep.dir={out}/basic"),
        "optuna": (run_train, "-m", *OPTUNA, f"hydra.sweep.dir={out}/optuna"),
        # 1. the replicas=3 seed=10 job of each cell: a single run each
        **{
            cell: (run_train, f"model={cell}", f"replicas={R}", f"seed={SEED}", *COMMON,
                   f"hydra.run.dir={out}/{cell}")
            for cell in choices.VANILLA_CELLS
        },
    }  # fmt: skip
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {name: pool.submit(fn, *args) for name, (fn, *args) in tasks.items()}
    yield out, futures
    pool.shutdown(wait=True, cancel_futures=True)


def finished(launched, name: str) -> Path:
    """Wait for the process ``name``; its run or sweep directory, once it exited 0."""
    out, futures = launched
    proc = futures[name].result()
    assert proc.returncode == 0, f"{name}:\n{proc.stderr[-3000:]}"
    return out / name


# -- 1. each replica equals its own run ------------------------------------------------------


@pytest.fixture(scope="module")
def equivalence(launched) -> dict[str, tuple[Path, dict[int, dict]]]:
    """For each cell: the replicas=3 seed=10 job's directory, and the records of the runs of
    seeds 10, 11 and 12 alone by seed."""
    alone: dict[str, dict[int, dict]] = {cell: {} for cell in choices.VANILLA_CELLS}
    for job in job_dirs(finished(launched, "alone")):
        record = metrics(job)
        alone[record["config"]["model"]["cell"]][record["config"]["seed"]] = record
    return {cell: (finished(launched, cell), alone[cell]) for cell in choices.VANILLA_CELLS}


@pytest.mark.parametrize("cell", choices.VANILLA_CELLS)
def test_each_replica_ends_as_its_own_run_of_its_seed(equivalence, cell):
    run_dir, alone = equivalence[cell]
    job = metrics(run_dir)
    assert job["status"] == "ok" and job["seeds"] == SEEDS
    assert sorted(alone) == SEEDS and all(r["status"] == "ok" for r in alone.values())
    records = job["replicas"]
    assert [rec["seed"] for rec in records] == SEEDS
    assert [rec["status"] for rec in records] == ["ok"] * R
    worst = {}
    for name in EQUAL:
        worst[name] = max(rel(rec[name], alone[rec["seed"]][name]) for rec in records)
    print(f"\n{cell}: largest relative difference replica vs alone: {max(worst.values()):.3g}")
    for name, diff in worst.items():
        print(f"  {name}: {diff:.3g}")
    for rec in records:
        for name in EQUAL:
            assert rec[name] == pytest.approx(alone[rec["seed"]][name], rel=1e-3, abs=0), (
                rec["seed"],
                name,
            )
    assert job["epochs"] == alone[SEED]["epochs"] == 3
    assert job["steps"] == alone[SEED]["steps"]  # same number of batches as one run


@pytest.mark.parametrize("cell", choices.VANILLA_CELLS)
def test_top_level_metrics_are_the_replicas_mean(equivalence, cell):
    job = metrics(equivalence[cell][0])
    for name in (M.TEST_MSE, M.VAL_MSE_BEST):
        values = [rec[name] for rec in job["replicas"]]
        assert job[name] == pytest.approx(sum(values) / R, rel=1e-12, abs=0), name
        spread = job["replica_spread"][name]
        assert spread["n"] == R and spread["mean"] == pytest.approx(job[name], rel=1e-12)
        assert spread["ci_low"] <= spread["mean"] <= spread["ci_high"]
    assert job["replicas_finished"] == R


# -- 5. a replica extracted from the checkpoint is an ordinary Forecaster -----------------------


@pytest.mark.parametrize("cell", choices.VANILLA_CELLS)
def test_a_replica_extracted_from_the_last_checkpoint_scores_its_test_mse(equivalence, cell):
    from omegaconf import OmegaConf

    from rnnlab.models.forecaster import Forecaster
    from rnnlab.models.replicas import ReplicaForecaster
    from rnnlab.training.experiment import build_datamodule

    run_dir = equivalence[cell][0]
    job = metrics(run_dir)
    module = ReplicaForecaster.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    worst = 0.0
    for r, record in enumerate(job["replicas"]):
        model = module.replica(r)
        assert type(model) is Forecaster
        cfg = OmegaConf.create(job["config"])
        cfg.replicas, cfg.seed = 1, SEED + r
        dm = build_datamodule(cfg)
        dm.setup("test")
        x, y = dm.windows["test"]
        with torch.no_grad():
            pred = model(x, last_only=True)[:, -1]
        mse = torch.mean((pred.double() - y[:, -1].double()) ** 2).item()
        worst = max(worst, rel(mse, record[M.TEST_MSE]))
        assert mse == pytest.approx(record[M.TEST_MSE], rel=1e-5, abs=0), r
    print(f"\n{cell}: extracted replicas' test MSE vs record: largest relative diff {worst:.3g}")


# -- 2. SIGKILL and resume --------------------------------------------------------------------

EXACT_REPLICA = (M.VAL_MSE_BEST, M.VAL_MSE, M.TEST_MSE, M.TEST_MAE, M.TEST_ROLLOUT_MSE)


def test_a_killed_replicas_job_resumes_exactly(launched):
    whole = finished(launched, "uninterrupted")
    out, futures = launched
    killed = out / "killed"
    kill_proc, had_metrics, resumed = futures["killed"].result()
    assert kill_proc.returncode == -signal.SIGKILL
    assert not had_metrics  # killed before it finished
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got, want = metrics(killed), metrics(whole)
    assert got["status"] == want["status"] == "ok"
    assert got["resumed_after_epochs"] is not None and got["resumed_after_epochs"] < 4
    assert (got["epochs"], got["steps"]) == (want["epochs"], want["steps"]) == (4, want["steps"])
    assert [r["seed"] for r in got["replicas"]] == [3, 4, 5]

    def exact(job):
        return [{k: rec[k] for k in ("seed", "status", *EXACT_REPLICA)} for rec in job["replicas"]]

    print(
        f"\nkilled after epoch {got['resumed_after_epochs']}, resumed: {exact(got) == exact(want)}"
    )
    assert exact(got) == exact(want)
    assert {k: got[k] for k in EXACT_REPLICA} == {k: want[k] for k in EXACT_REPLICA}


# -- 3./4. sweeps of replicas jobs -------------------------------------------------------------


@pytest.fixture(scope="module")
def sweeps(launched) -> dict[str, Path]:
    """A basic, a joblib (2 jobs, 2 workers) and an Optuna sweep of replicas jobs."""
    return {name: finished(launched, name) for name in ("basic", "joblib", "optuna")}


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_every_sweep_job_trains_its_replicas_and_the_summary_lists_each_job(sweeps, launcher):
    import csv

    sweep_dir = sweeps[launcher]
    jobs = job_dirs(sweep_dir)
    assert len(jobs) == 2
    cells = set()
    for job in jobs:
        record = metrics(job)
        assert record["status"] == "ok", record.get("error")
        assert [r["status"] for r in record["replicas"]] == ["ok", "ok"]
        assert [r["seed"] for r in record["replicas"]] == record["seeds"] == [0, 1]
        cells.add(record["config"]["model"]["cell"])
    assert cells == {"scratch", "torch"}
    if launcher == "joblib":
        launcher_cfg = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]
        assert "joblib" in launcher_cfg["launcher"]["_target_"]
    with (sweep_dir / "summary.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2
    assert {row["dir"] for row in table} == {job.name for job in jobs}
    assert all(row["status"] == "ok" for row in table)


def test_optuna_minimises_the_replicas_mean_val_mse_best(sweeps):
    sweep_dir = sweeps["optuna"]
    jobs = [metrics(job) for job in job_dirs(sweep_dir)]
    assert len(jobs) == 2
    objectives = []
    for job in jobs:
        assert job["status"] == "ok" and len(job["replicas"]) == 2
        best = [r[M.VAL_MSE_BEST] for r in job["replicas"] if r["status"] == "ok"]
        assert job[M.VAL_MSE_BEST] == pytest.approx(sum(best) / len(best), rel=1e-12, abs=0)
        objectives.append(job[M.VAL_MSE_BEST])
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    print(f"\noptuna best_value {result['best_value']!r}, jobs' val/mse_best {objectives}")
    assert math.isfinite(result["best_value"])
    assert result["best_value"] == pytest.approx(min(objectives), rel=1e-12, abs=0)
