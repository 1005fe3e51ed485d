"""Forced divergence through the real command line: reported, not crashed."""

from __future__ import annotations

import json

import pytest
from conftest import run_train

pytestmark = pytest.mark.slow


def test_forced_divergence_is_recorded_and_exits_0(tmp_path):
    proc = run_train("model.lr=1e30", "model.nonlinearity=relu", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "diverged after" in proc.stdout and "at epoch 0, step 1" in proc.stdout
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["status"] == "diverged"
    assert (result["diverged_epoch"], result["diverged_step"]) == (0, 1)
    assert result["test/mse"] is None and result["val/mse_best"] is None  # no NaN as a metric
