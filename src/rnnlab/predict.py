"""``python -m rnnlab.predict RUN_DIR [--csv FILE] [--steps N] [--out DIR]``: a finished run's
forecasts, in the data's own units: each point's one-step forecast from the true window before
it, and the rollout that feeds the forecasts back from the first window, as CSV files and
figures (rnnlab.training.forecast). Of the run's test split, or of a new CSV file with the
run's columns (a ``data=csv`` or ``data=sunspots`` run). A run of ``replicas=R`` gives every
replica's forecasts and their band.

The arguments are checked before torch is imported, so a wrong one is refused at once, in one
line with exit status 2: a directory that is not a finished run, a run that has no tested
weights or does not forecast a series, a checkpoint that is gone, a CSV file the run cannot
read (rnnlab.config.series: its columns, a cell that is not a number, too few rows), a rollout
longer than the data.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rnnlab import metrics as M
from rnnlab.config.choices import SPLIT_NAMES, split_sizes
from rnnlab.config.errors import ConfigError, OneLineParser, refuse
from rnnlab.config.resume import CHECKPOINT_DIR
from rnnlab.config.series import SCALE_KEY, Scale, read_csv, series_of

#: Where the forecasts go by default, inside the run directory.
OUT_DIR = "forecast"


def _steps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected an integer >= 1")
    return value


def read_run(run_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json``, refusing a directory that is not a finished run that
    forecasts a series."""
    if not run_dir.is_dir():
        refuse(f"{run_dir}: no such run directory")
    path = run_dir / M.METRICS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        refuse(
            f"{run_dir}: no readable {M.METRICS_FILE}: not a finished run (still running, "
            "stopped before the end, or not a run directory)"
        )
    if not isinstance(record, dict) or "config" not in record:
        refuse(f"{path}: not a run's record (no config)")
    if record.get("status") != "ok":
        refuse(
            f"{run_dir}: the run ended {record.get('status')}, with no tested weights to "
            "forecast with"
        )
    if not record.get("forecasting", True):
        refuse(
            f"{run_dir}: the run's task, data={record['config']['data']['name']}, does not "
            "forecast a series"
        )
    return record


def checkpoint_of(run_dir: Path, record: dict[str, Any]) -> Path:
    """The checkpoint the run's test scored (``best_checkpoint``), looked up in the run's own
    ``checkpoints/`` folder so that a moved run directory still works."""
    name = Path(str(record.get("best_checkpoint") or "")).name
    path = run_dir / CHECKPOINT_DIR / name
    if not name or not path.is_file():
        refuse(f"{run_dir}: the tested checkpoint {CHECKPOINT_DIR}/{name or '?'} is missing")
    return path


def check_data(record: dict[str, Any], csv: Path | None, steps: int | None) -> int:
    """Refuse data the run cannot forecast: a new CSV file without its columns, with a cell
    that is not a number or fewer rows than one window and its next point; a run's own file
    that changed since it trained; ``--steps`` beyond the data. Returns the points to forecast."""
    data = record["config"]["data"]
    saved = record.get(SCALE_KEY)
    seq_len = int(data["seq_len"])
    if csv is not None:
        if saved is None:
            refuse(
                f"--csv {csv}: only a run of data=csv or data=sunspots forecasts a new file "
                f"(this run: data={data['name']})"
            )
        scale = Scale.from_dict(saved)
        try:
            found = read_csv(csv, scale.columns, data.get("time_column"), f"--csv {csv}")
        except ConfigError as err:
            refuse(str(err))
        points = len(found.values) - seq_len
        if points < 1:
            refuse(
                f"--csv {csv}: {len(found.values)} rows are too few: the run reads windows of "
                f"data.seq_len={seq_len} rows and forecasts the next, so at least "
                f"{seq_len + 1} rows"
            )
    else:
        if saved is not None:
            try:
                found = series_of(OmegaConf.create(data))
            except ConfigError as err:
                refuse(f"{err} (the run's data; forecast another file with --csv FILE)")
            start, end = 0, split_sizes(len(found.values), data["splits"])[0]
            if not Scale.of(found, start, end).same_as(Scale.from_dict(saved)):
                refuse(
                    f"{found.source}: the data changed since the run trained (its train split's "
                    "mean and std differ from the run's data_scale); forecast it with --csv FILE"
                )
            rows = len(found.values)
        else:
            rows = int(data["n_points"])
        test = split_sizes(rows, data["splits"])[SPLIT_NAMES.index("test")]
        points = test - seq_len
    if steps is not None and steps > points:
        refuse(
            f"--steps {steps} is not allowed; expected at most {points}, the points after the "
            "first window (the rollout is scored against the data)"
        )
    return points


def out_dir(run_dir: Path, given: Path | None, csv: Path | None) -> Path:
    """``--out``, or ``RUN_DIR/forecast`` (``forecast_<file name>`` for ``--csv FILE``),
    created here: a folder that cannot be is refused."""
    out = given or run_dir / (OUT_DIR if csv is None else f"{OUT_DIR}_{csv.stem}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        refuse(f"--out {out}: cannot create the folder: {err.strerror or err}; give another --out")
    if not os.access(out, os.W_OK):
        refuse(f"--out {out}: cannot write in the folder (permission denied); give another --out")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m rnnlab.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run's directory")
    parser.add_argument(
        "--csv", type=Path, default=None, help="a CSV file with the run's columns (default: the "
        "run's test split)"
    )
    parser.add_argument(
        "--steps", type=_steps, default=None, help="rollout length (default: all the data)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the files (default: RUN_DIR/forecast)"
    )
    opts = parser.parse_args(argv)
    record = read_run(opts.run_dir)
    checkpoint = checkpoint_of(opts.run_dir, record)
    check_data(record, opts.csv, opts.steps)
    out = out_dir(opts.run_dir, opts.out, opts.csv)
    from rnnlab.training.forecast import write_forecasts  # torch, Lightning: seconds

    for line in write_forecasts(record, checkpoint, out, opts.csv, opts.steps):
        print(line)


if __name__ == "__main__":
    main()
