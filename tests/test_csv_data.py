"""data=csv and data=sunspots: a file's series read, checked, standardised and trained on.

Every class of bad file is refused by the config checks in one line naming the file (and the
column and line where it applies); a real train.py run on a CSV file trains, and its metrics
are checked against an independent computation from the file with numpy.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnlab.config.checks import validate
from rnnlab.config.cli import error_line
from rnnlab.config.errors import ConfigError
from rnnlab.config.series import read_csv, sunspots
from rnnlab.data.tasks import CsvDataModule, SunspotsDataModule, make_windows
from tests.conftest import run_train


def write_series(path: Path, rows: int = 200, seed: int = 0, reverse: bool = False) -> Path:
    """Two noisy channels on different scales, a time column and a text column; in reverse
    time order when ``reverse`` (data.time_column sorts them)."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    table = pd.DataFrame(
        {
            "day": t,
            "a": np.sin(0.3 * t) + 0.1 * rng.standard_normal(rows),
            "b": 50 + 20 * np.cos(0.3 * t) + rng.standard_normal(rows),
            "note": ["x"] * rows,
        }
    )
    (table.iloc[::-1] if reverse else table).to_csv(path, index=False)
    return path


def refusal(compose_cfg, *overrides: str) -> str:
    """The one line the command line prints for these overrides."""
    with pytest.raises(ConfigError) as caught:
        validate(compose_cfg(*overrides))
    line = error_line(caught.value, list(overrides))
    assert line is not None and "\n" not in line
    return line


def test_the_columns_are_every_numeric_one_sorted_by_the_time_column(tmp_path):
    path = write_series(tmp_path / "s.csv", reverse=True)
    found = read_csv(path, None, "day")
    assert found.columns == ("a", "b")  # not the time column, not the text column
    expected = pd.read_csv(path).sort_values("day")[["a", "b"]].to_numpy()
    np.testing.assert_array_equal(found.values, expected)
    assert found.time[:3] == ("0", "1", "2")
    assert read_csv(path, ["b"], "day").columns == ("b",)


def test_dates_sort_the_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("when,v\n2024-03-01,3\n2024-01-01,1\n2024-02-01,2\n")
    assert read_csv(path, None, "when").values[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_each_channel_is_standardised_with_the_train_splits_mean_and_std(tmp_path):
    path = write_series(tmp_path / "s.csv")
    dm = CsvDataModule(path=str(path), columns=None, time_column="day", seq_len=5)
    dm.setup()
    raw = pd.read_csv(path)[["a", "b"]].to_numpy()
    train_end = int(200 * 0.8)
    mean, std = raw[:train_end].mean(0), raw[:train_end].std(0)
    z = torch.from_numpy((raw - mean) / std).float()
    test_inputs, test_targets = make_windows(z[180:], 5)
    torch.testing.assert_close(dm.windows["test"][0], test_inputs)
    torch.testing.assert_close(dm.windows["test"][1], test_targets)
    np.testing.assert_allclose(dm.scale.mean, mean)
    np.testing.assert_allclose(dm.scale.std, std)
    assert dm.model_sizes(dm_config(path)) == (2, 2)
    # the scale is the DataModule's state: saved in every checkpoint, checked on resume
    saved = dm.state_dict()
    dm.load_state_dict(saved)
    changed = json.loads(json.dumps(saved))
    changed["data_scale"]["mean"][0] += 1.0
    with pytest.raises(ConfigError, match="the data changed since the run's checkpoint"):
        dm.load_state_dict(changed)


def dm_config(path: Path):
    from omegaconf import OmegaConf

    return OmegaConf.create({"path": str(path), "columns": None, "time_column": "day"})


def test_sunspots_ship_inside_statsmodels_wheel_and_load_without_a_download():
    files = {str(f) for f in importlib.metadata.files("statsmodels")}
    assert "statsmodels/datasets/sunspots/sunspots.csv" in files
    found = sunspots()
    assert found.columns == ("SUNACTIVITY",)
    assert (found.time[0], found.time[-1], len(found.values)) == (1700, 2008, 309)
    dm = SunspotsDataModule()
    dm.setup()
    assert dm.channels == dm.output_size == 1
    assert sum(len(x) for x, _ in dm.windows.values()) == 309 - 3 * dm.seq_len


@pytest.mark.parametrize(
    "overrides",
    [("data=sunspots",), ("data=sunspots", "replicas=3", "model=torch")],
)
def test_sunspots_configs_pass(compose_cfg, overrides):
    validate(compose_cfg(*overrides))


AB = ("data.columns=[a,b]",)
TIME = ("data.time_column=t",)
#: Each class of bad file: the file's text, extra overrides, and what the line must say.
BAD_FILES = {
    "missing": (None, (), "no such file"),
    "empty": ("", (), "the file is empty"),
    "header only": ("a,b\n", (), "a header but no rows"),
    "not text": (b"\xff\xfe\x00\x81" * 50, (), "cannot read it as CSV"),
    "ragged": ("a,b\n1,2\n3,4,5,6\n", (), "cannot read it as CSV"),
    "non-numeric cell": ("a,b\n1,2\n2,3\n3,oops\n", AB, "'b' holds 'oops' at line 4"),
    "missing value": ("a,b\n1,2\n2,\n3,4\n", AB, "'b' has a missing value at line 3"),
    "infinite": ("a\n1\ninf\n", (), "'a' holds 'inf' at line 3, not a finite number"),
    "unknown column": ("a,b\n1,2\n", ("data.columns=[a,c]",), "no column 'c' (data.columns)"),
    "no numeric column": ("a\nx\ny\n", (), "no column holds only numbers"),
    "unreadable time": ("t,a\n1,1\nlater,2\n", TIME, "'later' at line 3 is neither"),
    "bad cell, sorted": ("t,a\n3,1\n1,x\n2,y\n", (*TIME, "data.columns=[a]"), "'x' at line 3"),
    "repeated time": ("t,a\n1,1\n2,2\n1,3\n", TIME, "lines 2 and 4 have the same time"),
    "time as a channel": ("t,a\n1,1\n", (*TIME, "data.columns=[t,a]"), "is data.time_column"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_each_bad_file_is_refused_in_one_line_naming_it(compose_cfg, tmp_path, case):
    text, extra, says = BAD_FILES[case]
    path = tmp_path / "series.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    line = refusal(compose_cfg, "data=csv", f"data.path={path}", *extra)
    assert line.startswith(f"data.path={path}: "), line
    assert says in line, line


def test_a_directory_and_no_path_are_refused(compose_cfg, tmp_path):
    assert "is a directory" in refusal(compose_cfg, "data=csv", f"data.path={tmp_path}")
    assert refusal(compose_cfg, "data=csv").startswith("data.path=null is not allowed")


def test_a_constant_column_over_the_train_split_is_refused(compose_cfg, tmp_path):
    path = tmp_path / "c.csv"
    rows = np.arange(100.0)
    # constant over the train split (rows 1..80) only: it changes in the val and test splits
    pd.DataFrame({"a": rows, "flat": np.where(rows < 80, 1.0, rows)}).to_csv(path, index=False)
    line = refusal(compose_cfg, "data=csv", f"data.path={path}")
    assert "column 'flat' is constant over the train split (rows 1..80" in line, line
    validate(compose_cfg("data=csv", f"data.path={path}", "data.columns=[a]"))


def test_a_series_too_short_for_the_window_and_splits_is_refused(compose_cfg, tmp_path):
    path = write_series(tmp_path / "s.csv", rows=60)
    line = refusal(compose_cfg, "data=csv", f"data.path={path}", "data.seq_len=6")
    # 60 rows: the val and test splits get 6 each, a window of 6 needs 7
    assert "60 rows are too few for data.seq_len=6" in line, line
    assert "use data.seq_len=5 or less, or a file of at least" in line, line
    validate(compose_cfg("data=csv", f"data.path={path}", "data.seq_len=5"))
    assert "use data.seq_len=45 or less" in refusal(
        compose_cfg, "data=sunspots", "data.seq_len=46"
    )


def test_a_sweep_is_checked_file_by_file_before_it_starts(compose_cfg, tmp_path):
    from hydra.types import RunMode

    from rnnlab.config.hydra_callbacks import InvalidConfig, ValidateConfig

    good = write_series(tmp_path / "good.csv")
    sweep_dir = tmp_path / "sweep"
    with compose_cfg.initialized():
        cfg = compose_cfg(f"hydra.sweep.dir={sweep_dir}", hydra=True)
        cfg.hydra.mode = RunMode.MULTIRUN
        # as for python train.py -m data=csv data.path=good.csv,gone.csv
        cfg.hydra.overrides.task = ["data=csv", f"data.path={good},{tmp_path / 'gone.csv'}"]
        with pytest.raises(InvalidConfig, match=r"gone\.csv: no such file"):
            ValidateConfig().on_multirun_start(cfg)
        assert not sweep_dir.exists()
        cfg.hydra.overrides.task = ["data=csv", f"data.path={good}", "seed=0,1"]
        ValidateConfig().on_multirun_start(cfg)
    assert sweep_dir.is_dir()


def forecaster_mse(
    run_dir: Path, raw: np.ndarray, seq_len: int, train_end: int, test_start: int
) -> tuple[float, float]:
    """The run's test MSE and linear baseline recomputed from the raw file with numpy: the
    train split's mean and std, the test windows, the best checkpoint's forecasts of their
    last step, and least squares on the train windows."""
    from rnnlab.models.forecaster import Forecaster

    mean, std = raw[:train_end].mean(0), raw[:train_end].std(0)
    z = (raw - mean) / std

    def windows(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = range(len(part) - seq_len)
        return (
            np.stack([part[i : i + seq_len] for i in starts]),
            np.stack([part[i + seq_len] for i in starts]),
        )

    x, y = windows(z[test_start:])
    model = Forecaster.load_from_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    with torch.no_grad():
        pred = model(torch.from_numpy(x).float())[:, -1].double().numpy()
    xt, yt = windows(z[:train_end])
    features = lambda w: np.hstack([w.reshape(len(w), -1), np.ones((len(w), 1))])  # noqa: E731
    weights = np.linalg.lstsq(features(xt), yt, rcond=None)[0]
    linear = np.mean((features(x) @ weights - y) ** 2)
    return float(np.mean((pred - y) ** 2)), float(linear)


@pytest.mark.slow
def test_train_py_on_a_csv_file_matches_an_independent_computation(tmp_path):
    path = write_series(tmp_path / "series.csv", rows=300, reverse=True)
    run_dir = tmp_path / "run"
    proc = run_train(
        "data=csv",
        f"data.path={path}",
        "data.time_column=day",
        "data.seq_len=6",
        "trainer.max_epochs=3",
        "logger.figures=false",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads((run_dir / "metrics.json").read_text())
    raw = pd.read_csv(path).sort_values("day")[["a", "b"]].to_numpy()
    train_end, test_start = 240, 270  # 300 rows: 240, 30 and 30 for train, val and test
    assert record["data_scale"]["columns"] == ["a", "b"]
    np.testing.assert_allclose(record["data_scale"]["mean"], raw[:train_end].mean(0))
    np.testing.assert_allclose(record["data_scale"]["std"], raw[:train_end].std(0))
    test_mse, linear = forecaster_mse(run_dir, raw, 6, train_end, test_start)
    assert record["test/mse"] == pytest.approx(test_mse, rel=1e-5)
    assert record["baseline/linear_mse"] == pytest.approx(linear, rel=1e-6)
    # the checkpoint keeps the scale too (the DataModule's state)
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["CsvDataModule"]["data_scale"] == record["data_scale"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "text, args, says",
    [
        ("a,b\n" + "1,2\n" * 5 + "3,oops\n" + "4,5\n" * 99, ("-m", "seed=0,1"), "at line 7"),
        ("a,b\n" + "1,2\n" * 100 + "3,\n" + "4,5\n" * 10, (), "missing value at line 102"),
    ],
    ids=["sweep, non-numeric cell", "run, missing value"],
)
def test_a_bad_file_stops_train_py_in_one_line_with_nothing_written(tmp_path, text, args, says):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    out = tmp_path / "out"
    proc = run_train(
        *args,
        "data=csv",
        f"data.path={path}",
        "data.columns=[a,b]",
        f"hydra.run.dir={out}",
        f"hydra.sweep.dir={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: data.path={path}: "), lines
    assert says in lines[0]
    assert list(tmp_path.iterdir()) == [path]  # no run or sweep directory, no outputs/


def test_a_path_in_the_overrides_names_one_directory():
    from rnnlab.config.hydra_setup import job_name, unnamed_keys

    name = job_name(["data=csv", "data.path=/data/sales/daily.csv"], unnamed_keys())
    assert name == "_data=csv,data.path=_data_sales_daily.csv"
