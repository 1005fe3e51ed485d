"""The answers of one or more sweeps (the study presets, conf/study/), with their intervals, in
``report.md`` and its figures; written by ``python -m rnnlab.report DIR [DIR ...]``
(rnnlab.report). The methods, and why: docs/statistics.md.

Each sweep directory is one study. Its configurations pool seeds and replicas
(rnnlab.analysis.groups); a swept learning rate is a nuisance: each arm (a configuration without
its lr) is reported at the lr chosen on the *other half* of the seeds (cross-fitting: the seeds
split in two halves by rank, each half reported at the lr the other half's validation error
chose), so that the choice never sees the networks it is judged on; an lr is chosen by the
median ``val/mse_best`` with a diverged network as +inf, so an lr where most networks diverged
loses. A chosen lr at an edge of its grid is flagged. Every factor's effect is then the paired
comparison of its values on the same seeds, the seed as the unit (rnnlab.analysis.groups.paired),
with verdicts Holm-adjusted over the section's comparisons, and again at each common lr.

The sentences are rnnlab.analysis.summary's (one definition for the sweep summary and the
report). The report goes to ``DIR/report/`` of the first directory, or to ``--out``; each
study's ``networks.csv`` and ``groups.csv`` are copied beside its figures as
``<study>_networks.csv`` and ``<study>_groups.csv``.
"""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rnnlab import metrics as M
from rnnlab.analysis import groups, stats
from rnnlab.analysis.jobs import Job, collect
from rnnlab.analysis.networks import DIVERGED, EXPLODED_MULTIPLE
from rnnlab.analysis.summary import TABLE_NOTE, effect_sentence, verdict_text
from rnnlab.analysis.text import NA, fmt, fmt_worst, markdown_table, value_order

LR = "model.lr"
TASK = "data"  # a study over several tasks answers within each (never "adding vs sincos")


def _by_task(nets: pd.DataFrame, arms: list[str]) -> list[tuple[Any, pd.DataFrame]]:
    """The networks of each task when the study swept ``data=``, else all of them."""
    if TASK not in arms:
        return [(None, nets)]
    return [(task, nets[nets[TASK] == task]) for task in groups.factor_values(nets, TASK)]


DPI = 100


def _cell(value: Any) -> str:
    """A table value: numbers as every text of the analysis writes them, counts and names as
    they are."""
    return fmt(value) if isinstance(value, float) else str(value)


def halves(nets: pd.DataFrame) -> dict[Any, int]:
    """Each seed's half (0 or 1): the seeds in ascending order, alternately."""
    seeds = sorted(int(x) for x in nets["seed"].dropna().unique())
    return {seed: i % 2 for i, seed in enumerate(seeds)}


def _lr_scores(rows: pd.DataFrame) -> pd.Series:
    """Per lr, the median ``val/mse_best`` of its networks, a diverged one as +inf."""
    trained = rows[rows["status"].isin((groups.FINISHED, DIVERGED))]
    value = np.where(trained["status"] == DIVERGED, np.inf, trained[M.VAL_MSE_BEST].astype(float))
    return trained.assign(v=value).groupby(LR)["v"].median().sort_index()


@dataclass
class LrChoice:
    """An arm's learning rate: the one each half of the seeds is reported at (chosen on the
    other half), and whether a choice sits at an edge of the grid."""

    by_half: dict[int, Any]
    grid: list[Any]
    in_sample: bool = False  # one seed: chosen on the networks it reports

    @property
    def edge(self) -> bool:
        return len(self.grid) > 1 and any(lr in (self.grid[0], self.grid[-1]) for lr in self.chosen)

    @property
    def chosen(self) -> list[Any]:
        return list(dict.fromkeys(self.by_half.values()))

    def text(self) -> str:
        shown = " / ".join(fmt_lr(lr) for lr in self.chosen)
        return shown + (" (edge)" if self.edge else "")


def fmt_lr(lr: Any) -> str:
    return f"{lr:g}" if isinstance(lr, float) else str(lr)


def at_best_lr(
    nets: pd.DataFrame, factors: list[str]
) -> tuple[pd.DataFrame, list[str], dict[tuple, LrChoice]]:
    """The networks of each arm at its learning rate chosen on the other half of the seeds
    (:func:`halves`; with one half empty, on all of them), by the lowest median
    ``val/mse_best`` with a diverged network as +inf; the arm factors; and each arm's
    :class:`LrChoice`."""
    if LR not in factors:
        return nets, factors, {}
    arms = [f for f in factors if f != LR]
    seed_half = halves(nets)
    half = nets["seed"].map(lambda s: seed_half.get(int(s)) if pd.notna(s) else None)
    grid = value_order(nets[LR])  # numbers: ascending
    chosen: dict[tuple, LrChoice] = {}
    keep = []
    for key, rows in nets.groupby(arms, dropna=False, sort=False) if arms else [((), nets)]:
        key = key if isinstance(key, tuple) else (key,)
        by_half = {}
        in_sample = False
        for h in (0, 1):
            other = rows[half[rows.index] == 1 - h]
            in_sample |= other.empty
            scores = _lr_scores(other if len(other) else rows)
            if scores.empty:
                continue
            by_half[h] = scores.idxmin()  # the first (smallest) lr among equal scores
            keep.append(rows[(half[rows.index] == h) & (rows[LR] == by_half[h])])
        chosen[key] = LrChoice(by_half, grid, in_sample)
    selected = pd.concat(keep) if keep else nets.iloc[:0]
    return selected.drop(columns=[LR]), arms, chosen


def forest_figure(title: str, rows: list[tuple[str, dict[str, Any]]]) -> Figure:
    """Each comparison's test MSE ratio with its 95% interval, log scale, 1 = no effect."""
    height = 0.45 * len(rows) + 1.6  # inches: a row per comparison, and room for the labels
    fig = Figure(figsize=(9, height), dpi=DPI)
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1]
    for y, (_, cmp) in zip(ys, rows, strict=True):
        if cmp.get("ratio") is None:
            continue
        low, high = (
            cmp.get("ratio_ci_low") or cmp["ratio"],
            cmp.get("ratio_ci_high") or cmp["ratio"],
        )
        ax.plot([low, high], [y, y], color="tab:blue", lw=2)
        ax.plot([cmp["ratio"]], [y], "o", color="tab:blue")
    ax.axvline(1.0, color="gray", ls=":")
    ax.set_xscale("log")
    ax.set_yticks(ys, [label for label, _ in rows], fontsize=8)
    ax.set_xlabel("test MSE ratio A / B: geometric mean over seeds, 95% t-interval (< 1: A better)")
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(left=0.42, right=0.97, top=1 - 0.45 / height, bottom=0.75 / height)
    return fig


def divergence_figure(nets: pd.DataFrame, clip: str) -> Figure:
    """Against the learning rate, one line per clip value: the share of networks that
    diverged (a non-finite loss, validation MSE or weight, or a finite error past
    rnnlab.analysis.networks.EXPLODED_MULTIPLE times the naive baseline), and the median
    ``val/mse_best`` of the others."""
    fig = Figure(figsize=(10, 4.5), dpi=DPI)
    share, error = fig.subplots(1, 2)
    nets = nets.assign(diverged=(nets["status"] == "diverged").astype(float))
    for value in map(str, groups.factor_values(nets, clip)):
        rows = nets[nets[clip].astype(str) == value]
        label = "no clipping" if value in ("null", "None", "nan") else f"clip at {value}"
        rate = rows.groupby(LR)["diverged"].mean()
        best = rows[rows["status"] == "ok"].groupby(LR)[M.VAL_MSE_BEST].median()
        for ax, series in ((share, rate), (error, best)):
            lrs = np.array([float(x) for x in series.index])
            order = np.argsort(lrs)
            ax.plot(lrs[order], series.to_numpy()[order], marker="o", label=label)
    for ax in (share, error):
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (model.lr)")
    share.set_ylim(-0.05, 1.05)
    share.set_ylabel(f"share diverged (non-finite, or > {EXPLODED_MULTIPLE:g}x baseline)")
    error.set_yscale("log")
    error.set_ylabel("median val/mse_best of the others")
    share.legend(fontsize=8, loc="upper left")  # the shares start at 0 on the left
    fig.suptitle("divergence and error against learning rate, with and without clipping")
    fig.subplots_adjust(left=0.08, right=0.98, wspace=0.3, bottom=0.13, top=0.88)
    return fig


def _log_axes(fig: Figure, ax: Any, xlabel: str, ylabel: str, title: str) -> Figure:
    """Log y, the labels, the title and the legend beside the axes (never over the data): how
    every band figure ends."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.subplots_adjust(left=0.08, right=0.58, top=0.92, bottom=0.12)
    return fig


def grad_flow_bands(jobs: list[Any], label_of: Any, title: str) -> Figure | None:
    """``||dL/dh_t||`` against t: per arm, the median over its networks inside their range."""
    curves: dict[str, list[list[float]]] = {}
    for job in jobs:
        for rec in job.record.get("replicas") or [job.record]:
            norms = (rec.get(M.DIAGNOSTICS) or {}).get(M.GRAD_NORM_BY_STEP)
            if rec.get("status") == "ok" and norms and None not in norms:
                curves.setdefault(label_of(job), []).append(norms)
    if not curves:
        return None
    fig = Figure(figsize=(13, 4.5), dpi=DPI)
    ax = fig.add_subplot()
    for label, rows in curves.items():
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            continue
        arr = np.where(np.array(rows) > 0, np.array(rows), np.nan)
        t = np.arange(1, arr.shape[1] + 1) / arr.shape[1]  # the window as a fraction
        with warnings.catch_warnings():  # a step no gradient reaches (all NaN): left blank
            warnings.simplefilter("ignore", RuntimeWarning)
            ax.fill_between(t, np.nanmin(arr, 0), np.nanmax(arr, 0), alpha=0.15)
            ax.plot(t, np.nanmedian(arr, 0), label=f"{label} (n={len(arr)})")
    return _log_axes(fig, ax, "t / L (position in the window)", "||dL/dh_t||", title)


def learning_curves(
    jobs: list[Any], label_of: Any, title: str, unreadable: list[str] | None = None
) -> Figure | None:
    """Validation MSE against epoch from each job's csv/metrics.csv: the mean over its replicas
    inside their range (``val/mse_replica_min``/``_max``). A file that cannot be read is left
    out, and named in ``unreadable``."""
    fig = Figure(figsize=(13, 4.5), dpi=DPI)
    ax = fig.add_subplot()
    drawn = 0
    for job in jobs:
        path = job.path / "csv" / "metrics.csv"
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path)
            if M.VAL_MSE not in frame:
                continue
            rows = frame.dropna(subset=[M.VAL_MSE]).groupby("epoch").last()
        except (OSError, ValueError, KeyError) as err:  # damaged: cut off, or not a CSV
            if unreadable is not None:
                unreadable.append(f"`{path.relative_to(job.path.parent)}` ({_reason(err)})")
            continue
        line = ax.plot(rows.index + 1, rows[M.VAL_MSE], label=label_of(job))[0]
        low, high = f"{M.VAL_MSE}_replica_min", f"{M.VAL_MSE}_replica_max"
        if low in rows and high in rows:
            ax.fill_between(
                rows.index + 1, rows[low], rows[high], alpha=0.15, color=line.get_color()
            )
        drawn += 1
    if not drawn:
        return None
    return _log_axes(fig, ax, "epoch", "val/mse (mean, range over replicas)", title)


def _network_reach(path: Path, seeds: list[Any]) -> dict[Any, pd.Series]:
    """Each network's ``diagnostics/grad_first_over_last`` against epoch from a job's
    csv/metrics.csv, by seed: 0 at initialisation (the row of step 0), e after epoch e. A job
    of several networks has one column per network (rnnlab.metrics.network_column, replica r
    having ``seeds[r]``); a job of one, the plain column. Empty when the file lacks them."""
    tag = M.diagnostics_tag(M.GRAD_FIRST_OVER_LAST)
    frame = pd.read_csv(path)
    if tag not in frame:
        return {}
    init = frame[frame["epoch"].isna() & (frame["step"] == 0)].assign(epoch=-1)
    rows = pd.concat([init, frame.dropna(subset=["epoch"])]).groupby("epoch").last()
    rows.index = rows.index.astype(int) + 1
    if len(seeds) == 1:
        return {seeds[0]: rows[tag]}
    columns = {seed: M.network_column(tag, r) for r, seed in enumerate(seeds)}
    return {seed: rows[c] for seed, c in columns.items() if c in rows}


def grad_reach_curves(
    jobs: list[Job], selected: pd.DataFrame, arms: list[str], title: str
) -> Figure | None:
    """How much gradient reaches the window's first step (``diagnostics/grad_first_over_last``)
    against epoch, from initialisation: per arm the median over its ``selected`` networks (by
    job and seed: each at its arm's chosen lr), one line per arm, log y. Whether the gradient
    vanished before a network failed, or shrank because it failed, shows in the order of the
    two. None when no job's csv/metrics.csv holds the networks' own values."""
    by_num = {job.num: job for job in jobs}
    curves: dict[str, list[pd.Series]] = {}
    grouped = selected.groupby(arms, sort=False, dropna=False) if arms else [((), selected)]
    for key, rows in grouped:
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{f}={v}" for f, v in zip(arms, key, strict=True)) or "all"
        for num, nets in rows.groupby("job"):
            job = by_num.get(num)
            path = job.path / "csv" / "metrics.csv" if job else None
            if path is None or not path.is_file():
                continue
            replicas = job.record.get("replicas") or [job.record]
            seeds = [rep.get("seed", job.setting("seed")) for rep in replicas]
            try:
                reach = _network_reach(path, seeds)
            except (OSError, ValueError, KeyError):  # damaged: learning_curves names it
                continue
            wanted = {int(s) for s in nets["seed"].dropna()}
            found = [series for seed, series in reach.items() if int(seed) in wanted]
            curves.setdefault(label, []).extend(found)
    curves = {label: found for label, found in curves.items() if found}
    if not curves:
        return None
    fig = Figure(figsize=(13, 4.5), dpi=DPI)
    ax = fig.add_subplot()
    for label, found in curves.items():
        table = pd.concat(found, axis=1)
        table = table.where(table > 0)  # a log axis: a reach of 0 (no gradient) left out
        ax.plot(table.index, table.median(axis=1), label=f"{label} (n={len(found)})")
    return _log_axes(
        fig, ax, "epoch (0: at initialisation)", "grad_first_over_last (median over seeds)", title
    )


def _reason(err: BaseException) -> str:
    return " ".join(str(err).split())[:100] or type(err).__name__


def not_in_report(jobs: list[Job]) -> list[str]:
    """The lines naming each job directory without a readable metrics.json (status ``missing``:
    still running, stopped before writing it, or damaged), which the report cannot count: as
    summary.md names them, so that none vanishes silently."""
    missing = [job for job in jobs if not job.record]
    if not missing:
        return []
    return [
        "",
        f"Not in this report: {len(missing)} job{'s' if len(missing) > 1 else ''} without a "
        f"readable `{M.METRICS_FILE}` (still running, stopped before writing it, or damaged):",
        "",
        *(f"- `{job.path.name}`: {job.error or 'an empty record'}" for job in missing),
    ]


@dataclass(frozen=True)
class Figures:
    """Where the report's figures go, and the relative link report.md uses for them."""

    dir: Path
    prefix: str = ""

    def __truediv__(self, name: str) -> Path:
        return self.dir / name

    def link(self, name: str) -> str:
        return self.prefix + name


def _save(fig: Figure | None, out: Figures, name: str) -> str | None:
    if fig is None:
        return None
    fig.savefig(out / name)
    return out.link(name)


def _arm_mask(nets: pd.DataFrame, arms: list[str], key: tuple) -> pd.Series:
    mask = pd.Series(True, index=nets.index)
    for f, v in zip(arms, key, strict=True):
        mask &= nets[f].astype(str) == str(v)
    return mask


def _rate(k: Any, n: Any, low: Any, high: Any) -> str:
    if pd.isna(k):
        return ""
    return f"{int(k)}/{int(n)} [{fmt(low)}, {fmt(high)}]"


def _with_interval(row: pd.Series, metric: str, stat: str) -> str:
    """A groups-table statistic (``mean`` or ``gmean``) with its interval, as "v [low, high]"."""
    prefix = f"{metric}_" if stat == "mean" else f"{metric}_{stat}_"
    value, low, high = row[f"{metric}_{stat}"], row[prefix + "ci_low"], row[prefix + "ci_high"]
    if pd.isna(value):
        return NA
    return fmt(value) + (f" [{fmt(low)}, {fmt(high)}]" if pd.notna(low) else "")


def _worst(value: Any) -> str:
    return fmt_worst(value) if pd.notna(value) else NA


def arms_table(
    selected: pd.DataFrame, arms: list[str], chosen: dict[tuple, LrChoice], fraction: float
) -> list[str]:
    """One row per arm (its networks at the chosen lr): counts, success, the geometric and
    arithmetic means with their intervals, the median and IQM (diverged as +inf), how much
    gradient reaches the first step, and the arm it duplicates."""
    table = groups.groups_table(selected, arms, fraction)
    t, v = M.TEST_MSE, M.VAL_MSE_BEST
    reach = M.diagnostics_tag(M.GRAD_FIRST_OVER_LAST)
    header = [*arms, "lr (chosen on the other half)"] if chosen else [*arms]
    header += ["n", "diverged"]
    solved = "solved" in table
    if solved:
        header += [f"solved (< {fraction:g}x mean predictor) [95% CI]", "median test MSE of solved"]
    header += [
        f"{t} geometric mean [95% CI]",
        f"{t} mean [95% CI]",
        f"{t} median",
        f"{t} IQM",
        f"{v} median",
    ]
    has_reach = reach in selected and selected[reach].notna().any()
    if has_reach:
        header.append("grad reaching step 1 (median)")
    header.append("same networks as")
    rows = []
    for _, row in table.iterrows():
        key = tuple(row[a] for a in arms)
        cells = [str(row[a]) for a in arms]
        if chosen:
            cells.append(chosen[key].text() if key in chosen else NA)
        cells += [int(row["n"]), f"{int(row['diverged'])}/{int(row['n'])}"]
        if solved:
            cells.append(
                _rate(row["solved"], row["trained"], row["solved_ci_low"], row["solved_ci_high"])
            )
            median = row["solved_test_median"]
            cells.append(fmt(median) if pd.notna(median) else "")
        cells += [
            _with_interval(row, t, "gmean"),
            _with_interval(row, t, "mean"),
            _worst(row[f"{t}_median"]),
            _worst(row[f"{t}_iqm"]),
            _worst(row[f"{v}_median"]),
        ]
        if has_reach:
            ok = selected[_arm_mask(selected, arms, key) & (selected["status"] == "ok")]
            cells.append(fmt(ok[reach].median()) if ok[reach].notna().any() else NA)
        cells.append(row["duplicate_of"] if isinstance(row["duplicate_of"], str) else "")
        rows.append(cells)
    return markdown_table(header, rows)


#: The concat-cell source text's setup (DESIGN: seeds/002): clean sin/cos, windows of 4, loss on
#: the last step; its open question, ReLU instead of tanh "on this dataset", is answered for
#: every study that ran exactly this setup and swept the activation (conf/study/source.yaml).
SOURCE_SETUP = {"data.name": "sincos", "data.noise_std": 0.0, "data.seq_len": 4}
SOURCE_SETUP |= {"model.loss": "last"}
ACTIVATION = "model.nonlinearity"
CELL = "model"
#: The source text's cell: the lead sentence answers for it.
SOURCE_CELL = "concat"


def runs_source_setup(jobs: list[Job], arms: list[str]) -> bool:
    """Whether every job ran the source text's setup (:data:`SOURCE_SETUP`) and the study
    compares tanh with relu."""
    if ACTIVATION not in arms:
        return False
    for job in jobs:
        for key, value in SOURCE_SETUP.items():
            given = job.setting(key)
            number = isinstance(value, float | int)
            if given is None or (float(given) != value if number else str(given) != value):
                return False
    return True


def _cells(nets: pd.DataFrame, arms: list[str]) -> list[tuple[Any, pd.DataFrame]]:
    """The networks of each cell when the study swept ``model=``, else all of them."""
    if CELL not in arms:
        return [(None, nets)]
    return [(cell, nets[nets[CELL] == cell]) for cell in groups.factor_values(nets, CELL)]


def _readout(jobs: list[Job], cell: Any) -> str:
    """A cell's readout as its jobs ran it: "its tanh readout over [h_(t-1), x_t]", "a linear
    readout of h_t"."""
    for job in jobs:
        if cell is None or str(job.overrides.get(CELL, job.cell)) == str(cell):
            form, act = job.setting("model.readout"), job.setting("model.readout_activation")
            if form == "concat":
                return f"its {act} readout over [h_(t-1), x_t]"
            return f"a {'linear' if act == 'identity' else act} readout of h_t"
    return "its readout"


def _lr_of(chosen: dict[tuple, LrChoice], arms: list[str], cell: Any, act: str) -> str:
    key = tuple(act if f == ACTIVATION else cell for f in arms)
    return chosen[key].text() if key in chosen else NA


def _answer(effect: dict[str, Any]) -> str:
    """Does relu help? In one word, from the comparison's Holm-adjusted verdict."""
    return {
        "lower": "Yes",
        "higher": "No, it hurts",
        "equivalent": "No difference",
        "identical": "No difference (the same networks)",
    }.get(effect.get("verdict", ""), "Not decided by these seeds")


def _floor_columns(rows: pd.DataFrame) -> dict[str, str]:
    """An arm's test MSE against the linear least-squares floor (rnnlab.metrics.LINEAR_MSE, per
    network): the medians of the test MSE, the floor, the excess (test - floor) and the ratio
    (test / floor), a diverged network as +inf; and the ratio's geometric mean with its
    interval over the finished networks."""
    test, floor = rows[M.TEST_MSE].astype(float), rows[M.LINEAR_MSE].astype(float)
    rows = rows.assign(excess=test - floor, over_floor=test / floor)
    median = {m: groups._worst_inf(rows, m) for m in (M.TEST_MSE, "excess", "over_floor")}
    median = {m: float(np.median(v)) if len(v) else None for m, v in median.items()}
    ratio = groups._worst_inf(rows, "over_floor")
    g, low, high = stats.geometric_interval(ratio[np.isfinite(ratio)])
    return {
        f"{M.TEST_MSE} median": _worst(median[M.TEST_MSE]),
        f"linear floor ({M.LINEAR_MSE}) median": fmt(float(floor.median())),
        "excess: test - floor, median": _worst(median["excess"]),
        "test / floor, median": _worst(median["over_floor"]),
        "test / floor, geometric mean [95% CI]": NA
        if g is None
        else f"{fmt(g)}" + (f" [{fmt(low)}, {fmt(high)}]" if low is not None else ""),
    }


def source_section(
    jobs: list[Job],
    selected: pd.DataFrame,
    arms: list[str],
    chosen: dict[tuple, LrChoice],
    grid: list[Any],
    margin: float = stats.EQUIVALENCE_MARGIN,
) -> list[str]:
    """The source text's own question, "does ReLU instead of tanh help on this dataset?": per
    cell, relu against tanh on the same seeds, each arm at its cross-fitted lr
    (rnnlab.analysis.groups.paired), Holm-adjusted over the cells (one claim each); a sentence
    for the text's cell from those numbers, and each arm's test MSE beside the linear
    least-squares floor."""
    cells = _cells(selected, arms)
    claims = []
    for cell, rows in cells:
        effect = groups.paired(rows, ACTIVATION, "relu", "tanh", M.TEST_MSE, margin)
        claims.append((cell, effect))
    groups.adjust([e for _, e in claims])
    names = ", ".join(str(c) for c, _ in claims if c is not None) or "one cell"
    family = f"Holm over the section's {len(claims)} claims: {names}"
    grid_text = ", ".join(fmt_lr(v) for v in grid)
    lines = ["### The source text's question: ReLU instead of tanh on this dataset", ""]
    for cell, effect in claims:
        if cell is not None and str(cell) != SOURCE_CELL and len(claims) > 1:
            continue
        what = f"the {cell} cell" if cell is not None else "the cell"
        if effect.get("ratio") is None:
            lines.append(
                f"**Does ReLU instead of tanh help on this dataset?** Not measured for {what}: "
                "no pair of finished networks."
            )
            continue
        low, high = effect["ratio_ci_low"], effect["ratio_ci_high"]
        interval = f" [95% CI {fmt(low)}, {fmt(high)}]" if low is not None else ""
        lines.append(
            f"**Does ReLU instead of tanh help on this dataset?** {_answer(effect)}: for "
            f"{what} as the text trains it ({_readout(jobs, cell)}, loss on the last step, "
            "clean sin/cos, windows of 4), ReLU's test MSE is "
            f"{fmt(effect['ratio'])}x tanh's{interval} (geometric mean ratio, paired on the "
            f"seed, over {effect['n_seeds_ratio']} seeds): {verdict_text(effect)} ({family}); "
            f"each arm at the lr chosen on the other half of the seeds from the grid "
            f"{grid_text} (tanh {_lr_of(chosen, arms, cell, 'tanh')}, relu "
            f"{_lr_of(chosen, arms, cell, 'relu')})."
        )
        break
    lines += ["", f"Each cell ({family}; the 95% intervals are not adjusted):", ""]
    for cell, effect in claims:
        where = f"`{CELL}={cell}` ({_readout(jobs, cell)}): " if cell is not None else ""
        lines.append(f"- {where}{effect_sentence(effect)}")
    lines += [
        "",
        "The test MSE beside the linear least-squares floor (least squares on the window, "
        f"`{M.LINEAR_MSE}`, per network: on clean sin/cos the next point is a fixed rotation of "
        "the last, so the floor is rounding error), each arm at its chosen lr:",
        "",
    ]
    table: list[list[Any]] = []
    header: list[str] = []
    for cell, rows in cells:
        for act in groups.factor_values(rows, ACTIVATION):
            arm = rows[rows[ACTIVATION] == act]
            columns = _floor_columns(arm)
            header = [*([CELL] if cell is not None else []), ACTIVATION, "lr", "n", "diverged"]
            header += list(columns)
            diverged = int((arm["status"] == DIVERGED).sum())
            table.append(
                [
                    *([cell] if cell is not None else []),
                    act,
                    _lr_of(chosen, arms, cell, act),
                    len(arm),
                    f"{diverged}/{len(arm)}",
                    *columns.values(),
                ]
            )
    return [*lines, *markdown_table(header, table), ""]


#: Le, Jaitly & Hinton 2015's adding-problem setting, as the report sets ours beside it.
LE2015 = {
    "sequence length T": "150, 200, 300, 400",
    "training sequences": "100,000",
    "hidden units": "100",
    "optimizer": "SGD with gradient clipping",
}
#: An arm "stays at the mean predictor" when its median test MSE is above this share of it.
AT_MEAN = 0.9


def runs_le2015_setup(jobs: list[Job], nets: pd.DataFrame, arms: list[str]) -> bool:
    """Whether the study compares the IRNN with the tanh RNN (``model=irnn``, ``model=torch``)
    on the adding problem under one optimizer, as Le, Jaitly & Hinton 2015 did."""
    if arms != [CELL] or not {"irnn", "torch"} <= {str(v) for v in nets[CELL].unique()}:
        return False
    return all(job.setting("data.name") == "adding" for job in jobs)


def _median_over_mean(rows: pd.DataFrame) -> float | None:
    """The median over networks of test MSE / the mean predictor's, a diverged one as +inf."""
    if not len(rows):
        return None
    ratio = rows.assign(r=rows[M.TEST_MSE].astype(float) / rows[M.MEAN_MSE].astype(float))
    return float(np.median(groups._worst_inf(ratio, "r")))


def le2015_section(
    jobs: list[Job],
    selected: pd.DataFrame,
    chosen: dict[tuple, LrChoice],
    margin: float = stats.EQUIVALENCE_MARGIN,
    fraction: float = stats.SUCCESS_FRACTION,
) -> list[str]:
    """Le, Jaitly & Hinton 2015's adding-problem finding against this study: their setting and
    ours side by side, each cell's outcome against the mean predictor, the IRNN and the LSTM
    each against the tanh RNN on the same seeds (Holm over the two), and the verdict, each
    sentence from those numbers."""
    job = jobs[0]
    steps = max(int(j.record.get("steps") or 0) for j in jobs)
    clip = job.setting("trainer.gradient_clip_val")
    ours = {
        "sequence length T": job.setting("data.seq_len"),
        "training sequences": job.setting("data.n_train"),
        "hidden units": job.setting("model.hidden_size"),
        "optimizer": {"sgd": "SGD", "adam": "Adam"}.get(str(job.setting("model.optimizer")), "?")
        + (f", clipping at norm {clip}" if clip is not None else ", no clipping")
        + (", a constant lr" if job.setting("model.scheduler") == "none" else ", a cosine lr"),
    }
    rows = [[k, v, ours[k]] for k, v in LE2015.items()]
    batch = job.setting("data.batch_size")
    rows.append(["updates per network", "not restated here", f"{steps}, of {batch} sequences"])
    lines = [
        "### Le, Jaitly & Hinton 2015: the IRNN on the adding problem",
        "",
        "Their finding: on the adding problem the IRNN (ReLU, `W_hh` started at the identity) "
        "learns where a tanh RNN stays at the mean predictor's error (1/6 = 0.167), and the LSTM "
        "learns too. Their setting and this study's:",
        "",
        *markdown_table(["", "Le et al. 2015", "here"], rows),
        "",
    ]
    cells = {str(c): r for c, r in _cells(selected, [CELL])}
    table, at_mean = [], {}
    for cell, arm in cells.items():
        won = groups.success(arm, fraction)
        ratio = _median_over_mean(arm)
        at_mean[cell] = ratio is not None and ratio > AT_MEAN
        diverged = int((arm["status"] == DIVERGED).sum())
        table.append(
            [
                cell,
                _lr_of(chosen, [CELL], cell, ""),
                len(arm),
                f"{diverged}/{len(arm)}",
                f"{won.get('solved', NA)}/{won.get('trained', NA)}",
                fmt_worst(float(np.median(groups._worst_inf(arm, M.TEST_MSE)))),
                _worst(ratio),
            ]
        )
    header = ["model", "lr", "n", "diverged", f"solved (< {fraction:g}x mean predictor)"]
    header += ["test/mse median", "median test / mean predictor"]
    # the same comparisons, and Holm family, as the section's answers (groups.effects)
    claims = [
        (other, groups.paired(selected, CELL, other, "torch", M.TEST_MSE, margin))
        for other in ("irnn", "lstm")
        if other in cells
    ]
    groups.adjust([e for _, e in claims])
    family = f"Holm-adjusted over {len(claims)}"
    irnn = dict(claims).get("irnn", {})
    lower = irnn.get("verdict") == "lower"
    # a significant but small difference between two networks that both stayed at the mean
    # predictor is not their finding
    if at_mean.get("irnn") and at_mean.get("torch"):
        verdict = "Not reproduced at this budget: neither the IRNN nor the tanh RNN left the "
        verdict += "mean predictor (the table's last column): at this budget the study cannot "
        verdict += "test their finding."
    elif lower and at_mean.get("torch"):
        verdict = "Reproduced at this budget: the IRNN's test MSE is below the tanh RNN's, which "
        verdict += "stays at the mean predictor."
    elif lower:
        verdict = "Partly reproduced: the IRNN's test MSE is below the tanh RNN's, but the tanh "
        verdict += "RNN did not stay at the mean predictor."
    else:
        verdict = "Not reproduced: the IRNN's test MSE is not below the tanh RNN's "
        verdict += f"({verdict_text(irnn) if irnn else 'no pair of finished networks'})."
    lines += [
        "Each cell at the lr chosen on the other half of the seeds (the median over networks "
        "counts a diverged one as +inf):",
        "",
        *markdown_table(header, table),
        "",
        f"**Verdict.** {verdict} The IRNN and the LSTM against the tanh RNN on the same seeds "
        f"are the first answers below ({family}).",
        "",
    ]
    return lines


def _short(factor: str) -> str:
    """A factor's name without its group, for crowded legends: ``gradient_clip_val``."""
    return factor.rsplit(".", 1)[-1]


def rates_figure(
    nets: pd.DataFrame, facets: list[str], lines_by: list[str], fraction: float
) -> Figure:
    """Against the learning rate, one panel per combination of ``facets`` (a row per value of
    the first) and one line per combination of ``lines_by``: the share of networks that
    diverged (solid) and the share that solved the task (dashed, under ``fraction`` of the
    mean predictor's MSE)."""
    nets = nets.assign(diverged=(nets["status"] == DIVERGED).astype(float))
    hit = groups.solved(nets, fraction)
    nets = nets.assign(solved=(hit if hit is not None else False))
    nets["solved"] = nets["solved"].fillna(False).astype(float)
    for f in [*facets, *lines_by]:  # a missing value (no clipping) is a value: null
        nets[f] = nets[f].map(lambda v: "null" if pd.isna(v) else str(v))
    rows_of = groups.factor_values(nets, facets[0])
    panels = [list(k) if isinstance(k, tuple) else [k] for k, _ in nets.groupby(facets, sort=True)]
    ncols = max(1, len(panels) // len(rows_of))
    fig = Figure(figsize=(4.6 * ncols + 2.4, 3.4 * len(rows_of) + 0.6), dpi=DPI)
    axes = fig.subplots(len(rows_of), ncols, squeeze=False).ravel()
    arms = sorted({tuple(str(v) for v in k) for k, _ in nets.groupby(lines_by, sort=True)})
    for ax, panel in zip(axes, panels, strict=True):
        here = nets[
            np.logical_and.reduce(
                [nets[f].astype(str) == str(v) for f, v in zip(facets, panel, strict=True)]
            )
        ]
        for k, arm in enumerate(arms):
            rows = here[
                np.logical_and.reduce(
                    [here[f].astype(str) == v for f, v in zip(lines_by, arm, strict=True)]
                )
            ]
            label = ", ".join(f"{_short(f)}={v}" for f, v in zip(lines_by, arm, strict=True))
            for column, style in (("diverged", "-"), ("solved", "--")):
                rate = rows.groupby(LR)[column].mean()
                lrs = np.array([float(x) for x in rate.index])
                order = np.argsort(lrs)
                ax.plot(
                    lrs[order],
                    rate.to_numpy()[order],
                    style,
                    marker="o",
                    ms=3,
                    color=f"C{k % 10}",
                    label=label if style == "-" else None,
                )
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(
            ", ".join(f"{_short(f)}={v}" for f, v in zip(facets, panel, strict=True)), fontsize=9
        )
    for ax in axes[-ncols:]:
        ax.set_xlabel("learning rate (model.lr)")
    fig.supylabel("share of networks: diverged (solid), solved (dashed)", fontsize=9)
    axes[ncols - 1].legend(
        fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0
    )
    width = 4.6 * ncols + 2.4
    fig.subplots_adjust(
        left=0.6 / width * 1.3, right=1 - 2.4 / width, wspace=0.2, hspace=0.35, bottom=0.1, top=0.93
    )
    return fig


def _at_common_lr(
    nets: pd.DataFrame, effect: dict[str, Any], margin: float, fraction: float
) -> str:
    """The comparison again with both arms at each lr of the grid (all seeds): descriptive,
    outside the Holm family."""
    parts = []
    for lr in groups.factor_values(nets, LR):
        at = nets[nets[LR] == lr].drop(columns=[LR])
        cmp = groups.paired(at, effect["factor"], effect["a"], effect["b"], margin=margin)
        if cmp.get("identical"):
            parts.append(f"{fmt_lr(lr)}: identical")
        elif cmp.get("ratio") is not None:
            low, high = cmp["ratio_ci_low"], cmp["ratio_ci_high"]
            ci = f" [{fmt(low)}, {fmt(high)}]" if low is not None else ""
            div = cmp.get("diverged_pairs_a", 0), cmp.get("diverged_pairs_b", 0)
            extra = f" (diverged {div[0]} vs {div[1]})" if any(div) else ""
            parts.append(f"{fmt_lr(lr)}: {fmt(cmp['ratio'])}x{ci}{extra}")
    return "at a common lr: " + "; ".join(parts) if parts else ""


def study_section(
    sweep_dir: Path,
    out: Figures,
    margin: float = stats.EQUIVALENCE_MARGIN,
    fraction: float = stats.SUCCESS_FRACTION,
) -> list[str]:
    """The report of one sweep directory: its question's answers, table and figures."""
    name = sweep_dir.name
    found = collect(sweep_dir)
    jobs = [job for job in found if job.record]
    left_out = not_in_report(found)
    if not jobs:
        return [f"## {name}", "", f"No finished job in `{sweep_dir}`.", *left_out, ""]
    factors = groups.factors(jobs)
    nets = groups.networks(jobs, factors)
    nets.to_csv(out / f"{name}_networks.csv", index=False)
    groups.groups_table(nets, factors, fraction).to_csv(out / f"{name}_groups.csv", index=False)
    selected, arms, chosen = at_best_lr(nets, factors)
    seeds = nets["seed"].nunique()
    lines = [
        f"## {name}",
        "",
        f"`{sweep_dir}`: {len(jobs)} jobs, {len(nets)} networks, {seeds} seeds; every network's "
        f"numbers: [{name}_networks.csv]({out.link(f'{name}_networks.csv')}).",
    ]
    exploded = int(nets["exploded"].sum())
    if exploded:
        lines.append(
            f"{exploded} network{'s' if exploded > 1 else ''} ended finite but past "
            f"{EXPLODED_MULTIPLE:g}x the naive baseline: counted as diverged."
        )
    lines += left_out
    if chosen:
        edges = sum(c.edge for c in chosen.values())
        in_sample = any(c.in_sample for c in chosen.values())
        lines.append(
            (
                f"`{LR}` is a nuisance. With one seed there is no other half to choose it on: "
                "each arm is reported at the lr its own networks chose (lowest median "
                "`val/mse_best`, a diverged network counting as +inf), which flatters every "
                "arm. "
                if in_sample
                else f"`{LR}` is a nuisance: each arm is reported at the lr chosen on the other "
                "half of the seeds (lowest median `val/mse_best`, a diverged network counting "
                "as +inf), so that no network is judged at an lr chosen on itself; two values: "
                "the halves chose differently. "
            )
            + (
                f"{edges} of {len(chosen)} arms chose an lr at an edge of the grid "
                f"({', '.join(fmt_lr(v) for v in groups.factor_values(nets, LR))}): their "
                "optimum may lie outside it."
                if edges
                else "No arm chose an lr at an edge of the grid."
            )
        )
    lines += ["", TABLE_NOTE, ""]
    lines += [*arms_table(selected, arms, chosen, fraction), ""]
    if runs_source_setup(jobs, arms):
        grid = groups.factor_values(nets, LR) if chosen else []
        lines += source_section(jobs, selected, arms, chosen, grid, margin)
    if runs_le2015_setup(jobs, nets, arms):
        lines += le2015_section(jobs, selected, chosen, margin, fraction)

    forest: list[tuple[str, dict[str, Any]]] = []
    found_effects: list[tuple[Any, dict, pd.DataFrame]] = []
    # Tasks are not an effect to estimate: a study over several answers within each one.
    for task, rows in _by_task(selected, arms):
        factors_here = [f for f in arms if f != TASK]
        every_lr = nets if task is None else nets[nets[TASK] == task]
        found = groups.effects(rows, factors_here, M.TEST_MSE, margin, fraction, False, nets)
        for effect in found:
            found_effects.append((task, effect, every_lr))
    groups.adjust([e for _, e, _ in found_effects])
    tested = sum(e.get("p") is not None for _, e, _ in found_effects)
    lines += [
        f"Answers ({len(found_effects)} comparisons; the verdicts are Holm-adjusted over the "
        f"{tested} with a test, one family for this section, the difference tests and the "
        f"equivalence tests (TOST, margin +-{margin:.0%}) each adjusted; the 95% intervals are "
        "not adjusted):",
        "",
    ]
    current = object()
    for task, effect, every_lr in found_effects:
        if task is not None and task != current:
            lines += ["", f"On `{TASK}={task}`:"]
            current = task
        lines.append(f"- {effect_sentence(effect)}")
        if chosen and not effect.get("continuous"):
            common = _at_common_lr(every_lr, effect, margin, fraction)
            if common:
                lines.append(f"  {common[0].upper()}{common[1:]}.")
        if effect.get("ratio") is not None:
            where = f"{task}: " if task is not None else ""
            forest.append((f"{where}{effect['factor']}: {effect['a']} vs {effect['b']}", effect))
    lines.append("")
    figure = (
        _save(
            forest_figure(f"{name}: effects (each arm at its lr chosen on the other half)", forest),
            out,
            f"{name}_forest.png",
        )
        if forest
        else None
    )
    if figure:
        lines += [f"![{name} effects]({figure})", ""]
    clip = "trainer.gradient_clip_val"
    if clip in factors and LR in factors:
        figure = _save(divergence_figure(nets, clip), out, f"{name}_divergence.png")
        lines += [f"![{name} divergence]({figure})", ""]
        others = [f for f in arms if f not in (clip, TASK)]
        if "data.seq_len" in others and len(others) > 2 and M.MEAN_MSE in nets:
            # the divergence and success rates of every arm against lr: a panel per length (and
            # optimizer), a line per cell and clip value
            facets = ["data.seq_len", *(["model.optimizer"] if "model.optimizer" in others else [])]
            by = [*(f for f in others if f not in facets), clip]
            figure = _save(rates_figure(nets, facets, by, fraction), out, f"{name}_rates.png")
            lines += [f"![{name} divergence and success against lr]({figure})", ""]

    def label_of(job: Any) -> str:
        shown = [*arms, LR] if chosen else arms  # an arm's two halves may use two lrs
        return ", ".join(f"{f}={job.overrides.get(f)}" for f in shown) or name

    def at_chosen_lr(job: Any) -> bool:
        key = tuple(str(job.overrides.get(a)) for a in arms)
        return str(job.overrides.get(LR)) in lrs.get(key, ())

    lrs = {
        tuple(str(v) for v in k): {str(x) for x in c.chosen} | {fmt_lr(x) for x in c.chosen}
        for k, c in chosen.items()
    }
    best_jobs = [job for job in jobs if at_chosen_lr(job)] if chosen else jobs
    figure = _save(
        grad_flow_bands(
            best_jobs,
            label_of,
            f"{name}: gradient reaching each step (median and range over replicas)",
        ),
        out,
        f"{name}_grad_flow.png",
    )
    if figure:
        lines += [f"![{name} gradient flow]({figure})", ""]
    unreadable: list[str] = []
    figure = _save(
        learning_curves(
            best_jobs, label_of, f"{name}: learning curves (each arm at its chosen lr)", unreadable
        ),
        out,
        f"{name}_curves.png",
    )
    if figure:
        lines += [f"![{name} learning curves]({figure})", ""]
    if unreadable:
        lines += ["Left out of the learning curves, unreadable: " + ", ".join(unreadable), ""]
    figure = _save(
        grad_reach_curves(
            jobs,
            selected,
            arms,
            f"{name}: gradient reaching the first step through training (each arm at its "
            "chosen lr)",
        ),
        out,
        f"{name}_grad_reach.png",
    )
    if figure:
        lines += [f"![{name} gradient reaching the first step through training]({figure})", ""]
    return lines


def reproduction_section(dirs: list[Path], out: Figures) -> list[str]:
    """The two source texts reproduced: each cell's largest difference to nn.RNN on the same
    weights, and the concat cell's rollout tracking sin/cos (from a study's concat job)."""
    import torch

    from rnnlab.config.choices import VANILLA_CELLS
    from rnnlab.models.cells import CELLS

    lines = ["## Reproduction of the source texts", ""]
    torch.manual_seed(0)
    rnn = torch.nn.RNN(2, 32, num_layers=2, batch_first=True)
    x = torch.randn(16, 50, 2)
    reference, _ = rnn(x)
    for cls in map(CELLS.get, VANILLA_CELLS):
        diff = (cls.from_torch(rnn)(x)[0] - reference).abs().max().item()
        lines.append(
            f"- `{cls.__name__}` with nn.RNN's weights (2 layers, hidden 32, 50 steps): "
            f"largest difference to nn.RNN {diff:.2g}."
        )
    for d in dirs:
        for job in collect(d):
            png = job.path / "figures" / "rollout.png"
            if (
                job.record.get("config", {}).get("model", {}).get("cell") == "concat"
                and png.is_file()
            ):
                shutil.copy(png, out / "concat_rollout.png")
                lines += [
                    "",
                    f"The concat cell's rollout (`{job.path.relative_to(d.parent)}`):",
                    "",
                    f"![concat rollout]({out.link('concat_rollout.png')})",
                ]
                return [*lines, ""]
    return [*lines, ""]


def write_report(
    dirs: list[Path],
    out: Path | None = None,
    margin: float = stats.EQUIVALENCE_MARGIN,
    fraction: float = stats.SUCCESS_FRACTION,
) -> Path:
    """Write the report of ``dirs``: to ``out/report.md`` with its figures beside it (default
    ``out``: the first directory's ``report/``), or, when ``out`` names a ``.md`` file, there
    with its figures in the folder of the same name (``docs/report.md``, ``docs/report/``).
    ``margin``: the equivalence margin; ``fraction``: the success threshold, a fraction of the
    mean predictor's MSE."""
    out = Path(out) if out else Path(dirs[0]) / "report"
    if out.suffix == ".md":
        path, figures = out, Figures(out.with_suffix(""), f"{out.stem}/")
    else:
        path, figures = out / "report.md", Figures(out)
    figures.dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# rnnlab report",
        "",
        "Generated by `python -m rnnlab.report " + " ".join(str(d) for d in dirs) + "`.",
        "",
    ]
    for d in dirs:
        lines += study_section(Path(d), figures, margin, fraction)
    lines += reproduction_section([Path(d) for d in dirs], figures)
    path.write_text("\n".join(lines) + "\n")
    return path
