"""The sweep summary on synthetic job directories, the sweep presets, and a crashed job's record."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from helpers import write_job

from rnnlab import internals
from rnnlab import metrics as M
from rnnlab import sweep as sweep_cli
from rnnlab.analysis import summary as sweep


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """Seven jobs over model x data.seq_len: three ok, one diverged, one failed, one missing,
    and one whose metrics.json was cut off mid-write; summarised once."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    write_job(tmp_path, 0, ["model=scratch", "data.seq_len=4", "sweep=quick"], "ok", 2e-4, 3e-4)
    write_job(tmp_path, 1, ["model=scratch", "data.seq_len=8", "sweep=quick"], "ok", 1e-4, 1e-4)
    write_job(tmp_path, 2, ["model=torch", "data.seq_len=4", "sweep=quick"], "ok", 6e-4, 2e-4)
    write_job(
        tmp_path,
        3,
        ["model=torch", "data.seq_len=8", "sweep=quick"],
        "diverged",
        error="loss became nan at epoch 1, step 30",
    )
    write_job(
        tmp_path,
        4,
        ["model=concat", "data.seq_len=4", "sweep=quick"],
        "failed",
        error="ValueError: boom | with a pipe",
    )
    write_job(tmp_path, 5, ["model=concat", "data.seq_len=8", "sweep=quick"], status=None)
    cut = write_job(tmp_path, 6, ["model=concat", "data.seq_len=16", "sweep=quick"], status=None)
    (cut / M.METRICS_FILE).write_text('{"status": "ok", "test/m')
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")  # not a job
    (tmp_path / ".submitit").mkdir()  # not a job either
    sweep.summarize(tmp_path)
    return tmp_path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_csv_has_one_row_per_job_with_overrides_as_columns(sweep_dir):
    rows = read_csv(sweep_dir / "summary.csv")
    assert len(rows) == 7
    header = list(rows[0])
    assert header[:3] == ["job", "model", "data.seq_len"]
    assert "sweep" not in header  # a preset's name is not a job setting
    for column in (*M.FINAL_METRICS, "status", "epochs", "fit_seconds", "params", "error"):
        assert column in header
    by_job = {int(r["job"]): r for r in rows}
    assert (by_job[2]["model"], by_job[2]["data.seq_len"], by_job[2]["status"]) == (
        "torch",
        "4",
        "ok",
    )
    assert float(by_job[2][M.TEST_MSE]) == 6e-4
    assert by_job[3]["status"] == "diverged" and "nan" in by_job[3]["error"]
    assert by_job[4]["status"] == "failed" and by_job[4]["error"].startswith("ValueError: boom")
    assert by_job[5]["status"] == "missing" and by_job[5][M.TEST_MSE] == ""
    assert by_job[6]["status"] == "missing" and "unreadable" in by_job[6]["error"]
    assert by_job[5]["model"] == "concat"  # overrides come from .hydra even without metrics


def test_rows_are_best_first_by_the_objective_then_by_status(sweep_dir):
    rows = read_csv(sweep_dir / "summary.csv")
    # val/mse_best ranks (not test/mse): job 1 (1e-4), job 2 (2e-4), job 0 (3e-4)
    assert [int(r["job"]) for r in rows] == [1, 2, 0, 3, 4, 5, 6]


def test_markdown_shows_best_per_cell_and_each_configuration(sweep_dir):
    md = (sweep_dir / "summary.md").read_text()
    assert "7 jobs: 3 ok, 1 diverged, 1 failed, 2 missing." in md
    assert "| scratch | data.seq_len=8 | 1 | 0/1 (0%) | 0.0001 | 0.0001 | 50x better |" in md
    assert "| torch | data.seq_len=4 | 1 | 0/1 (0%) | 0.0002 | 0.0006 | 8.33x better |" in md
    assert "| concat | (no finished network) | 3 | 0/3 |" in md
    # configurations (groups.csv), best first by val/mse_best; diverged and failed last
    table = md.split("## Configurations, best first")[1].split("![summary]")[0]
    row = "| scratch | 8 | 1 | 1 | 0/1 (0%) | 0.0001 | n/a | 0.0001 | n/a | 0.0001 | 0.0001 |"
    assert row in table
    assert "| torch | 8 | 1 | 0 | 1/1 (100%) | n/a |" in table
    assert " to " not in md.split("## Jobs")[0]  # numeric factors are never binned into ranges
    rows = [line for line in md.split("## Jobs, best first")[1].splitlines() if line[:2] == "| "]
    assert [row.split("|")[1].strip() for row in rows[1:]] == list("1203456")
    assert "ValueError: boom \\| with a pipe" in md  # a pipe would break the table


def test_png_is_a_real_image_for_numeric_and_categorical_sweeps(sweep_dir, tmp_path_factory):
    image = matplotlib.image.imread(sweep_dir / "summary.png")
    assert image.shape[0] > 200 and image.shape[1] > 400
    cells_only = tmp_path_factory.mktemp("cells")
    for num, cell in enumerate(["scratch", "concat", "torch"]):
        write_job(cells_only, num, [f"model={cell}"], "ok", 1e-4 * (num + 1), 1e-4 * (num + 1))
    sweep.summarize(cells_only)
    assert matplotlib.image.imread(cells_only / "summary.png").shape[0] > 100


def test_empty_or_unfinished_sweep_still_gets_a_summary(tmp_path):
    sweep.summarize(tmp_path)
    assert read_csv(tmp_path / "summary.csv") == []
    assert "0 jobs: none yet." in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "summary.png").stat().st_size > 0


def test_cli_rebuilds_the_files(tmp_path, capsys):
    write_job(tmp_path, 0, ["model=torch"], "ok", 1e-4, 1e-4)
    sweep_cli.main([str(tmp_path)])
    names = ("summary.csv", "networks.csv", "groups.csv", "summary.md", "summary.png")
    assert capsys.readouterr().out.split() == [str(tmp_path / name) for name in names]
    assert read_csv(tmp_path / "summary.csv")[0]["model"] == "torch"
    with pytest.raises(SystemExit):
        sweep_cli.main([str(tmp_path / "nope")])


def test_cli_refuses_a_folder_of_single_runs(tmp_path, capsys):
    """outputs/<date>/ holds single runs: summarising it as a sweep would garble the labels."""
    for num, cell in enumerate(("scratch", "torch")):
        job = write_job(tmp_path, num, [f"model={cell}"], "ok", 1e-4, 1e-4)
        (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"mode": "RUN"}}))
    with pytest.raises(SystemExit) as exit_info:
        sweep_cli.main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "single runs, not the jobs of a -m sweep" in err
    assert not (tmp_path / "summary.md").exists()


def job_overrides(compose_cfg, *overrides: str) -> list[list[str]]:
    """The jobs Hydra's BasicSweeper would run for this command line."""
    return list(internals.sweep_job_overrides(compose_cfg(*overrides, hydra=True)))


def test_grid_preset_is_the_full_product_and_the_command_line_wins(compose_cfg):
    jobs = job_overrides(compose_cfg, "sweep=grid")
    assert len(jobs) == 3 * 2 * 3 * 3 * 2
    assert {j[0] for j in jobs} == {"model=scratch", "model=concat", "model=torch"}
    narrowed = job_overrides(compose_cfg, "sweep=grid", "data.seq_len=4", "model=torch")
    assert len(narrowed) == 2 * 3 * 2
    assert all("data.seq_len=4" in j and "model=torch" in j for j in narrowed)


def test_quick_preset_is_small_and_short(compose_cfg):
    assert len(job_overrides(compose_cfg, "sweep=quick")) <= 8
    assert compose_cfg("sweep=quick").trainer.max_epochs <= 5
    assert compose_cfg("sweep=quick", "trainer.max_epochs=7").trainer.max_epochs == 7


def test_sweep_dirs_are_unique_per_start(compose_cfg):
    """Two sweeps started in the same second get different directories (microseconds)."""
    dirs = [compose_cfg(hydra=True).hydra.sweep.dir for _ in range(3)]
    assert len(set(dirs)) == 3
    assert all(d.startswith("outputs/multirun/") for d in dirs)


@pytest.fixture
def hydra_job(tmp_path, compose_cfg):
    """A composed task config and Hydra's job config, as Hydra sets them before a task runs."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    def _job(mode, *overrides: str):
        cfg = compose_cfg(*overrides, hydra=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path)
            cfg.hydra.mode = mode
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # a task gets its config without the hydra node
        return cfg

    yield _job
    HydraConfig.instance().cfg = None


def _crashing_overrides() -> list[str]:
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine where trainer.accelerator=gpu cannot start")
    return ["trainer.accelerator=gpu", "trainer.max_epochs=1"]


def test_crashed_sweep_job_is_recorded_as_failed(hydra_job, tmp_path):
    from hydra.types import RunMode

    from rnnlab.training.experiment import hydra_job as job_task

    cfg = hydra_job(RunMode.MULTIRUN, *_crashing_overrides())
    assert job_task(cfg) == math.inf
    record = json.loads((tmp_path / M.METRICS_FILE).read_text())
    assert record["status"] == "failed"
    assert "gpu" in record["error"] and "Traceback" in record["traceback"]
    assert record["config"]["trainer"]["accelerator"] == "gpu"
    assert all(record[name] is None for name in M.FINAL_METRICS)


def test_crashed_single_run_raises(hydra_job, tmp_path):
    from hydra.types import RunMode

    from rnnlab.training.experiment import hydra_job as job_task

    cfg = hydra_job(RunMode.RUN, *_crashing_overrides())
    with pytest.raises(Exception, match="gpu"):
        job_task(cfg)
    assert not (tmp_path / M.METRICS_FILE).exists()


def test_slurm_launcher_preset_runs_one_task_per_job(compose_cfg):
    """conf/hydra/launcher/slurm.yaml builds Hydra's submitit SLURM launcher (no cluster here)."""
    from hydra.utils import instantiate

    overrides = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=1", "threads=2"]
    cfg = compose_cfg(*overrides, hydra=True)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"  # Hydra imports plugins its own way
    params = launcher.params
    assert (params["nodes"], params["tasks_per_node"]) == (1, 1)
    assert (params["cpus_per_task"], params["gpus_per_node"]) == (2, 1)  # threads, override
    assert params["submitit_folder"].startswith(str(cfg.hydra.sweep.dir))
