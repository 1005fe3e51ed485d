"""End-to-end: train.py in a real subprocess with real Hydra, Trainer and TensorBoard files."""

import json

import pytest
from conftest import run_train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model", ["scratch", "concat", "torch"])
def test_default_run_beats_persistence_50x(model, default_runs):
    proc, tmp_path = default_runs[f"model={model}"]  # the golden test's runs, made once
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["test/mse"] <= 1e-4
    assert metrics["test/mse"] * 50 <= metrics["baseline/persistence_mse"]
    assert metrics["config"]["model"]["cell"] == model
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert "test MSE" in proc.stdout and "tensorboard --logdir" in proc.stdout
    # the terminal gets the four-line summary, train.log the config, each epoch and the summary
    assert len(proc.stdout.strip().splitlines()) == 4, proc.stdout
    log = (tmp_path / "train.log").read_text()
    assert f"cell: {model}" in log and log.count("] - epoch ") == metrics["epochs"] == 60
    assert "epoch 60/60: train/loss=" in log and proc.stdout.strip().splitlines()[0] in log


def test_same_seed_same_metrics_and_overrides_apply(tmp_path):
    args = (
        "model=concat",
        "model.nonlinearity=relu",
        "data.seq_len=8",
        "model.hidden_size=16",
        "model.loss=every",
        "model.num_layers=2",
        "model.lr=0.005",
        "data.batch_size=64",
        "trainer.max_epochs=3",
        "seed=7",
    )
    runs = []
    for name in ("a", "b"):
        proc = run_train(*args, f"hydra.run.dir={tmp_path / name}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    a, b = runs
    for key in ("val/mse_best", "test/mse", "test/mae", "test/rollout_mse"):
        assert a[key] == b[key]
    model = a["config"]["model"]
    assert (model["nonlinearity"], model["hidden_size"], model["loss"], model["num_layers"]) == (
        "relu",
        16,
        "every",
        2,
    )
    assert a["config"]["data"]["seq_len"] == 8 and a["epochs"] == 3
    # the summary line names what the run was: layers and learning rate included
    assert "concat cell, relu, hidden 16, 2 layers, lr 0.005, loss=every" in proc.stdout
    # 2 layers, hidden 16, concat cell: (16+2)*16+16 + (16+16)*16+16, readout (16+2)*2+2
    assert a["params"] == (18 * 16 + 16) + (32 * 16 + 16) + (18 * 2 + 2)
