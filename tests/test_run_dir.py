"""A run or sweep directory that cannot be created or written: one line naming it and the
override that chooses another, exit status 2, no traceback; and errors the user caused that
leave a job (a checkpoint none intact, a file in the way inside the run directory) are that one
line too, without Hydra's "Error executing job" above it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import run_train

from rnnlab.config import cli
from rnnlab.config.checks import check_output_dir
from rnnlab.config.errors import ConfigError
from rnnlab.config.hydra_callbacks import InvalidConfig


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a directory\n")
    return path


def test_a_directory_that_can_be_made_is_made(tmp_path):
    check_output_dir(tmp_path / "a" / "b", "hydra.run.dir")
    assert (tmp_path / "a" / "b").is_dir()


@pytest.mark.parametrize("below", ["", "run", "run/deeper"])
def test_a_file_in_the_way_is_named(a_file, below):
    where = a_file / below if below else a_file
    with pytest.raises(ConfigError) as caught:
        check_output_dir(where, "hydra.sweep.dir")
    assert str(caught.value) == (
        f"hydra.sweep.dir={where}: cannot create the directory: {a_file} is a file; choose "
        "another with hydra.sweep.dir=DIR"
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /proc")
def test_a_directory_no_one_can_make_is_refused():
    with pytest.raises(ConfigError, match=r"hydra\.run\.dir=/proc/x: cannot create the directory"):
        check_output_dir("/proc/x", "hydra.run.dir")


def test_an_error_writing_inside_the_run_directory_is_one_line(tmp_path):
    run = tmp_path / "run"
    dirs = [(run, "hydra.run.dir")]
    inside = FileExistsError(17, "File exists", str(run / "tb"))
    assert cli.unwritable_dir_line(inside, dirs) == (
        f"cannot create or write the run directory {run}: a file is in the way ({run / 'tb'}); "
        "choose another with hydra.run.dir=DIR"
    )
    full = OSError(28, "No space left on device", str(run / "checkpoints" / "last.ckpt"))
    assert "No space left on device" in cli.unwritable_dir_line(full, dirs)
    elsewhere = FileNotFoundError(2, "No such file or directory", str(tmp_path / "data.csv"))
    assert cli.unwritable_dir_line(elsewhere, dirs) is None  # not the run's: a bug, re-raised


def test_a_user_error_leaving_a_job_becomes_the_one_line(monkeypatch):
    def task(cfg):
        raise ConfigError("resume=x: no checkpoint in x/checkpoints can be loaded")

    with pytest.raises(InvalidConfig) as caught:
        cli.in_job(task)(None)
    assert caught.value.code == "resume=x: no checkpoint in x/checkpoints can be loaded"

    def bug(cfg):
        raise KeyError("a bug")

    with pytest.raises(KeyError):  # anything else keeps its traceback
        cli.in_job(bug)(None)
    monkeypatch.setattr(cli, "_show_traceback", True)  # the user's own HYDRA_FULL_ERROR=1
    with pytest.raises(ConfigError):
        cli.in_job(task)(None)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ("hydra.run.dir={file}/run",),
        ("hydra.run.dir={file}",),
        ("-m", "hydra.sweep.dir={file}/sweep", "seed=1,2"),
    ]
    + ([("hydra.run.dir=/proc/x",)] if sys.platform == "linux" else []),
)
def test_train_refuses_a_directory_it_cannot_create(a_file, args):
    args = [a.format(file=a_file) for a in args]
    proc = run_train(*args, "trainer.max_epochs=1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create the directory" in lines[0], proc.stderr
    assert "choose another with hydra." in lines[0] and "Traceback" not in proc.stdout


@pytest.mark.slow
def test_a_file_in_the_way_inside_the_run_directory_is_one_line(tmp_path):
    (tmp_path / "tb").write_text("a file where the TensorBoard folder goes\n")
    proc = run_train(f"hydra.run.dir={tmp_path}", "trainer.max_epochs=1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot create or write the run directory {tmp_path}: a file is in the way "
        f"({tmp_path / 'tb'}); choose another with hydra.run.dir=DIR"
    ]
    assert (tmp_path / "train.log").is_file()  # what was written stays


@pytest.mark.slow
def test_resume_with_no_intact_checkpoint_is_one_line(tmp_path):
    proc = run_train(f"hydra.run.dir={tmp_path}", "trainer.max_epochs=1", "data.n_points=200")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for path in (tmp_path / "checkpoints").glob("*.ckpt"):
        path.write_bytes(path.read_bytes()[:100])
    proc = run_train(f"resume={tmp_path}", "trainer.max_epochs=2")
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: resume={tmp_path}: no checkpoint in ") and "damaged" in line
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]
