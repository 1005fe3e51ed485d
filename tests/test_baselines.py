"""The linear and mean baselines against independent computations and known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab import metrics as M
from rnnlab.data import baselines
from rnnlab.data.tasks import SinCosDataModule


def test_linear_baseline_solves_the_sincos_task():
    """The next [sin, cos] point is a fixed rotation of the last one: least squares on the window
    is exact up to the series' float32 rounding."""
    dm = SinCosDataModule()
    dm.setup()
    values = baselines.data_baselines(dm.windows, forecasting=True)
    assert values[M.LINEAR_MSE] < 1e-10 and values[M.VAL_LINEAR_MSE] < 1e-10
    assert M.MEAN_MSE not in values  # persistence is the forecasting tasks' naive baseline


def test_linear_fit_equals_numpys_least_squares():
    torch.manual_seed(0)
    inputs, targets = torch.randn(200, 3, 2), torch.randn(200, 3, 1)
    weights = baselines.linear_fit((inputs, targets))
    design = np.hstack([inputs.reshape(200, -1).double().numpy(), np.ones((200, 1))])
    want, *_ = np.linalg.lstsq(design, targets[:, -1].double().numpy(), rcond=None)
    np.testing.assert_allclose(weights.numpy(), want, rtol=1e-8, atol=1e-10)
    mse = baselines.linear_mse(weights, (inputs, targets))
    assert mse == pytest.approx(np.mean((design @ want - targets[:, -1].numpy()) ** 2))


def test_noise_makes_the_linear_baseline_imperfect_but_better_than_persistence():
    dm = SinCosDataModule(noise_std=0.1, seq_len=8)
    dm.setup()
    values = baselines.data_baselines(dm.windows, forecasting=True)
    x, y = dm.windows["test"]
    persistence = torch.mean((x[:, -1] - y[:, -1]) ** 2).item()
    assert 0.01 < values[M.LINEAR_MSE] < persistence
