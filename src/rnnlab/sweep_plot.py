"""``summary.png``: a sweep's test MSE, drawn so that the swept factors compare at a glance.

One panel per cell and loss mode; along x the sweep's main numeric factor (sequence length
first); one line per hidden size (colour) and nonlinearity (line style); log scales; the
naive baseline dotted (persistence, or the mean on the adding problem); jobs that diverged or
failed marked at the top of their panel.
A sweep without a numeric factor gets a ranked dot chart instead.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rnnlab import metrics as M
from rnnlab.jobs import (
    MANY_VALUES,
    NAIVE_BASELINES,
    Job,
    as_number,
    present_baselines,
    ranked,
    swept_factors,
    value_order,
)

#: Which numeric factor goes along x, in order of preference.
PREFERRED_X = ("data.seq_len", "model.hidden_size", "model.num_layers", "model.lr")
COLOR_KEY, STYLE_KEY = "model.hidden_size", "model.nonlinearity"
STYLES = ("-", "--", ":", "-.")
FAIL_COLOR = "tab:red"


def plot_summary(jobs: list[Job], path: Path) -> None:
    fig = Figure(layout="constrained")
    factors = swept_factors(jobs)
    numeric = [f for f in factors if all(as_number(j.overrides.get(f)) is not None for j in jobs)]
    if numeric:
        _plot_panels(fig, jobs, factors, _x_key(jobs, numeric))
    else:
        _plot_ranking(fig, jobs, factors)
    fig.savefig(path, dpi=100)


def _distinct(jobs: list[Job], key: str) -> list[str]:
    return value_order(job.overrides.get(key, "") for job in jobs)


def _x_key(jobs: list[Job], numeric: list[str]) -> str:
    continuous = [f for f in numeric if len(_distinct(jobs, f)) > MANY_VALUES]
    preferred = [f for f in PREFERRED_X if f in numeric]
    return (continuous or preferred or numeric)[0]


def _naive_baseline(jobs: list[Job]) -> tuple[str, str]:
    """The task's naive baseline: persistence for a forecast, else the mean (adding problem)."""
    return next(iter(present_baselines(jobs, NAIVE_BASELINES)), NAIVE_BASELINES[-1])


def _test_mse(job: Job) -> float | None:
    return job.metric(M.TEST_MSE) if job.status == "ok" else None


def _plot_panels(fig: Figure, jobs: list[Job], factors: list[str], x_key: str) -> None:
    keys = _panel_keys(jobs)
    cells = value_order(k[0] for k in keys if k)
    losses = value_order(k[1] for k in keys if k)
    colors = _distinct(jobs, COLOR_KEY) if COLOR_KEY in factors and x_key != COLOR_KEY else [None]
    styles = _distinct(jobs, STYLE_KEY) if STYLE_KEY in factors and x_key != STYLE_KEY else [None]
    styles.sort(key=lambda v: v != "tanh")  # the default nonlinearity gets the solid line
    cmap = matplotlib.colormaps["viridis"]
    color_of = {c: cmap(i / max(len(colors) - 1, 1) * 0.85) for i, c in enumerate(colors)}
    points_only = len(_distinct(jobs, x_key)) > MANY_VALUES

    # Cells down, loss modes across; with one loss mode, cells across.
    panels = [(cell, loss) for cell in cells for loss in losses]
    ncols = len(losses) if len(losses) > 1 else min(len(cells), 3)
    nrows = -(-len(panels) // ncols)
    fig.set_size_inches(max(3.6 * ncols + 1.6, 7.0), 2.8 * nrows + 0.8)  # room for the title
    baseline, baseline_name = _naive_baseline(jobs)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).flat
    aggregated = False
    for (cell, loss), ax in zip(panels, axes, strict=False):  # panels first: ax stays
        panel = [j for j, key in zip(jobs, keys, strict=True) if key == (cell, loss)]
        for color in colors:
            for i, style in enumerate(styles):
                series = [
                    j
                    for j in panel
                    if color in (None, j.overrides.get(COLOR_KEY))
                    and style in (None, j.overrides.get(STYLE_KEY))
                ]
                xs, ys, many = _medians(series, x_key)
                aggregated |= many
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    markersize=4,
                    linestyle="none" if points_only else STYLES[i % len(STYLES)],
                    color=color_of[color],
                )
        bad = [
            float(j.overrides[x_key]) for j in panel if j.status != "ok" and x_key in j.overrides
        ]
        if bad:  # drawn at the top of the panel: x in data units, y in axes units
            top = ax.get_xaxis_transform()
            ax.plot(bad, [0.96] * len(bad), "x", color=FAIL_COLOR, transform=top, clip_on=False)
        base = [v for j in panel if (v := j.metric(baseline)) is not None]
        if base:
            ax.axhline(statistics.median(base), color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{cell}, loss={loss}", fontsize=10)
        ax.set_yscale("log")
        ax.set_ymargin(0.15)  # room for the diverged/failed marks at the top
        ax.grid(True, alpha=0.3)
    for ax in axes:  # the rest of the grid, if any
        ax.set_visible(False)
    fig.supxlabel(x_key, fontsize=10)
    fig.supylabel(M.TEST_MSE, fontsize=10)
    _format_x(fig.axes[0], [float(x) for x in _distinct(jobs, x_key)], points_only)
    how = "median over the jobs at each point" if aggregated else "one job per point"
    fig.suptitle(f"{M.TEST_MSE} by {x_key} ({how}); lower is better", fontsize=11)
    fig.legend(
        handles=_legend(colors, styles, color_of, baseline_name),
        loc="outside right center",
        fontsize=8,
        frameon=False,
    )


def _panel_keys(jobs: list[Job]) -> list[tuple[str, str] | None]:
    """``(cell, loss mode)`` per job. A job that never wrote its config (``missing``) joins the
    only cell or loss mode the sweep has, else no panel (the tables still list it)."""
    known = [
        (job.setting("model.cell", override="model"), job.setting("model.loss")) for job in jobs
    ]
    cells = {str(c) for c, _ in known if c is not None}
    losses = {str(loss) for _, loss in known if loss is not None}

    def fill(value: object, options: set[str]) -> str | None:
        if value is not None:
            return str(value)
        return next(iter(options)) if len(options) == 1 else None

    keys = [(fill(c, cells), fill(loss, losses)) for c, loss in known]
    return [(c, loss) if c and loss else None for c, loss in keys]


def _medians(series: list[Job], x_key: str) -> tuple[list[float], list[float], bool]:
    """Median test MSE of the finished jobs at each x; whether any point had several jobs."""
    xs, ys, many = [], [], False
    for x in _distinct(series, x_key):
        values = [
            v for j in series if j.overrides.get(x_key) == x and (v := _test_mse(j)) is not None
        ]
        many |= len(values) > 1
        if values:
            xs.append(float(x))
            ys.append(statistics.median(values))
    return xs, ys, many


def _format_x(ax, xs: list[float], points_only: bool) -> None:
    """Log x when the values span a factor of 4 or more; ticks at the swept values."""
    if min(xs) > 0 and max(xs) / min(xs) >= 4:
        ax.set_xscale("log", base=2 if all(x == int(x) for x in xs) else 10)
    if not points_only:
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.minorticks_off()


def _legend(colors: list, styles: list, color_of: dict, baseline: str) -> list[Line2D]:
    handles = []
    if colors != [None]:
        handles += [
            Line2D([], [], color=color_of[c], marker="o", label=f"hidden {c}") for c in colors
        ]
    if styles != [None]:
        handles += [
            Line2D([], [], color="black", linestyle=STYLES[i % len(STYLES)], label=s)
            for i, s in enumerate(styles)
        ]
    handles += [
        Line2D([], [], color="grey", linestyle=":", label=baseline),
        Line2D([], [], color=FAIL_COLOR, marker="x", linestyle="none", label="diverged/failed"),
    ]
    return handles


def _plot_ranking(fig: Figure, jobs: list[Job], factors: list[str]) -> None:
    """Without a numeric factor: one point per job, best (by the objective) on top."""
    order = ranked(jobs)
    fig.set_size_inches(8, 1.2 + 0.3 * max(len(order), 1))
    ax = fig.subplots()
    labels = [
        " ".join(f"{k}={j.overrides.get(k, '')}" for k in factors) or j.path.name for j in order
    ]
    values = [_test_mse(j) for j in order]
    done = [(v, y) for y, v in enumerate(values) if v is not None]
    if done:
        ax.plot(*zip(*done, strict=True), "o")
    for y, (job, value) in enumerate(zip(order, values, strict=True)):
        if value is None:
            ax.text(0.01, y, job.status, transform=ax.get_yaxis_transform(), color=FAIL_COLOR)
    baseline, baseline_name = _naive_baseline(jobs)
    base = [v for j in jobs if (v := j.metric(baseline)) is not None]
    if base:
        ax.axvline(statistics.median(base), color="grey", linestyle=":", label=baseline_name)
        ax.legend(fontsize=8)
    ax.set_yticks(range(len(order)), labels, fontsize=8)
    ax.invert_yaxis()
    if done:
        ax.set_xscale("log")
    ax.set_xlabel(f"{M.TEST_MSE} (lower is better)")
    ax.set_title("jobs ranked by " + M.VAL_MSE_BEST, fontsize=11)
