"""Shared fixtures: real Hydra composition of the project's conf/ directory."""

from __future__ import annotations

import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from rnnlab.config import choices, hydra_setup

hydra_setup.register()  # as train.py does before Hydra composes conf/

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class Composer:
    """conf/ composed exactly as train.py composes it: ``compose_cfg(*overrides)`` is a task's
    config; with ``hydra=True`` it keeps Hydra's own node (``cfg.hydra``), as Hydra's callbacks
    get it. Inside ``with compose_cfg.initialized():`` Hydra stays initialised for what needs
    its config loader (``rnnlab.internals.load_job_config``, ``ValidateConfig``)."""

    @staticmethod
    def initialized() -> initialize_config_dir:
        return initialize_config_dir(config_dir=str(CONF), version_base="1.3")

    def __call__(self, *overrides: str, hydra: bool = False):
        from hydra.core.global_hydra import GlobalHydra

        ready = GlobalHydra.instance().is_initialized()  # inside initialized(): compose there
        with nullcontext() if ready else self.initialized():
            return compose("config", overrides=list(overrides), return_hydra_config=hydra)


@pytest.fixture(scope="session")
def compose_cfg() -> Composer:
    """The one way tests compose conf/ (:class:`Composer`); any fixture scope may use it."""
    return Composer()


def run_train(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run train.py in a real subprocess; returns the CompletedProcess."""
    import os
    import subprocess

    full_env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def signal_after_first_checkpoint(
    run_dir: Path, signum: int, args: tuple[str, ...]
) -> subprocess.CompletedProcess:
    """Start ``train.py args``, send ``signum`` once its first epoch checkpoint exists, wait."""
    import os
    import subprocess
    import time

    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    cmd = [sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(cmd, proc.returncode, out.decode(), err.decode())


#: The default runs, by the command line after ``python train.py``: each cell's, and the same
#: with each cell's own initialisation (``model.init=native``, the default before ``torch``).
DEFAULT_RUNS = tuple(
    f"model={cell}{init}" for init in ("", " model.init=native") for cell in choices.VANILLA_CELLS
)


def default_run(command: str, out: Path):
    """``python train.py <command>`` in its own directory under ``out``: (process, run dir)."""
    run_dir = out / command.replace(" ", "_").replace("=", "-")
    return run_train(*command.split(), f"hydra.run.dir={run_dir}"), run_dir


@pytest.fixture(scope="session")
def default_runs(tmp_path_factory):
    """The default runs, made once for the session, two at a time (each is one thread)."""
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path_factory.mktemp("default_runs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = pool.map(lambda command: (command, default_run(command, out)), DEFAULT_RUNS)
        return dict(runs)
