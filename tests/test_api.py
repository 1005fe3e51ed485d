"""The notebook API (rnnlab.api): rnnlab.train is python train.py without a shell (the same
composition, the same one-line refusals as ConfigError, the same metrics bit for bit, a run
directory the command line resumes), twice in one process; load_run and load_sweep read runs and
sweeps back."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
from conftest import run_train
from test_docs import MACHINE_TAILS, console_examples
from test_golden import EXACT, GOLDEN

import rnnlab
from rnnlab import metrics as M


def _line(text: str) -> str:
    """An error line without the part that describes the machine it ran on."""
    for tail in MACHINE_TAILS:
        text = text.split(tail)[0]
    return text


def test_a_refused_config_is_a_config_error_without_torch(tmp_path):
    """A bad config fails before torch is imported (about a second), and writes nothing."""
    code = (
        "import sys, rnnlab\n"
        "try:\n"
        "    rnnlab.train(['model=gpt'])\n"
        "except rnnlab.ConfigError as err:\n"
        "    print(err)\n"
        "assert 'torch' not in sys.modules, 'rnnlab.train imported torch for a bad config'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == (
        "model=gpt is not a known model; expected one of: concat, gru, irnn, lstm, scratch, torch"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, shown", console_examples(), ids=lambda v: v[:40])
def test_train_refuses_what_train_py_refuses_with_its_line(command, shown, tmp_path, monkeypatch):
    """docs/errors.md's examples (each checked against train.py by tests/test_docs.py)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(rnnlab.ConfigError) as refused:
        rnnlab.train(shlex.split(command)[2:])
    assert _line(str(refused.value)) == _line(shown.removeprefix("error: "))
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_train_composes_beside_a_users_own_hydra(tmp_path, monkeypatch):
    """Hydra's compose API refuses to start while another initialisation is alive: train sets
    the user's aside and puts it back, and leaves none behind where there was none."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("answer: 42\n")
    initialize_config_dir(config_dir=str(tmp_path), version_base="1.3")  # no `with`: stays
    try:
        for _ in range(2):
            with pytest.raises(rnnlab.ConfigError, match=r"^model\.lr=-1.0 is not allowed"):
                rnnlab.train(["model.lr=-1"])
            assert compose("mine").answer == 42
    finally:
        GlobalHydra.instance().clear()
    with pytest.raises(rnnlab.ConfigError):
        rnnlab.train(["model.lr=-1"])
    assert not GlobalHydra.instance().is_initialized()


def test_compose_is_train_pys_config(compose_cfg, tmp_path):
    from omegaconf import OmegaConf

    from rnnlab.api import compose

    overrides = ["model=concat", "model.hidden_size=8", "replicas=3"]
    cfg = compose(overrides, run_dir=tmp_path / "run")
    expected = compose_cfg(*overrides)
    cfg_task = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"}
    assert cfg_task == OmegaConf.to_container(expected)
    assert cfg.hydra.runtime.output_dir == str(tmp_path / "run")
    assert list(cfg.hydra.overrides.task) == overrides


def test_overrides_are_a_list():
    with pytest.raises(TypeError, match=r"\['model=concat'\]"):
        rnnlab.train("model=concat")


def test_load_run_refuses_what_holds_no_run(tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "sweep" / "0_seed=1" / ".hydra").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    cases = {
        "nowhere": "does not exist",
        "file": "is a file, not a directory",
        "sweep": "is a sweep directory, not a run's; read it with rnnlab.load_sweep",
        "empty": "holds no finished run",
    }
    for name, why in cases.items():
        with pytest.raises(rnnlab.ConfigError) as refused:
            rnnlab.load_run(tmp_path / name)
        assert why in str(refused.value) and "\n" not in str(refused.value)


def test_load_sweep_refuses_what_holds_no_jobs(tmp_path):
    with pytest.raises(rnnlab.ConfigError, match="does not exist; give a sweep directory"):
        rnnlab.load_sweep(tmp_path / "nowhere")
    with pytest.raises(rnnlab.ConfigError, match="holds no job directories"):
        rnnlab.load_sweep(tmp_path)


def test_load_sweep_numbers_single_runs_by_their_names(tmp_path):
    """Runs that rnnlab.train put in one folder, named as a sweep names its jobs: Hydra's record
    of a single run has no job number ("???"), so the name gives it."""
    from helpers import write_job

    for num, nonlinearity in enumerate(("tanh", "relu")):
        job = write_job(tmp_path, num, [f"model.nonlinearity={nonlinearity}"], test=0.1 + num)
        (job / ".hydra" / "hydra.yaml").write_text("hydra:\n  mode: RUN\n  job:\n    num: ???\n")
    nets = rnnlab.load_sweep(tmp_path)
    assert list(nets["job"]) == [0, 1]
    assert list(nets["model.nonlinearity"]) == ["tanh", "relu"]


def _exact(record: dict) -> dict:
    return {key: record.get(key) for key in EXACT}


def _test_mse_of(run: rnnlab.Run) -> float:
    """The test MSE of the run's model, computed here: the last step of every test window."""
    import torch

    from rnnlab.training.experiment import build_datamodule

    dm = build_datamodule(run.config)
    dm.setup("test")
    errors = []
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            errors.append((run.model(x)[:, -1] - y[:, -1]).double().pow(2).flatten())
    return torch.cat(errors).mean().item()


@pytest.mark.slow
def test_train_gives_the_command_lines_metrics_twice_in_one_process(tmp_path):
    """The default run and the concat cell's, one after the other in this process: each is
    tests/golden/metrics.json's ``python train.py`` run, bit for bit (== on floats)."""
    golden = json.loads(GOLDEN.read_text())
    for overrides, command in (([], "model=scratch"), (["model=concat"], "model=concat")):
        run = rnnlab.train(overrides, run_dir=tmp_path / command)
        assert _exact(run.metrics) == golden[command]
        assert run.metrics == json.loads((run.run_dir / M.METRICS_FILE).read_text())
        assert run.config.model.cell == command.split("=")[1]
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            assert (run.run_dir / ".hydra" / name).is_file()
        assert "config:" in (run.run_dir / "train.log").read_text()  # the job's log, its own
        # the model is the one the run's test scored
        assert _test_mse_of(run) == pytest.approx(run.metrics[M.TEST_MSE], rel=1e-4)
    assert "cell: concat" not in (tmp_path / "model=scratch" / "train.log").read_text()


SMALL = ("data.n_points=200", "model.hidden_size=8")


@pytest.mark.slow
def test_an_api_run_is_a_command_line_run(tmp_path, monkeypatch):
    """Without run_dir a run goes where train.py's would, under the working directory; the
    command line resumes it, and the API resumes it further."""
    monkeypatch.chdir(tmp_path)
    run = rnnlab.train(["trainer.max_epochs=2", *SMALL])
    relative = run.run_dir.relative_to(tmp_path)
    pattern = r"outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-\d{6}_"
    assert re.fullmatch(
        pattern + r"data\.n_points=200,model\.hidden_size=8,trainer\.max_epochs=2", str(relative)
    )
    assert run.metrics["epochs"] == 2 and run.status == "ok"
    proc = run_train(f"resume={run.run_dir}", "trainer.max_epochs=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = rnnlab.load_run(relative)
    assert resumed.metrics["epochs"] == 3 and resumed.metrics["resumed_after_epochs"] == 2
    again = rnnlab.train([f"resume={relative}", "trainer.max_epochs=4"])
    assert again.run_dir.resolve() == run.run_dir.resolve()
    assert again.metrics["epochs"] == 4 and again.metrics["resumed_after_epochs"] == 3


@pytest.mark.slow
def test_load_sweep_reads_a_command_line_sweep(tmp_path):
    """One row per network: a sweep of 2 cells x replicas=2 is 4 networks, each with its
    job's record of it."""
    sweep = tmp_path / "sweep"
    proc = run_train(
        "-m",
        "model=scratch,concat",
        "replicas=2",
        "trainer.max_epochs=1",
        *SMALL,
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    nets = rnnlab.load_sweep(sweep)
    assert len(nets) == 4
    assert sorted(zip(nets["model"], nets["seed"], strict=True)) == [
        ("concat", 0),
        ("concat", 1),
        ("scratch", 0),
        ("scratch", 1),
    ]
    assert set(nets["status"]) == {"ok"}
    for job_dir in sorted(p for p in sweep.iterdir() if p.is_dir()):
        run = rnnlab.load_run(job_dir)
        assert type(run.model).__name__ == "ReplicaForecaster"
        cell = run.config.model.cell
        for replica in run.metrics["replicas"]:
            row = nets[(nets["model"] == cell) & (nets["seed"] == replica["seed"])]
            assert row[M.TEST_MSE].item() == replica[M.TEST_MSE]


@pytest.mark.slow
def test_an_interrupted_run_returns_and_resumes(tmp_path):
    """The kernel's interrupt (SIGINT) once: the run stops at the epoch's end and train returns
    it with status interrupted (the command line exits 130 instead); train(resume=) goes on."""
    import os
    import signal
    import time

    run_dir = tmp_path / "run"
    code = (
        "import rnnlab\n"
        f"overrides = ['trainer.max_epochs=500', *{list(SMALL)!r}]\n"
        f"run = rnnlab.train(overrides, run_dir={str(run_dir)!r})\n"
        "print('STATUS', run.status, run.metrics['epochs'])\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    status, epochs = out.decode().split("STATUS ")[1].split()
    assert status == "interrupted" and 1 <= int(epochs) < 500
    resumed = rnnlab.train([f"resume={run_dir}", f"trainer.max_epochs={int(epochs) + 1}"])
    assert resumed.status == "ok" and resumed.metrics["epochs"] == int(epochs) + 1
