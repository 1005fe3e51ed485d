"""Baselines every model is shown next to, computed from the data alone.

- persistence ("the next point equals the last one"): in the Forecaster's val/test metrics,
  for tasks whose target is the next input (``baseline/persistence_mse``);
- linear: least squares on the flattened input window, fit on the train split
  (``baseline/linear_mse``, ``baseline/val_linear_mse``). On the sin/cos task the next point is a
  fixed rotation of the last one, so this is exact to float rounding: an RNN that does worse has
  not learned what a linear map already knows;
- mean: the train split's mean target for every sequence (``baseline/mean_mse``), the baseline of
  tasks with no persistence (the adding problem: about 1/6).

Scored like the model: the last step of each window, squared error averaged over channels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from rnnlab import metrics as M

log = logging.getLogger(__name__)

Windows = tuple[torch.Tensor, torch.Tensor]  # inputs (N, L, C), targets (N, L, C_out)


def _features(inputs: torch.Tensor) -> torch.Tensor:
    """The flattened window and a constant, in float64: ``(N, L*C + 1)``."""
    flat = inputs.reshape(len(inputs), -1).double()
    return torch.cat([flat, flat.new_ones(len(flat), 1)], dim=1)


def linear_fit(train: Windows) -> torch.Tensor:
    """Least-squares weights ``(L*C + 1, C_out)`` from the flattened window to the last target."""
    inputs, targets = train
    return torch.linalg.lstsq(_features(inputs), targets[:, -1].double(), driver="gelsd").solution


def linear_mse(weights: torch.Tensor, windows: Windows) -> float:
    inputs, targets = windows
    prediction = _features(inputs) @ weights
    return torch.mean((prediction - targets[:, -1].double()) ** 2).item()


def mean_mse(train: Windows, windows: Windows) -> float:
    mean = train[1][:, -1].double().mean(0)
    return torch.mean((windows[1][:, -1].double() - mean) ** 2).item()


def data_baselines(windows: dict[str, Windows], forecasting: bool) -> dict[str, float | None]:
    """The baselines of a task's splits, by metric name. Computed after training: a least
    squares that cannot be solved leaves the linear baseline out (None, with a warning in
    train.log) rather than losing the run's record."""
    values: dict[str, float | None] = dict.fromkeys((M.LINEAR_MSE, M.VAL_LINEAR_MSE))
    try:
        weights = linear_fit(windows["train"])
    except torch.linalg.LinAlgError as err:  # non-finite data (config checks keep them finite)
        log.warning("no linear baseline: %s", " ".join(str(err).split()))
    else:
        values[M.LINEAR_MSE] = linear_mse(weights, windows["test"])
        values[M.VAL_LINEAR_MSE] = linear_mse(weights, windows["val"])
    if not forecasting:
        values[M.MEAN_MSE] = mean_mse(windows["train"], windows["test"])
    return values


def network_baselines(members: Sequence[Any]) -> list[dict[str, float]]:
    """:func:`data_baselines` of each network's data (a DataModule's ``members``; none before
    its data is set up), fit once for the networks with the first one's data (replicas of a
    task that does not draw its data from the seed)."""
    first = members[0]
    if not first.windows:
        return [{} for _ in members]
    shared = data_baselines(first.windows, first.forecasting)
    return [
        shared
        if member is first or _same_data(member.windows, first.windows)
        else data_baselines(member.windows, member.forecasting)
        for member in members
    ]


def _same_data(windows: dict[str, Windows], other: dict[str, Windows]) -> bool:
    return windows.keys() == other.keys() and all(
        torch.equal(a, b)
        for split in windows
        for a, b in zip(windows[split], other[split], strict=True)
    )
