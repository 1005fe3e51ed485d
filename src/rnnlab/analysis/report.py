"""The answers of one or more sweeps (the study presets, conf/study/), with their intervals, in
``report.md`` and its figures; written by ``python -m rnnlab.report DIR [DIR ...]``
(rnnlab.report).

Each sweep directory is one study. Its configurations pool seeds and replicas
(rnnlab.analysis.groups); a swept learning rate is a nuisance: each arm (a configuration without its
lr) is compared at its own best lr, chosen on validation (lowest mean ``val/mse_best``) and
reported on test. Every factor's effect is then the paired comparison of its values on the
same seeds (rnnlab.analysis.groups.paired): a ratio of test MSEs with its 95% bootstrap interval and
P(A better), or "no difference detectable" when the interval holds 1.

The sentences are rnnlab.analysis.summary's (one definition for the sweep summary and the report).
The report goes to ``DIR/report/`` of the first directory, or to ``--out``.
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
from rnnlab.analysis import groups
from rnnlab.analysis.jobs import Job, collect
from rnnlab.analysis.summary import effect_sentence
from rnnlab.analysis.text import fmt, markdown_table

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


def at_best_lr(nets: pd.DataFrame, factors: list[str]) -> tuple[pd.DataFrame, list[str], dict]:
    """The networks of each arm at its best learning rate (lowest mean ``val/mse_best`` over
    its finished networks; diverged ones count against it only by being absent: an lr where
    every network diverged is never chosen); the arm factors; and the chosen lr per arm."""
    if LR not in factors:
        return nets, factors, {}
    arms = [f for f in factors if f != LR]
    ok = nets[nets["status"] == "ok"]
    score = ok.groupby([*arms, LR], dropna=False)[M.VAL_MSE_BEST].mean().reset_index()
    chosen: dict[Any, Any] = {}
    keep = []
    for key, rows in score.groupby(arms, dropna=False) if arms else [((), score)]:
        best = rows.loc[rows[M.VAL_MSE_BEST].idxmin(), LR]
        key = key if isinstance(key, tuple) else (key,)
        chosen[key] = best
        mask = nets[LR] == best
        for f, v in zip(arms, key, strict=True):
            mask &= nets[f] == v
        keep.append(nets[mask])
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
    ax.set_xlabel("test MSE ratio, A / B (95% bootstrap interval; < 1: A better)")
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(left=0.42, right=0.97, top=1 - 0.45 / height, bottom=0.75 / height)
    return fig


def divergence_figure(nets: pd.DataFrame, clip: str) -> Figure:
    """Against the learning rate, one line per clip value: the share of networks that
    diverged (a non-finite loss, validation MSE or weight), and the median ``val/mse_best`` of
    the others, which shows the runs that exploded without becoming infinite."""
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
    share.set_ylabel("share of networks diverged (non-finite)")
    error.set_yscale("log")
    error.set_ylabel("median val/mse_best of the others")
    share.legend(fontsize=8)
    fig.suptitle("divergence and error against learning rate, with and without clipping")
    fig.subplots_adjust(left=0.08, right=0.98, wspace=0.3, bottom=0.13, top=0.88)
    return fig


def _log_axes(fig: Figure, ax: Any, xlabel: str, ylabel: str, title: str) -> Figure:
    """Log y, the labels, the title and a small legend: how every band figure ends."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
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
    fig = Figure(figsize=(9, 4.5), dpi=DPI)
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
    fig = Figure(figsize=(9, 4.5), dpi=DPI)
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


def _reach_first_step(jobs: list[Any], arms: list[str]) -> dict[tuple[str, ...], float]:
    """Per arm, the median over its finished networks of ||dL/dh_1|| over the last step's
    (rnnlab.metrics.first_over_last of metrics.json's ``grad_norm_by_step``): how much
    of
    the gradient reaches the window's first step."""
    found: dict[tuple[str, ...], list[float]] = {}
    for job in jobs:
        key = tuple(str(job.overrides.get(a)) for a in arms)
        for rec in job.record.get("replicas") or [job.record]:
            norms = (rec.get(M.DIAGNOSTICS) or {}).get(M.GRAD_NORM_BY_STEP)
            if rec.get("status") == "ok" and norms and None not in norms:
                found.setdefault(key, []).append(M.first_over_last(norms))
    return {k: float(np.median(v)) for k, v in found.items()}


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


def study_section(sweep_dir: Path, out: Figures) -> list[str]:
    """The report of one sweep directory: its question's answers, table and figures."""
    name = sweep_dir.name
    found = collect(sweep_dir)
    jobs = [job for job in found if job.record]
    left_out = not_in_report(found)
    if not jobs:
        return [f"## {name}", "", f"No finished job in `{sweep_dir}`.", *left_out, ""]
    nets = groups.networks(jobs)
    factors = groups.factors(jobs)
    selected, arms, chosen = at_best_lr(nets, factors)
    lines = [f"## {name}", "", f"`{sweep_dir}`: {len(jobs)} jobs, {len(nets)} networks."]
    lines += left_out
    if chosen:
        lines.append(
            f"`{LR}` is a nuisance: each arm is compared at its own best learning rate, chosen "
            "on validation (lowest mean `val/mse_best`), reported on test."
        )
    lines.append("")

    def label_of(job: Any) -> str:
        return ", ".join(f"{f}={job.overrides.get(f)}" for f in arms) or name

    def at_its_best_lr(job: Any) -> bool:
        arm = tuple(str(job.overrides.get(a)) for a in arms)
        return str(job.overrides.get(LR)) == str(best_lr.get(arm))

    best_lr = {tuple(str(v) for v in k): lr for k, lr in chosen.items()}
    best_jobs = [job for job in jobs if at_its_best_lr(job)] if chosen else jobs
    table = groups.groups_table(selected, arms)
    reach = _reach_first_step(best_jobs, arms)
    if reach:  # how much of the gradient reaches the window's first step (the memory question)
        table["grad reaching step 1"] = [
            reach.get(tuple(str(r[a]) for a in arms)) for _, r in table.iterrows()
        ]
    if chosen:
        table.insert(
            len(arms),
            "best lr",
            [chosen.get(tuple(r[a] for a in arms)) for _, r in table.iterrows()],
        )
    shown = [
        *arms,
        *(["best lr"] if chosen else []),
        "n",
        "diverged_rate",
        f"{M.TEST_MSE}_mean",
        f"{M.TEST_MSE}_ci_low",
        f"{M.TEST_MSE}_ci_high",
        f"{M.TEST_MSE}_median",
        f"{M.VAL_MSE_BEST}_mean",
        "grad reaching step 1",
    ]
    columns = [c for c in shown if c in table]
    rows = [[_cell(v) for v in row] for row in table[columns].itertuples(index=False)]
    lines += [*markdown_table(columns, rows), ""]

    forest: list[tuple[str, dict[str, Any]]] = []
    lines += ["Answers:", ""]
    # Tasks are not an effect to estimate: a study over several answers within each one.
    for task, rows in _by_task(selected, arms):
        factors_here = [f for f in arms if f != TASK]
        if task is not None:
            lines.append(f"On `{TASK}={task}` ({len(rows)} networks):")
        for effect in groups.effects(rows, factors_here):
            factor, a, b = effect["factor"], effect.get("a"), effect.get("b")
            lines.append(f"- {effect_sentence(effect)}")
            if effect.get("ratio") is not None:
                where = f"{task}: " if task is not None else ""
                forest.append((f"{where}{factor}: {a} vs {b}", effect))
        lines.append("")
    figure = (
        _save(
            forest_figure(f"{name}: effects (each arm at its best lr)", forest),
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
            best_jobs, label_of, f"{name}: learning curves (each arm at its best lr)", unreadable
        ),
        out,
        f"{name}_curves.png",
    )
    if figure:
        lines += [f"![{name} learning curves]({figure})", ""]
    if unreadable:
        lines += ["Left out of the learning curves, unreadable: " + ", ".join(unreadable), ""]
    return lines


def reproduction_section(dirs: list[Path], out: Figures) -> list[str]:
    """The two source texts reproduced: each cell's largest difference to nn.RNN on the same
    weights, and the concat cell's rollout tracking sin/cos (from a study's concat job)."""
    import torch

    from rnnlab.models.cells import CELLS

    lines = ["## Reproduction of the source texts", ""]
    torch.manual_seed(0)
    rnn = torch.nn.RNN(2, 32, num_layers=2, batch_first=True)
    x = torch.randn(16, 50, 2)
    reference, _ = rnn(x)
    for cls in CELLS.values():
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


def write_report(dirs: list[Path], out: Path | None = None) -> Path:
    """Write the report of ``dirs``: to ``out/report.md`` with its figures beside it (default
    ``out``: the first directory's ``report/``), or, when ``out`` names a ``.md`` file, there
    with its figures in the folder of the same name (``docs/report.md``, ``docs/report/``)."""
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
        lines += study_section(Path(d), figures)
    lines += reproduction_section([Path(d) for d in dirs], figures)
    path.write_text("\n".join(lines) + "\n")
    return path
