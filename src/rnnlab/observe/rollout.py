"""The scored rollout: ``test/rollout_mse`` and the forecasts the figures draw.

The model's own predictions are fed back from the first test window over the whole test split;
``test/rollout_mse`` is the mean squared error of that forecast. rnnlab.observe.figures draws the
same :class:`Forecasts`, so the metric and the picture cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnlab.config.choices import SPLIT_NAMES
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
    names: tuple[str, ...] = ("sin", "cos")  # of the channels, as figures label them
    units: str = ""  # what the values are in, when not the data's own: "standardised"

    @property
    def rollout_errors(self) -> torch.Tensor:
        """Squared error per horizon step, averaged over channels: ``(K,)``."""
        return ((self.rollout - self.truth[: len(self.rollout)]) ** 2).mean(-1)

    @property
    def persistence_errors(self) -> torch.Tensor:
        return ((self.persistence - self.truth[: len(self.persistence)]) ** 2).mean(-1)


@torch.no_grad()
def forecasts(predict: nn.Module, dm: Any, steps: int | None = None) -> list[Forecasts]:
    """One-step and rollout forecasts on the test split, one per network: ``predict`` is a
    module's ``networks(...).predict`` and ``dm`` its DataModule, whose test windows are
    ``(N, L, C)`` for one network and stacked ``(R, N, L, C)`` for replicas, each on its own
    data. ``steps=None`` rolls out over all of it, the horizon ``test/rollout_mse`` scores."""
    inputs, targets = dm.windows["test"]
    start = dm.members[0].bounds[SPLIT_NAMES.index("test")][0]
    seq_len, truth = inputs.shape[-2], targets[..., -1, :]
    n = truth.shape[-2]
    steps = n if steps is None else max(1, min(steps, n))
    device = next(predict.parameters()).device
    was_training = predict.training
    predict.eval()
    try:
        one_step = predict(inputs.to(device))[..., -1, :].cpu()
        rollout = feed_back(predict, inputs[..., :1, :, :].to(device), steps)[..., 0, :, :].cpu()
    finally:
        predict.train(was_training)
    if inputs.dim() == 3:  # one network's: as a stack of one
        inputs, truth, one_step, rollout = (
            t.unsqueeze(0) for t in (inputs, truth, one_step, rollout)
        )
    index = torch.arange(start + seq_len, start + seq_len + n)
    first = dm.members[0]
    scaled = "standardised" if first.record() else ""  # a series' scale: z, not its units
    return [
        Forecasts(
            index=index,
            truth=truth[r],
            one_step=one_step[r],
            context_index=torch.arange(start, start + seq_len),
            context=inputs[r, 0],
            rollout=rollout[r],
            persistence=inputs[r, 0, -1].expand(steps, -1),
            names=tuple(first.channel_names),
            units=scaled,
        )
        for r in range(len(inputs))
    ]


def forecast_test_split(model: Forecaster, dm: Any, steps: int | None = None) -> Forecasts:
    """A Forecaster's :func:`forecasts`."""
    return forecasts(model, dm, steps)[0]
