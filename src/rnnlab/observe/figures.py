"""The figures a person looks at to judge a forecaster: the data, one-step predictions, the
autoregressive rollout and its error against horizon.

Figures are built on ``matplotlib.figure.Figure`` directly (the Agg canvas, no pyplot), so no
GUI backend or global figure registry is involved and nothing needs closing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from rnnlab.config.choices import SPLIT_NAMES
from rnnlab.observe.rollout import Forecasts, forecasts

SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
#: The colour of each channel, in order (sin, cos: blue, orange), cycled beyond ten.
CHANNEL_COLORS = tuple(
    f"tab:{c}"
    for c in ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray", "olive", "cyan")
)
#: 900 x 450 px: readable in a TensorBoard card and in the README, still quick to encode.
SIZE = (9.0, 4.5)
DPI = 100


def run_label(model: Any) -> str:
    """The run a figure belongs to, for its title: cell, activation and size."""
    hp = model.hparams
    layers = f" x {hp.num_layers} layers" if hp.num_layers > 1 else ""
    return f"{hp.cell} cell, {hp.nonlinearity}, hidden {hp.hidden_size}{layers}, loss={hp.loss}"


def job_label(model: Any, seeds: Sequence[int]) -> str:
    """:func:`run_label`, and how many replicas a job of several trains."""
    label = run_label(model)
    return label if len(seeds) == 1 else f"{label}, {len(seeds)} replicas"


def _figure(
    title: str, label: str, ylabel: str, xlabel: str = "t (series index)"
) -> tuple[Figure, Axes]:
    """One axes with fixed margins (a layout engine would triple the drawing time); the title
    says what the figure shows, after the run it belongs to (``label``)."""
    fig = Figure(figsize=SIZE, dpi=DPI)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.86)
    ax = fig.add_subplot()
    ax.set_title(f"{label}\n{title}" if label else title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig, ax


def _color(c: int) -> str:
    return CHANNEL_COLORS[c % len(CHANNEL_COLORS)]


def _series_figure(
    title: str, label: str, names: Sequence[str], values: Sequence[torch.Tensor], units: str = ""
) -> tuple[Figure, Axes]:
    """Axes for the channels ``names``, from the lowest to the highest of ``values`` with room
    above the curves for a one-row legend (sin and cos: -1.2 to 1.65).

    Three y ticks: tick labels are most of the drawing time."""
    ylabel = "value of " + ", ".join(names) + (f" ({units})" if units else "")
    fig, ax = _figure(title, label, ylabel)
    finite = torch.cat([v.reshape(-1).double() for v in values])
    finite = finite[finite.isfinite()]
    low, high = (finite.min().item(), finite.max().item()) if len(finite) else (-1.0, 1.0)
    span = high - low or 1.0
    ax.set_ylim(low - 0.1 * span, high + 0.325 * span)
    ax.set_yticks([low, (low + high) / 2, high] if high > low else [low])
    ax.yaxis.set_major_formatter("{x:.3g}")
    ax.grid(axis="y", lw=0.5, alpha=0.5)
    return fig, ax


def _legend(ax: Axes) -> None:
    ax.legend(
        loc="upper center", ncol=6, fontsize=8, frameon=False, handlelength=1.5, columnspacing=1
    )


def data_figure(
    series: torch.Tensor,
    bounds: list[tuple[int, int]],
    label: str = "",
    names: Sequence[str] = ("sin", "cos"),
    units: str = "",
) -> Figure:
    """Each channel over the whole series, the train/val/test ranges shaded and labelled."""
    shown = "[" + ", ".join(names) + "]"
    fig, ax = _series_figure(
        f"data: {shown} and the time-ordered splits", label, names, [series], units
    )
    t = torch.arange(len(series))
    for c, name in enumerate(names):
        ax.plot(t, series[:, c], color=_color(c), lw=0.8, label=name)
    for name, (lo, hi) in zip(SPLIT_NAMES, bounds, strict=True):
        ax.axvspan(lo, hi, color=SPLIT_COLORS[name], alpha=0.15, lw=0, label=name)
    _legend(ax)
    return fig


def predictions_figure(fc: Forecasts, label: str = "") -> Figure:
    """One-step predictions against the truth on the test split, as the concat cell's source
    text draws them."""
    mse = torch.mean((fc.one_step - fc.truth) ** 2).item()
    fig, ax = _series_figure(
        f"one-step predictions on the test split (MSE {mse:.3g})",
        label,
        fc.names,
        [fc.truth, fc.one_step],
        fc.units,
    )
    for c, name in enumerate(fc.names):
        color = _color(c)
        ax.plot(fc.index, fc.truth[:, c], color=color, lw=3, alpha=0.35, label=f"{name} truth")
        ax.plot(fc.index, fc.one_step[:, c], "--", color=color, lw=1.2, label=f"{name} predicted")
    _legend(ax)
    return fig


def rollout_figure(fc: Forecasts, label: str = "") -> Figure:
    """The rollout from the first test window against the truth and the persistence baseline."""
    k = len(fc.rollout)
    mse = fc.rollout_errors.mean().item()
    fig, ax = _series_figure(
        f"rollout: {k} predictions fed back from the first test window (MSE {mse:.3g})",
        label,
        fc.names,
        [fc.context, fc.truth[:k], fc.rollout],
        fc.units,
    )
    horizon = fc.index[:k]
    for c, name in enumerate(fc.names):
        color = _color(c)
        ax.plot(fc.context_index, fc.context[:, c], "o", color=color, ms=3)
        ax.plot(horizon, fc.truth[:k, c], color=color, lw=3, alpha=0.35, label=f"{name} truth")
        ax.plot(horizon, fc.rollout[:, c], "--", color=color, lw=1.2, label=f"{name} rollout")
        ax.plot(horizon, fc.persistence[:, c], ":", color=color, lw=1.0)
    ax.plot([], [], "o", color="gray", ms=3, label="context")
    ax.plot([], [], ":", color="gray", label="persistence")
    _legend(ax)
    return fig


def rollout_error_figure(fc: Forecasts, label: str = "") -> Figure:
    """Squared error against horizon: how fast the fed-back predictions drift."""
    mean = fc.rollout_errors.mean().item()
    title = f"rollout error against horizon (mean {mean:.3g})"
    fig, ax = _figure(title, label, "squared error", "horizon (steps ahead)")
    horizon = torch.arange(1, len(fc.rollout) + 1)
    ax.semilogy(horizon, fc.rollout_errors, color="tab:red", label="rollout")
    ax.semilogy(horizon, fc.persistence_errors, ":", color="tab:purple", label="persistence")
    ax.yaxis.set_minor_locator(NullLocator())  # log minor ticks cost more than the rest
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _median_in_range(ax: Axes, x: Any, rows: torch.Tensor, color: str, **style: Any) -> None:
    """The median over ``rows`` (one per replica) inside the band from their lowest to highest."""
    band = f"range over {len(rows)} replicas"
    ax.fill_between(x, rows.amin(0), rows.amax(0), color=color, alpha=0.2, label=band)
    ax.semilogy(x, rows.median(0).values, color=color, label="median", **style)


def grad_flow_figure(norms: list[list[float]], label: str = "", when: str = "") -> Figure:
    """``||dL/dh_t||`` against t, log scale (one list per network): how much of the last
    step's loss gradient reaches each step of the window (vanishing gradients fall away to the
    left). For several networks the median across them, inside the band from the lowest to the
    highest."""
    fig, ax = _figure(
        f"gradient reaching each step of the window, {when}", label, "||dL/dh_t||", "t (step)"
    )
    # a step with no gradient at all (the concat readout reads h_{t-1}, not h_t) is left out
    per_step = torch.tensor(norms, dtype=torch.float64)
    per_step = per_step.where(per_step > 0, torch.nan)
    steps = range(1, per_step.shape[1] + 1)
    if len(per_step) > 1:
        _median_in_range(ax, steps, per_step, "tab:purple", marker="o", ms=3)
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.semilogy(steps, per_step[0], marker="o", ms=3, color="tab:purple")
    ax.yaxis.set_minor_locator(NullLocator())
    return fig


def replica_rollout_figure(fcs: Sequence[Forecasts], label: str = "") -> Figure:
    """Every replica's rollout from the first test window inside their band (the lowest to
    the highest), against the truth."""
    k = len(fcs[0].rollout)
    mses = torch.tensor([fc.rollout_errors.mean().item() for fc in fcs])
    fig, ax = _series_figure(
        f"rollouts of {len(fcs)} replicas, {k} predictions fed back from the first test window "
        f"(median MSE {mses.median().item():.3g})",
        label,
        fcs[0].names,
        [fcs[0].truth[:k], *(fc.rollout for fc in fcs)],
        fcs[0].units,
    )
    horizon = fcs[0].index[:k]
    for c, name in enumerate(fcs[0].names):
        color = _color(c)
        ax.plot(horizon, fcs[0].truth[:k, c], color=color, lw=3, alpha=0.35, label=f"{name} truth")
        rows = torch.stack([fc.rollout[:, c] for fc in fcs])
        ax.fill_between(horizon, rows.amin(0), rows.amax(0), color=color, alpha=0.12, lw=0)
        for i, fc in enumerate(fcs):
            ax.plot(
                horizon,
                fc.rollout[:, c],
                "--",
                color=color,
                lw=0.8,
                alpha=0.6,
                label=f"{name} rollouts" if i == 0 else None,
            )
    _legend(ax)
    return fig


def replica_rollout_error_figure(fcs: Sequence[Forecasts], label: str = "") -> Figure:
    """The rollout's squared error against horizon: the replicas' median inside their range."""
    errors = torch.stack([fc.rollout_errors for fc in fcs]).double()
    median = errors.mean(1).median().item()
    title = f"rollout error against horizon, {len(fcs)} replicas (median of means {median:.3g})"
    fig, ax = _figure(title, label, "squared error", "horizon (steps ahead)")
    horizon = torch.arange(1, errors.shape[1] + 1)
    _median_in_range(ax, horizon, errors, "tab:red")
    ax.semilogy(horizon, fcs[0].persistence_errors, ":", color="tab:purple", label="persistence")
    ax.yaxis.set_minor_locator(NullLocator())
    ax.legend(loc="lower right", fontsize=8)
    return fig


def forecast_figures(fcs: Sequence[Forecasts], label: str = "") -> dict[str, Figure]:
    """The figures that change as the networks train, by name (one Forecasts per network): of
    one network its one-step predictions, rollout and rollout error; of several their rollouts
    and rollout errors."""
    if len(fcs) == 1:
        (fc,) = fcs
        return {
            "predictions": predictions_figure(fc, label),
            "rollout": rollout_figure(fc, label),
            "rollout_error": rollout_error_figure(fc, label),
        }
    return {
        "rollout": replica_rollout_figure(fcs, label),
        "rollout_error": replica_rollout_error_figure(fcs, label),
    }


def final_figures(
    predict: Any,
    dm: Any,
    label: str,
    seeds: Sequence[int],
    rollout_steps: int | None = None,
) -> dict[str, Figure]:
    """The figures of a finished job, by name: the data of its first network, and the forecast
    figures of the tested weights (``predict``: a module's ``networks(tested=True).predict``,
    its networks of ``seeds`` on ``dm``)."""
    fcs = forecasts(predict, dm, rollout_steps)
    first = dm.members[0]
    data_label = label if len(seeds) == 1 else f"{label}: seed {seeds[0]}"
    return {
        "data": data_figure(first.series, first.bounds, data_label, fcs[0].names, fcs[0].units),
        **forecast_figures(fcs, label),
    }


def to_png(fig: Figure) -> bytes:
    """Render once to PNG bytes: the same bytes go to TensorBoard and to ``figures/*.png``."""
    buf = io.BytesIO()
    # zlib level 1: a fifth larger files than the default 6, and a third less encoding time
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    return buf.getvalue()
