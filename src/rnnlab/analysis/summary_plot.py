"""``summary.png``: each configuration's spread across its networks (rnnlab.analysis.groups).

A grid sweep: one column per configuration, grouped by the values of its factors (the first
factor's values as labelled blocks, one panel per cell when ``model`` is swept); each finished
network a point, the geometric mean of the finished ones with its 95% interval as an error bar;
log y. Networks that diverged or failed are counted in the labels and marked with a red x at
the top. Never lines across seeds: seeds are replicates, not an axis.

A searched factor (Optuna's ``model.lr``: more than :data:`jobs.MANY_VALUES` distinct numbers)
is a scatter of every network against its value (log x), one panel per searched factor.
The naive baseline (persistence, or the mean on the adding problem) is a dotted line.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rnnlab import metrics as M
from rnnlab.analysis import groups
from rnnlab.analysis.jobs import NAIVE_BASELINES, Job, present_baselines

METRIC = M.TEST_MSE
FAIL_COLOR = "tab:red"
POINT_COLOR = "tab:blue"
WIDTH = 11.0  # inches; at 100 dpi: 1100 px
MAX_PER_ROW = 24  # configurations in one panel row before it wraps


def plot_summary(jobs: list[Job], path: Path) -> None:
    keys = groups.factors(jobs)
    nets = groups.networks(jobs, keys)
    fig = Figure(layout="constrained")
    continuous = [k for k in keys if groups.is_continuous(nets, k)]
    if continuous:
        _plot_search(fig, nets, keys, continuous, _baseline(jobs, nets))
    else:
        _plot_configurations(fig, nets, keys, _baseline(jobs, nets))
    fig.savefig(path, dpi=100)


def _baseline(jobs: list[Job], nets: pd.DataFrame) -> tuple[str, float | None]:
    """The task's naive baseline: its name and the median over the networks."""
    metric, name = next(iter(present_baselines(jobs, NAIVE_BASELINES)), NAIVE_BASELINES[-1])
    values = nets[metric].dropna()
    return name, float(values.median()) if len(values) else None


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ok(nets: pd.DataFrame) -> pd.DataFrame:
    return nets[(nets["status"] == groups.FINISHED) & (nets[METRIC] > 0)]


def _configurations(nets: pd.DataFrame, keys: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    """The configurations in the sweep's value order (first factor outermost)."""
    if not keys:
        return [((), nets)] if len(nets) else []
    order = {k: {v: i for i, v in enumerate(groups.factor_values(nets, k))} for k in keys}
    configs = [
        (value if isinstance(value, tuple) else (value,), group)
        for value, group in nets.groupby(keys, sort=False, dropna=False)
        if len(group)
    ]
    return sorted(configs, key=lambda c: [order[k][v] for k, v in zip(keys, c[0], strict=True)])


def _plot_configurations(fig: Figure, nets: pd.DataFrame, keys: list[str], baseline) -> None:
    panel_key = "model" if "model" in keys and len(keys) > 1 else None
    rest = [k for k in keys if k != panel_key]
    panels = groups.factor_values(nets, panel_key) if panel_key else [None]
    per_panel = {
        p: _configurations(nets if p is None else nets[nets[panel_key] == p], rest) for p in panels
    }
    widest = max((len(c) for c in per_panel.values()), default=1)
    rows_per_panel = -(-widest // MAX_PER_ROW) if widest else 1
    # Tick labels: the factors below the outermost one (which labels its block), one per line.
    inner = rest[1:] if len(rest) > 1 else rest
    label_lines = len(inner) + 1  # + the n/diverged line
    fig.set_size_inches(WIDTH, (2.3 + 0.16 * label_lines) * len(panels) * rows_per_panel + 0.9)
    axes = fig.subplots(len(panels) * rows_per_panel, 1, squeeze=False, sharey=True)[:, 0]
    base_name, base_value = baseline
    any_bad = False
    for i, p in enumerate(panels):
        configs = per_panel[p]
        for r in range(rows_per_panel):
            ax = axes[i * rows_per_panel + r]
            chunk = configs[r * MAX_PER_ROW : (r + 1) * MAX_PER_ROW]
            any_bad |= _draw_configurations(ax, chunk, rest, inner)
            if base_value is not None:
                ax.axhline(base_value, color="grey", linestyle=":", linewidth=1)
            title = f"{panel_key}={p}" if panel_key else ""
            if rows_per_panel > 1:
                title += f" ({r + 1}/{rows_per_panel})"
            if title:
                ax.set_title(title, fontsize=10, loc="left", pad=14, fontweight="bold")
    fig.supylabel(f"{METRIC} (log)", fontsize=10)
    n_text = ", ".join(rest) if rest else "the only configuration"
    fig.suptitle(
        f"{METRIC} per configuration: each network a point, the geometric mean with its 95% "
        f"t-interval\nconfigurations: {n_text}",
        fontsize=11,
    )
    handles = [
        Line2D([], [], color=POINT_COLOR, marker="o", linestyle="none", alpha=0.6, label="network"),
        Line2D([], [], color="black", marker="_", markersize=12, label="geometric mean, 95% CI"),
        Line2D([], [], color="grey", linestyle=":", label=f"{base_name} (median)"),
    ]
    if any_bad:
        handles.append(
            Line2D([], [], color=FAIL_COLOR, marker="x", linestyle="none", label="diverged/failed")
        )
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)


def _draw_configurations(ax, configs, rest: list[str], inner: list[str]) -> bool:
    """Draw one panel's configurations; True when some network did not finish."""
    rng = np.random.default_rng(0)  # the jitter only: the same sweep gives the same picture
    ticks, labels, blocks, any_bad = [], [], [], False
    x = 0.0
    previous = object()
    for value, group in configs:
        setting = dict(zip(rest, value, strict=True))
        outer = value[0] if len(rest) > 1 else None
        if len(rest) > 1 and outer != previous:
            if ticks:
                x += 0.6  # a gap between the outermost factor's blocks
            blocks.append([x, x, f"{rest[0]}={_value(outer)}"])
            previous = outer
        ok = _ok(group)
        ys = ok[METRIC].to_numpy(float)
        if len(ys):
            jitter = rng.uniform(-0.18, 0.18, len(ys))
            ax.plot(x + jitter, ys, "o", color=POINT_COLOR, alpha=0.55, markersize=4, zorder=2)
            # the geometric mean: the effects' scale, and a log axis shows its interval whole
            mean, low, high = groups.stats.geometric_interval(ys)
            err = [[mean - low], [high - mean]] if low is not None else None
            ax.errorbar(
                x,
                mean,
                yerr=err,
                fmt="_",
                color="black",
                markersize=14,
                capsize=4,
                elinewidth=1.5,
                zorder=3,
            )
        bad = len(group) - len(ok)
        if bad:
            any_bad = True
            ax.plot(
                x,
                0.97,
                "x",
                color=FAIL_COLOR,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                markersize=7,
            )
        lines = [_value(setting[k]) for k in inner]
        count = f"n={len(group)}" + (f", {bad} bad" if bad else "")
        ticks.append(x)
        labels.append("\n".join([*lines, count]))
        if blocks:
            blocks[-1][1] = x
        x += 1.0
    ax.set_yscale("log")
    ax.set_ymargin(0.12)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_xticks(ticks, labels, fontsize=8 if len(ticks) <= 12 else 7)
    ax.set_xlim(-0.6, max(x - 0.4, 0.6))
    if inner:
        ax.set_xlabel(" / ".join(inner) + " / networks (bad: diverged or failed)", fontsize=8)
    for start, end, text in blocks:
        ax.annotate(
            text,
            xy=((start + end) / 2, 1.0),
            xycoords=ax.get_xaxis_transform(),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            color="dimgrey",
        )
        if start > 0:
            ax.axvline(start - 0.8, color="lightgrey", linewidth=1)
    if not ticks:
        ax.text(0.5, 0.5, "no networks yet", ha="center", va="center", transform=ax.transAxes)
    return any_bad


def _plot_search(fig: Figure, nets: pd.DataFrame, keys, continuous: list[str], baseline) -> None:
    """Each network against each searched factor's value; colour by a gridded factor."""
    colour_key = next((k for k in keys if k not in continuous), None)
    colours = groups.factor_values(nets, colour_key) if colour_key else [None]
    cmap = matplotlib.colormaps["viridis"]
    colour_of = {c: cmap(i / max(len(colours) - 1, 1) * 0.85) for i, c in enumerate(colours)}
    fig.set_size_inches(WIDTH, 4.2 * len(continuous) + 0.6)
    axes = fig.subplots(len(continuous), 1, squeeze=False)[:, 0]
    base_name, base_value = baseline
    for ax, key in zip(axes, continuous, strict=True):
        ok = _ok(nets)
        for c in colours:
            part = ok if c is None else ok[ok[colour_key] == c]
            bad = nets[nets["status"] != groups.FINISHED]
            bad = bad if c is None else bad[bad[colour_key] == c]
            label = f"{colour_key}={_value(c)}" if c is not None else "network"
            total = len(part) + len(bad)
            label += f" ({len(bad)} of {total} diverged/failed)" if len(bad) else f" (n={total})"
            ax.plot(part[key], part[METRIC], "o", color=colour_of[c], alpha=0.7, label=label)
            if len(bad):
                ax.plot(
                    bad[key],
                    [0.97] * len(bad),
                    "x",
                    color=FAIL_COLOR,
                    transform=ax.get_xaxis_transform(),
                    clip_on=False,
                )
        if base_value is not None:
            ax.axhline(
                base_value, color="grey", linestyle=":", linewidth=1, label=f"{base_name} (median)"
            )
        values = nets[key]
        if values.min() > 0 and values.max() / values.min() >= 4:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ymargin(0.12)
        ax.set_xlabel(key)
        ax.set_ylabel(f"{METRIC} (log)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        f"{METRIC} of every network against the searched "
        + ", ".join(continuous)
        + " (red x at the top: diverged or failed); lower is better",
        fontsize=11,
    )
