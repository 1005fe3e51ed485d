"""Values the machine cannot hold: what float32 (the data's and Adam's type) or the memory cannot
hold is refused before a run starts, in one line naming the key, instead of a traceback from
deep in the run (the linear baseline's least squares, Adam's step, an allocation)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import run_train

from rnnlab import metrics as M
from rnnlab.config import checks
from rnnlab.config.checks import validate
from rnnlab.config.errors import ConfigError
from rnnlab.data.baselines import data_baselines

#: Overrides, and what the line says is allowed.
TOO_LARGE = {
    "data.noise_std=1e300": "data.noise_std=1e+300 is not allowed; expected a number >= 0 and "
    "at most 3.4e+37 (larger noise overflows the float32 series to inf)",
    "data.noise_std=1e38": "at most 3.4e+37",
    "data.x_end=1e39": "data.x_end=1e+39 is not allowed; expected a number > 0 and at most 3.4e+38",
    "model.lr=1e38": "model.lr=1e+38 is not allowed; expected a number > 0 and at most 3.4e+37",
    "model.weight_decay=1e300": "model.weight_decay=1e+300 is not allowed; expected a number >= 0",
}
#: The largest values allowed: they train (and diverge), they do not crash.
LARGEST = ("data.noise_std=3.4e37", "data.x_end=3.4e38", "model.lr=3.4e37")


def refusal(cfg) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(cfg)
    return str(caught.value)


@pytest.mark.parametrize("override", TOO_LARGE)
def test_values_float32_cannot_hold_are_refused_naming_the_key(compose_cfg, override):
    line = refusal(compose_cfg(override))
    assert "\n" not in line and TOO_LARGE[override] in line


@pytest.mark.parametrize("override", LARGEST)
def test_the_largest_values_allowed_pass(compose_cfg, override):
    validate(compose_cfg(override))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (("data.n_points=100000000000",), "data.n_points=100000000000"),
        (("data=adding", "data.n_train=10000000000"), "data.n_train=10000000000"),
        (("data=adding", "data.n_test=10000000000"), "data.n_test=10000000000"),
    ],
)
def test_data_larger_than_memory_names_the_data_key(compose_cfg, overrides, key):
    if checks._memory_bytes() is None:
        pytest.skip("this platform does not report its memory")
    line = refusal(compose_cfg(*overrides))
    assert line.startswith(f"{key} is not allowed; expected data that fit in memory: "), line


def test_a_least_squares_that_cannot_be_solved_leaves_the_linear_baseline_out():
    """The baselines come after training: a failure there must not lose the run's record."""
    inputs = torch.ones(20, 4, 2)
    inputs[3, 1, 0] = math.inf
    windows = {split: (inputs, inputs.clone()) for split in ("train", "val", "test")}
    values = data_baselines(windows, forecasting=False)
    assert values[M.LINEAR_MSE] is None and values[M.VAL_LINEAR_MSE] is None
    assert M.MEAN_MSE in values


@pytest.mark.slow
def test_an_absurd_noise_level_is_one_line_and_writes_nothing(tmp_path):
    proc = run_train("data.noise_std=1e300", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [f"error: {TOO_LARGE['data.noise_std=1e300']}"]
    assert not (tmp_path / "run").exists()
