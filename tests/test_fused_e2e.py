"""``hydra/launcher=fused`` end to end through real processes: every network of a fused sweep
against the same sweep run job by job; a fused and a per-job sweep killed (SIGKILL) at a
random moment and resumed with ``-m resume=<sweep dir>``, against the same sweep
uninterrupted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnlab import metrics as M
from rnnlab.bench.fused import networks  # every network's record, by (job directory, seed)
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.replicas import ReplicaForecaster
from tests.conftest import ROOT, run_train

pytestmark = pytest.mark.slow

#: What each network is compared on, and how close (trainer.deterministic=true).
COMPARED = (M.VAL_MSE_BEST, M.TEST_MSE, M.TEST_ROLLOUT_MSE)
REL = 1e-5

SMALL = (
    "data.n_points=300",
    "model.hidden_size=8",
    "trainer.deterministic=true",
    "logger.figures=false",
)
#: Everything a pack's networks may differ in, with replicas; lr 1000 makes some diverge.
SWEEP = (
    "model.lr=0.01,1000",
    "model.nonlinearity=tanh,relu",
    "trainer.gradient_clip_val=null,1",
    "model.init=torch,identity",
    "model.loss=last,every",
    "model.weight_decay=0,0.001",
    "replicas=3",
    "trainer.max_epochs=3",
)
PER_JOB = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")


def assert_same_networks(got: Path, want: Path, rel: float = REL) -> None:
    mine, theirs = networks(got), networks(want)
    assert mine.keys() == theirs.keys() and mine
    for key, net in theirs.items():
        assert mine[key]["status"] == net["status"], key
        for metric in COMPARED:
            a, b = mine[key].get(metric), net.get(metric)
            assert (a is None) == (b is None), (key, metric, a, b)
            if b is not None:
                assert a == pytest.approx(b, rel=rel, abs=1e-12, nan_ok=True), (key, metric)


def sweep(sweep_dir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = run_train("-m", *args, f"hydra.sweep.dir={sweep_dir}", timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_every_network_of_a_fused_sweep_equals_its_own_job(tmp_path):
    fused, alone = tmp_path / "fused", tmp_path / "alone"
    proc = sweep(fused, *SWEEP, *SMALL, "hydra/launcher=fused")
    sweep(alone, *SWEEP, *SMALL, *PER_JOB)
    assert_same_networks(fused, alone)
    nets = networks(fused)
    assert len(nets) == 64 * 3
    diverged = [k for k, n in nets.items() if n["status"] == "diverged"]
    assert 0 < len(diverged) < len(nets)  # some networks of a pack diverged, the others went on
    assert "64 jobs in 1 packs of [192] networks" in proc.stderr + proc.stdout

    # each job's directory as a job run alone writes it
    for job in sorted(alone.glob("*/metrics.json"))[:8]:
        name = job.parent.name
        mine, theirs = (
            json.loads((fused / name / M.METRICS_FILE).read_text()),
            json.loads(job.read_text()),
        )
        assert mine.keys() == theirs.keys()
        for part in (".hydra/config.yaml", ".hydra/overrides.yaml", "csv/metrics.csv", "train.log"):
            assert (fused / name / part).is_file(), part
        assert len(list((fused / name / "tb").glob("replica_*"))) == 3
        rows = (fused / name / "csv/metrics.csv").read_text().splitlines()
        assert rows[0] == (job.parent / "csv/metrics.csv").read_text().splitlines()[0]
    assert len((fused / "sweep.log").read_text().splitlines()) == 64


def test_a_fused_jobs_best_checkpoint_loads_as_the_module_it_would_have_written(tmp_path):
    sweep(tmp_path, "replicas=1,2", "trainer.max_epochs=2", *SMALL, "hydra/launcher=fused")
    for job in sorted(tmp_path.glob("*/metrics.json")):
        record = json.loads(job.read_text())
        cls = ReplicaForecaster if record["config"]["replicas"] > 1 else Forecaster
        model = cls.load_from_checkpoint(record["best_checkpoint"], map_location="cpu")
        assert isinstance(model, cls)
        if cls is ReplicaForecaster:
            assert model.seeds == record["seeds"]
            assert model.best_val_mse.tolist() == pytest.approx(
                [r[M.VAL_MSE_BEST] for r in record["replicas"]], rel=1e-6
            )
        x = torch.zeros(*([2] if cls is ReplicaForecaster else []), 3, 4, 2)
        assert torch.isfinite(model(x)).all()


def kill_at_random_moment(sweep_dir: Path, args: tuple[str, ...], marker: str) -> None:
    """Start the sweep; once ``marker`` (a glob in the sweep directory) exists, SIGKILL its
    process group after a random delay, before it ends."""
    seed = int(time.time())
    delay = random.Random(seed).uniform(0.0, 1.0)
    print(f"SIGKILL {delay:.2f} s after {marker} exists (random seed {seed})")
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not list(sweep_dir.glob(marker)):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended too soon"
        time.sleep(0.02)
    time.sleep(delay)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize(
    "launcher",
    [
        ("hydra/launcher=fused", "hydra.launcher.max_networks=4"),
        ("hydra/launcher=basic",),
    ],
    ids=["fused", "basic"],
)
def test_a_sweep_killed_at_a_random_moment_resumes_to_the_uninterrupted_result(tmp_path, launcher):
    args = (
        "seed=0,10",
        "model.lr=0.01,0.003",
        "replicas=2",
        "trainer.max_epochs=40",
        *SMALL,
        *launcher,
    )
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    sweep(whole, *args)
    fused = launcher[0].endswith("fused")
    marker = ".packs/*/checkpoints/last.ckpt" if fused else "*/checkpoints/last.ckpt"
    kill_at_random_moment(killed, args, marker)
    assert len(networks(killed)) < len(networks(whole))  # killed before it finished
    proc = sweep(killed, f"resume={killed}")
    assert_same_networks(killed, whole, rel=1e-6)
    assert "resume" in (killed / "multirun.yaml").read_text()
    # resumed again: every job is kept as it is
    before = {p: p.stat().st_mtime_ns for p in killed.glob("*/metrics.json")}
    proc = sweep(killed, f"resume={killed}")
    assert {p: p.stat().st_mtime_ns for p in killed.glob("*/metrics.json")} == before
    assert proc.stdout.count("already finished") == 4


def test_an_optuna_search_cannot_be_resumed_and_says_so(tmp_path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides: {task: [], hydra: []}\n"
        "  sweeper: {_target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper}\n"
    )
    proc = run_train("-m", f"resume={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: resume={tmp_path} cannot resume this sweep: its sweeper (OptunaSweeper) chooses "
        "each trial from the ones before and does not save its state; start it again"
    ]


def test_packs_side_by_side_and_as_submitit_jobs_give_the_same_networks(tmp_path):
    args = ("model=scratch,torch", "replicas=2", "trainer.max_epochs=2", *SMALL)
    here, side, submitted = tmp_path / "here", tmp_path / "side", tmp_path / "submitit"
    sweep(here, *args, "hydra/launcher=fused")
    sweep(side, *args, "hydra/launcher=fused", "hydra.launcher.n_jobs=2")
    proc = sweep(
        submitted,
        *args,
        "hydra/launcher=fused",
        "hydra.launcher.executor=submitit",
        "hydra.launcher.submitit.cluster=local",
        "hydra.launcher.submitit.timeout_min=10",
    )
    assert "2 jobs in 2 packs" in proc.stderr + proc.stdout  # one pack per cell
    assert list((submitted / ".submitit").glob("*/*_log.out"))  # each pack a submitit job
    assert_same_networks(side, here, rel=0)
    assert_same_networks(submitted, here, rel=0)


def test_a_bad_launcher_option_is_one_line(tmp_path):
    proc = run_train(
        "-m", "hydra/launcher=fused", "hydra.launcher.executor=cloud", f"hydra.sweep.dir={tmp_path}"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: hydra.launcher.executor=cloud is not allowed; expected one of: local, submitit"
    ]


def test_an_optuna_search_fuses_each_batch_of_trials(tmp_path):
    proc = sweep(
        tmp_path,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "data.seq_len=4",
        "model.hidden_size=8",
        "trainer.max_epochs=2",
        "logger.figures=false",
        "hydra/launcher=fused",
    )
    assert proc.stdout.count("2 jobs in 1 packs of [2] networks") == 2  # each batch one pack
    best = (tmp_path / "optimization_results.yaml").read_text()
    values = [json.loads(p.read_text())[M.VAL_MSE_BEST] for p in tmp_path.glob("*/metrics.json")]
    assert len(values) == 4 and f"best_value: {min(values)}" in best
