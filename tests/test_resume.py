"""Interrupt real ``train.py`` processes with real signals and resume them: the resumed run ends
with exactly the metrics of an uninterrupted one, in the same directory and TensorBoard run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import run_train
from conftest import signal_after_first_checkpoint as signal_after_checkpoint

pytestmark = pytest.mark.slow

# 8000 points: epochs long enough (about a second) for a signal to land mid-training.
ARGS = ("data.n_points=8000", "trainer.max_epochs=4", "trainer.deterministic=true", "seed=3")
EXACT = ("val/mse_best", "val/mse", "test/mse", "test/mae", "test/rollout_mse", "epochs", "steps")


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    proc = run_train(*ARGS, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def exact(run_dir: Path) -> dict:
    return {k: metrics(run_dir)[k] for k in EXACT}


def signal_after_first_checkpoint(run_dir: Path, signum: int) -> subprocess.CompletedProcess:
    return signal_after_checkpoint(run_dir, signum, ARGS)


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    proc = run_train(f"resume={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_sigterm_stops_at_epoch_end_and_resume_is_exact(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    stopped = signal_after_first_checkpoint(run_dir, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert f"resume with: python train.py resume={run_dir}" in stopped.stdout
    partial = metrics(run_dir)
    assert partial["status"] == "interrupted" and partial["epochs"] < 4  # stopped mid-training
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()

    resumed = resume(run_dir)
    assert f"run directory: {run_dir}" in resumed.stdout
    assert metrics(run_dir)["status"] == "ok"
    assert exact(run_dir) == exact(uninterrupted)
    # it says where it resumed, and the training time counts both segments
    assert f"(resumed after epoch {partial['epochs']})" in resumed.stdout
    assert f"after {partial['epochs']} epochs" in (run_dir / "train.log").read_text()
    assert metrics(run_dir)["resumed_after_epochs"] == partial["epochs"]
    assert metrics(run_dir)["fit_seconds"] > partial["fit_seconds"]
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == overrides  # record kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no other run directory
    events = list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert len({p.name.split(".")[-2] for p in events}) == 2  # both processes' pids, one run


def test_sigint_stops_at_epoch_end_with_a_resume_hint(tmp_path):
    stopped = signal_after_first_checkpoint(tmp_path, signal.SIGINT)
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr[-3000:]
    assert f"resume with: python train.py resume={tmp_path}" in stopped.stdout
    assert metrics(tmp_path)["status"] == "interrupted"
    assert "Traceback" not in stopped.stderr


def test_sigkill_resumes_from_the_last_epoch_checkpoint_exactly(uninterrupted, tmp_path):
    killed = signal_after_first_checkpoint(tmp_path, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "metrics.json").exists()
    resume(tmp_path)
    assert exact(tmp_path) == exact(uninterrupted)


def test_resume_without_a_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    """A run killed during its first epoch has .hydra/ but no checkpoint yet."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("[]\n")
    proc = run_train(f"resume={tmp_path}")
    assert proc.returncode == 2 and "no checkpoint to resume from" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hydra"]  # nothing trained


def test_resume_cannot_swap_the_model(uninterrupted, tmp_path):
    finished = tmp_path / "finished"
    shutil.copytree(uninterrupted, finished)
    before = (finished / "metrics.json").read_text()
    proc = run_train(f"resume={finished}", "model=concat")
    assert proc.returncode == 2 and "cannot change model=concat" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (finished / "metrics.json").read_text() == before


def test_resuming_a_finished_run_changes_nothing(uninterrupted, tmp_path):
    finished = tmp_path / "finished"
    shutil.copytree(uninterrupted, finished)
    before = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    proc = resume(finished)
    assert "already finished: 4 of 4 epochs" in proc.stdout and "nothing changed" in proc.stdout
    after = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    assert after == before  # no re-test, no new events, metrics.json and fit_seconds as they were


def test_a_cut_off_last_checkpoint_resumes_from_the_intact_one_exactly(uninterrupted, tmp_path):
    """SIGTERM, then last.ckpt cut off as a kill while writing it leaves it: the resumed run
    says which checkpoint it used, keeps the damaged file, and ends exactly as an uninterrupted
    one."""
    stopped = signal_after_first_checkpoint(tmp_path, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    cut = last.read_bytes()[: last.stat().st_size // 2]
    last.write_bytes(cut)
    resumed = resume(tmp_path)
    assert f"{last} is damaged" in resumed.stdout and "resuming from " in resumed.stdout
    assert (tmp_path / "checkpoints" / "last.ckpt.unreadable").read_bytes() == cut
    assert exact(tmp_path) == exact(uninterrupted)
