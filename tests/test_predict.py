"""python -m rnnlab.predict: a finished run's forecasts in the data's units, and one line for
input it cannot use (checked before torch is imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab import predict
from tests.conftest import ROOT, run_train
from tests.test_csv_data import write_series


def fake_run(run_dir: Path, csv: Path, **changes) -> Path:
    """A run directory as a finished data=csv run leaves it, as far as the argument checks
    read it: metrics.json (its config and data_scale) and a checkpoint file."""
    train = pd.read_csv(csv).sort_values("day")[["a", "b"]].to_numpy()[:160]
    record = {
        "status": "ok",
        "forecasting": True,
        "best_checkpoint": str(run_dir / "checkpoints" / "best.ckpt"),
        "config": {
            "data": {
                "name": "csv",
                "path": str(csv),
                "columns": None,
                "time_column": "day",
                "seq_len": 5,
                "splits": [0.8, 0.1, 0.1],
            },
            "model": {"cell": "scratch"},
            "replicas": 1,
        },
        "data_scale": {
            "columns": ["a", "b"],
            "mean": train.mean(0).tolist(),
            "std": train.std(0).tolist(),
        },
    }
    record.update(changes)
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "best.ckpt").write_bytes(b"")
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


def refused(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        predict.main(list(argv))
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def test_bad_arguments_are_refused_in_one_line(tmp_path, capsys):
    csv = write_series(tmp_path / "s.csv", reverse=True)
    run = fake_run(tmp_path / "run", csv)
    assert "no such run directory" in refused(capsys, str(tmp_path / "nowhere"))
    assert "no readable metrics.json" in refused(capsys, str(tmp_path))
    assert "expected an integer >= 1" in refused(capsys, str(run), "--steps", "0")
    assert "expected at most 15" in refused(capsys, str(run), "--steps", "16")  # 20 - seq_len
    short = tmp_path / "short.csv"
    pd.read_csv(csv).head(5).to_csv(short, index=False)
    assert "5 rows are too few" in refused(capsys, str(run), "--csv", str(short))
    other = tmp_path / "other.csv"
    pd.DataFrame({"day": [1, 2], "a": [1.0, 2.0]}).to_csv(other, index=False)
    line = refused(capsys, str(run), "--csv", str(other))
    assert line.startswith(f"error: --csv {other}: there is no column 'b'"), line
    gone = tmp_path / "gone.csv"
    assert f"--csv {gone}: no such file" in refused(capsys, str(run), "--csv", str(gone))


def test_runs_it_cannot_forecast_with_are_refused(tmp_path, capsys):
    csv = write_series(tmp_path / "s.csv")
    diverged = fake_run(tmp_path / "diverged", csv, status="diverged")
    assert "the run ended diverged" in refused(capsys, str(diverged))
    adding = fake_run(tmp_path / "adding", csv, forecasting=False)
    assert "does not forecast a series" in refused(capsys, str(adding))
    moved = fake_run(tmp_path / "moved", csv)
    (moved / "checkpoints" / "best.ckpt").unlink()
    assert "checkpoints/best.ckpt is missing" in refused(capsys, str(moved))
    changed = fake_run(tmp_path / "changed", csv)
    write_series(csv, seed=1)  # the run's file, since rewritten
    assert "the data changed since the run trained" in refused(capsys, str(changed))


def test_a_bad_argument_is_refused_before_torch_is_imported(tmp_path):
    code = (
        "import sys; from rnnlab.predict import main\n"
        "try:\n    main([sys.argv[1]])\n"
        "except SystemExit as e:\n    assert 'torch' not in sys.modules; raise\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"error: {tmp_path / 'nowhere'}: no such run directory\n"


@pytest.mark.slow
def test_predict_on_a_finished_replicas_run(tmp_path):
    csv = write_series(tmp_path / "series.csv", rows=300, reverse=True)
    run_dir = tmp_path / "run"
    proc = run_train(
        "data=csv",
        f"data.path={csv}",
        "data.time_column=day",
        "replicas=2",
        "trainer.max_epochs=2",
        "logger.figures=false",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads((run_dir / "metrics.json").read_text())
    std = np.array(record["data_scale"]["std"])

    def run_predict(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rnnlab.predict", str(run_dir), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )

    done = run_predict()
    assert done.returncode == 0, done.stderr
    out = run_dir / "forecast"
    one_step = pd.read_csv(out / "one_step.csv")
    rollout = pd.read_csv(out / "rollout.csv")
    raw = pd.read_csv(csv).sort_values("day").reset_index(drop=True)
    # the test split's points after its first window, in the file's own units and times
    assert one_step["t"].tolist() == list(range(270 + 4, 300))
    np.testing.assert_array_equal(one_step["time"], raw["day"][274:])
    np.testing.assert_array_equal(one_step["b_truth"], raw["b"][274:])
    for r, seed in enumerate(record["seeds"]):
        # each replica's one-step MSE, per channel in the data's units, over std^2, averaged
        # over the channels: its test/mse (standardised units)
        errors = [
            np.mean((one_step[f"{c}_seed{seed}"] - one_step[f"{c}_truth"]) ** 2) / std[i] ** 2
            for i, c in enumerate(("a", "b"))
        ]
        replica = record["replicas"][r]
        assert np.mean(errors) == pytest.approx(replica["test/mse"], rel=1e-4)
        rolled = [
            np.mean((rollout[f"{c}_seed{seed}"] - rollout[f"{c}_truth"]) ** 2) / std[i] ** 2
            for i, c in enumerate(("a", "b"))
        ]
        assert np.mean(rolled) == pytest.approx(replica["test/rollout_mse"], rel=1e-4)
    forecasts = one_step[["b_seed0", "b_seed1"]]
    np.testing.assert_allclose(one_step["b_low"], forecasts.min(axis=1), rtol=1e-6)
    np.testing.assert_allclose(one_step["b_high"], forecasts.max(axis=1), rtol=1e-6)
    assert (out / "rollout.png").stat().st_size > 0

    new = tmp_path / "recent.csv"
    raw.tail(40).sample(frac=1, random_state=0).to_csv(new, index=False)  # shuffled: sorted by day
    done = run_predict("--csv", str(new), "--steps", "7")
    assert done.returncode == 0, done.stderr
    fresh = pd.read_csv(run_dir / "forecast_recent" / "one_step.csv")
    assert fresh["time"].tolist() == raw["day"][264:].tolist()  # 40 rows, windows of 4
    # the same points as the test split forecast from the same windows: the same forecasts
    shared = fresh.merge(one_step, on="time", suffixes=("", "_test"))
    assert len(shared) == 26
    np.testing.assert_allclose(shared["a_seed1"], shared["a_seed1_test"], rtol=1e-5)
    assert len(pd.read_csv(run_dir / "forecast_recent" / "rollout.csv")) == 7
