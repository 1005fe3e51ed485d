"""The scored rollout: ``test/rollout_mse`` and the forecasts the figures draw.

The model's own predictions are fed back from the first test window over the whole test split;
``test/rollout_mse`` is the mean squared error of that forecast. rnnlab.observe.figures draws the
same
:class:`Forecasts`, so the metric and the picture cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rnnlab.config.choices import SPLIT_NAMES
from rnnlab.data.tasks import SinCosDataModule
from rnnlab.models.forecaster import Forecaster, feed_back


@dataclass(frozen=True)
class Forecasts:
    """What the model predicts on the test split, as CPU tensors indexed by series position."""

    index: torch.Tensor  # (N,) series positions of the test targets
    truth: torch.Tensor  # (N, C)
    one_step: torch.Tensor  # (N, C) each from the true preceding window
    context_index: torch.Tensor  # (L,) positions of the first test window
    context: torch.Tensor  # (L, C) the first test window, where the rollout starts
    rollout: torch.Tensor  # (K, C) the model's own predictions fed back
    persistence: torch.Tensor  # (K, C) the last context point, held

    @property
    def rollout_errors(self) -> torch.Tensor:
        """Squared error per horizon step, averaged over channels: ``(K,)``."""
        return ((self.rollout - self.truth[: len(self.rollout)]) ** 2).mean(-1)

    @property
    def persistence_errors(self) -> torch.Tensor:
        return ((self.persistence - self.truth[: len(self.persistence)]) ** 2).mean(-1)


@torch.no_grad()
def forecast_test_split(
    model: Forecaster, dm: SinCosDataModule, steps: int | None = None
) -> Forecasts:
    """One-step and rollout forecasts on the test split; ``steps=None`` rolls out over all of
    it, the horizon :func:`rollout_mse` scores."""
    inputs, targets = dm.windows["test"]
    start = dm.bounds[SPLIT_NAMES.index("test")][0]
    seq_len = inputs.shape[1]
    truth = targets[:, -1]
    steps = len(truth) if steps is None else max(1, min(steps, len(truth)))
    was_training = model.training
    model.eval()
    try:
        one_step = model(inputs.to(model.device))[:, -1].cpu()
        rollout = model.rollout(inputs[:1].to(model.device), steps)[0].cpu()
    finally:
        model.train(was_training)
    return Forecasts(
        index=torch.arange(start + seq_len, start + seq_len + len(truth)),
        truth=truth,
        one_step=one_step,
        context_index=torch.arange(start, start + seq_len),
        context=inputs[0],
        rollout=rollout,
        persistence=inputs[0, -1].expand(steps, -1),
    )


def rollout_mse(model: Forecaster, dm: SinCosDataModule) -> float:
    """``test/rollout_mse``: the mean squared error of the rollout over the whole test split."""
    return forecast_test_split(model, dm).rollout_errors.mean().item()


@torch.no_grad()
def replica_forecasts(model: Any, dm: Any, steps: int | None = None) -> list[Forecasts]:
    """:func:`forecast_test_split` for every replica of a ReplicaForecaster at once, from each
    one's best-validation weights (``model.best``) and on its own test split: one batched pass
    instead of R."""
    inputs, targets = dm.windows["test"]  # (R, N, L, C)
    start = dm.members[0].bounds[SPLIT_NAMES.index("test")][0]
    seq_len, truth = inputs.shape[2], targets[:, :, -1]
    steps = truth.shape[1] if steps is None else max(1, min(steps, truth.shape[1]))
    net = model.best
    was_training = net.training
    net.eval()
    try:
        one_step = net(inputs.to(model.device))[:, :, -1].cpu()
        rollout = feed_back(net, inputs[:, :1].to(model.device), steps)[:, 0].cpu()
    finally:
        net.train(was_training)
    index = torch.arange(start + seq_len, start + seq_len + truth.shape[1])
    return [
        Forecasts(
            index=index,
            truth=truth[r],
            one_step=one_step[r],
            context_index=torch.arange(start, start + seq_len),
            context=inputs[r, 0],
            rollout=rollout[r],
            persistence=inputs[r, 0, -1].expand(steps, -1),
        )
        for r in range(len(inputs))
    ]
