"""The figures a person looks at to judge a forecaster: the data, one-step predictions, the
autoregressive rollout and its error against horizon.

Figures are built on ``matplotlib.figure.Figure`` directly (the Agg canvas, no pyplot), so no
GUI backend or global figure registry is involved and nothing needs closing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from rnnlab.data import SinCosDataModule
from rnnlab.model import Forecaster

CHANNELS = ("sin", "cos")
SPLITS = ("train", "val", "test")
SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
CHANNEL_COLORS = {"sin": "tab:blue", "cos": "tab:orange"}
#: Small figures: a TensorBoard card is about this wide, and small PNGs encode fast.
SIZE = (7.0, 3.6)
DPI = 80


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
    it, the horizon ``rnnlab.experiment.rollout_mse`` scores."""
    inputs, targets = dm.windows["test"]
    start = dm.bounds[SPLITS.index("test")][0]
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


def _figure(title: str, xlabel: str = "t (series index)") -> tuple[Figure, Axes]:
    """One axes with fixed margins: a layout engine would triple the drawing time."""
    fig = Figure(figsize=SIZE, dpi=DPI)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.14, top=0.9)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    return fig, ax


def _series_figure(title: str) -> tuple[Figure, Axes]:
    """Axes for [sin, cos] values, with room above the curves for a one-row legend.

    Three y ticks: tick labels are most of the drawing time."""
    fig, ax = _figure(title)
    ax.set_ylim(-1.2, 1.65)
    ax.set_yticks([-1, 0, 1])
    ax.grid(axis="y", lw=0.5, alpha=0.5)
    return fig, ax


def _legend(ax: Axes) -> None:
    ax.legend(
        loc="upper center", ncol=6, fontsize=8, frameon=False, handlelength=1.5, columnspacing=1
    )


def data_figure(series: torch.Tensor, bounds: list[tuple[int, int]]) -> Figure:
    """Sin and cos over the whole series, the train/val/test ranges shaded and labelled."""
    fig, ax = _series_figure("data: [sin, cos] and the time-ordered splits")
    t = torch.arange(len(series))
    for c, name in enumerate(CHANNELS):
        ax.plot(t, series[:, c], color=CHANNEL_COLORS[name], lw=0.8, label=name)
    for name, (lo, hi) in zip(SPLITS, bounds, strict=True):
        ax.axvspan(lo, hi, color=SPLIT_COLORS[name], alpha=0.15, lw=0, label=name)
    _legend(ax)
    return fig


def predictions_figure(fc: Forecasts) -> Figure:
    """One-step predictions against the truth on the test split (seed 002's figure)."""
    mse = torch.mean((fc.one_step - fc.truth) ** 2).item()
    fig, ax = _series_figure(f"one-step predictions on the test split (MSE {mse:.3g})")
    for c, name in enumerate(CHANNELS):
        color = CHANNEL_COLORS[name]
        ax.plot(fc.index, fc.truth[:, c], color=color, lw=3, alpha=0.35, label=f"{name} truth")
        ax.plot(fc.index, fc.one_step[:, c], "--", color=color, lw=1.2, label=f"{name} predicted")
    _legend(ax)
    return fig


def rollout_figure(fc: Forecasts) -> Figure:
    """The rollout from the first test window against the truth and the persistence baseline."""
    k = len(fc.rollout)
    mse = fc.rollout_errors.mean().item()
    fig, ax = _series_figure(
        f"rollout: {k} predictions fed back from the first test window (MSE {mse:.3g})"
    )
    horizon = fc.index[:k]
    for c, name in enumerate(CHANNELS):
        color = CHANNEL_COLORS[name]
        ax.plot(fc.context_index, fc.context[:, c], "o", color=color, ms=3)
        ax.plot(horizon, fc.truth[:k, c], color=color, lw=3, alpha=0.35, label=f"{name} truth")
        ax.plot(horizon, fc.rollout[:, c], "--", color=color, lw=1.2, label=f"{name} rollout")
        ax.plot(horizon, fc.persistence[:, c], ":", color=color, lw=1.0)
    ax.plot([], [], "o", color="gray", ms=3, label="context")
    ax.plot([], [], ":", color="gray", label="persistence")
    _legend(ax)
    return fig


def rollout_error_figure(fc: Forecasts) -> Figure:
    """Squared error against horizon: how fast the fed-back predictions drift."""
    mean = fc.rollout_errors.mean().item()
    fig, ax = _figure(f"rollout error against horizon (mean {mean:.3g})", "horizon (steps ahead)")
    horizon = torch.arange(1, len(fc.rollout) + 1)
    ax.semilogy(horizon, fc.rollout_errors, color="tab:red", label="rollout")
    ax.semilogy(horizon, fc.persistence_errors, ":", color="tab:purple", label="persistence")
    ax.set_ylabel("squared error")
    ax.yaxis.set_minor_locator(NullLocator())  # log minor ticks cost more than the rest
    ax.legend(loc="lower right", fontsize=8)
    return fig


def forecast_figures(fc: Forecasts) -> dict[str, Figure]:
    """The figures that change as the model trains, by name."""
    return {
        "predictions": predictions_figure(fc),
        "rollout": rollout_figure(fc),
        "rollout_error": rollout_error_figure(fc),
    }


def final_figures(
    model: Forecaster, dm: SinCosDataModule, rollout_steps: int | None = None
) -> dict[str, Figure]:
    """The figures of a finished run, by name: the data and the forecast figures."""
    fc = forecast_test_split(model, dm, rollout_steps)
    return {"data": data_figure(dm.series, dm.bounds), **forecast_figures(fc)}


def to_png(fig: Figure) -> bytes:
    """Render once to PNG bytes: the same bytes go to TensorBoard and to ``figures/*.png``."""
    buf = io.BytesIO()
    # zlib level 1: a fifth larger files than the default 6, and a third less encoding time
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    return buf.getvalue()
