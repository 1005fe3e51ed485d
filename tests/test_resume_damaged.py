"""Resuming from damaged files, in-process on a tiny real run: a cut-off or corrupted
``last.ckpt`` is set aside (kept) and the newest intact checkpoint used, with a warning; with no
intact checkpoint, or a damaged ``.hydra/`` record, one line and nothing changed. The end-to-end
version, resumed exactly after a real SIGTERM, is in tests/test_resume.py."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from helpers import trained_run

from rnnlab.config.errors import ConfigError
from rnnlab.config.resume import checkpoint_to_resume, expand_resume

TINY = (
    "data.n_points=200",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "logger.figures=false",
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, compose_cfg):
    """A run directory like train.py leaves it, with best.ckpt and last.ckpt."""
    run_dir = tmp_path_factory.mktemp("finished")
    trained_run(run_dir, compose_cfg(*TINY), TINY)
    return run_dir


@pytest.fixture
def run(finished, tmp_path, compose_cfg):
    """A copy of the finished run, and its config with ``resume=`` set to it."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    return run_dir, compose_cfg(*TINY, f"resume={run_dir}")


def test_a_cut_off_last_checkpoint_is_kept_and_the_best_one_resumed(run, caplog):
    run_dir, cfg = run
    last = run_dir / "checkpoints" / "last.ckpt"
    cut = last.read_bytes()[:5000]
    last.write_bytes(cut)
    with caplog.at_level(logging.WARNING):
        point = checkpoint_to_resume(cfg, run_dir)
    assert point.path == run_dir / "checkpoints" / "best.ckpt" and point.epochs_done >= 1
    assert not last.exists()  # training writes a new one: the damaged one is never overwritten
    assert (run_dir / "checkpoints" / "last.ckpt.unreadable").read_bytes() == cut
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{last} is damaged" in warning and "kept as last.ckpt.unreadable" in warning
    assert f"resuming from {point.path} (after {point.epochs_done} epochs) instead" in warning


@pytest.mark.parametrize("damage", ["garbage", "empty", "not a checkpoint"])
def test_no_intact_checkpoint_is_one_line_and_changes_nothing(run, damage):
    run_dir, cfg = run
    folder = run_dir / "checkpoints"
    for path in folder.glob("*.ckpt"):
        if damage == "garbage":
            path.write_bytes(b"\x80\x04not a zip archive" * 20)
        elif damage == "empty":
            path.write_bytes(b"")
        else:
            torch.save(torch.zeros(3), path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ConfigError) as caught:
        checkpoint_to_resume(cfg, run_dir)
    line = str(caught.value)
    assert "\n" not in line
    assert f"no checkpoint in {folder} can be loaded (damaged: last.ckpt (" in line
    assert "best.ckpt (" in line and "start the run again without resume=" in line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_resume_goes_on_from_best_when_last_is_missing(run):
    run_dir, _ = run
    (run_dir / "checkpoints" / "last.ckpt").unlink()
    assert f'resume="{run_dir}"' in expand_resume([f"resume={run_dir}"])


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("overrides.yaml", "- model=torch\n- [unclosed\n", "overrides.yaml is damaged (Parser"),
        ("overrides.yaml", "model: torch\n", "is damaged (not a list of overrides)"),
        ("config.yaml", "model: {cell: [\n", "config.yaml is damaged ("),
        ("config.yaml", "- 1\n", "config.yaml is damaged (not a mapping); restore it, or move"),
    ],
)
def test_a_damaged_hydra_record_is_one_line(run, name, text, says):
    run_dir, _ = run
    (run_dir / ".hydra" / name).write_text(text)
    with pytest.raises(ConfigError) as caught:
        expand_resume([f"resume={run_dir}"])
    assert "\n" not in str(caught.value) and says in str(caught.value), str(caught.value)


@pytest.mark.parametrize("damage", [b"\x93\x00 not text", b"epoch,step,val/mse\n0,40,1e-"])
def test_a_damaged_csv_log_is_kept_and_a_new_one_started(run, caplog, damage):
    from rnnlab.observe.csv_log import EpochCSVLogger

    run_dir, cfg = run
    log_file = run_dir / "csv" / "metrics.csv"
    log_file.write_bytes(damage)
    with caplog.at_level(logging.WARNING):
        checkpoint_to_resume(cfg, run_dir)
    assert (run_dir / "csv" / "metrics.csv.unreadable").read_bytes() == damage
    assert f"{log_file} is damaged" in caplog.text
    assert EpochCSVLogger(run_dir, resume=True).experiment.rows == {}  # reads back: a new one
