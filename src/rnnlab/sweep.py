"""Summarise a sweep from its job directories (rnnlab.jobs): ``summary.csv``, ``summary.md``
and ``summary.png`` (drawn by rnnlab.sweep_plot). Rebuild at any time, also for an unfinished
or partly failed sweep::

    python -m rnnlab.sweep outputs/multirun/<date>/<time>
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import Any

from rnnlab import metrics as M
from rnnlab.jobs import (
    MANY_VALUES,
    RANK_BY,
    STATUSES,
    Job,
    as_number,
    collect,
    override_keys,
    present_baselines,
    ranked,
    swept_factors,
    value_order,
)
from rnnlab.sweep_plot import plot_summary

CSV_NAME, MD_NAME, PNG_NAME = "summary.csv", "summary.md", "summary.png"
RECORD_COLUMNS = ("epochs", "fit_seconds", "params")
#: A replicas job's spread across its replicas (metrics.json's ``replica_spread``), per metric.
SPREAD_METRICS = (M.VAL_MSE_BEST, M.TEST_MSE)
SPREAD_COLUMNS = ("std", "ci_low", "ci_high")
NA = "-"  # a number a job does not have


def csv_columns(jobs: list[Job]) -> list[str]:
    return [
        "job",
        *override_keys(jobs),
        "status",
        *M.FINAL_METRICS,
        "networks",  # replicas trained in the job (1 without replicas)
        "replicas_finished",
        *(f"{m}_{c}" for m in SPREAD_METRICS for c in SPREAD_COLUMNS),
        *RECORD_COLUMNS,
        "error",
        "dir",
    ]


def csv_row(job: Job) -> dict[str, Any]:
    row: dict[str, Any] = {"job": job.num, **job.overrides, "status": job.status}
    row.update({name: job.metric(name) for name in M.FINAL_METRICS})
    spread = job.record.get("replica_spread") or {}
    row["networks"] = len(job.record.get("replicas") or []) or 1
    row["replicas_finished"] = job.record.get("replicas_finished", int(job.status == "ok"))
    for m in SPREAD_METRICS:
        row.update({f"{m}_{c}": (spread.get(m) or {}).get(c) for c in SPREAD_COLUMNS})
    row.update({name: job.record.get(name) for name in RECORD_COLUMNS})
    row.update(error=job.error, dir=job.path.name)
    return row


def write_csv(jobs: list[Job], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=csv_columns(jobs), restval="")
        writer.writeheader()
        for job in ranked(jobs):
            writer.writerow({k: "" if v is None else v for k, v in csv_row(job).items()})


def _fmt(value: float | None) -> str:
    return NA if value is None else f"{value:.3g}"


def _interval(job: Job, metric: str) -> str:
    """A replicas job's 95% bootstrap interval of the replicas' mean, with their count."""
    spread = (job.record.get("replica_spread") or {}).get(metric) or {}
    if spread.get("ci_low") is None:
        return NA
    return f"[{_fmt(spread['ci_low'])}, {_fmt(spread['ci_high'])}] n={spread['n']}"


def _short(value: str) -> str:
    """An override value for reading: a searched ``0.0024179177243329477`` as ``0.00242``."""
    number = as_number(value)
    return _fmt(number) if number is not None and len(value) > 8 else value


def _cell(text: Any) -> str:
    """A markdown table cell: no pipes or newlines, errors shortened."""
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
    ]


def _versus(job: Job, baselines: list[tuple[str, str]]) -> list[str]:
    test = job.metric(M.TEST_MSE)
    return [M.times_better(test, job.metric(m)) or NA for m, _ in baselines]


def _setting_text(job: Job, keys: list[str]) -> str:
    return " ".join(f"{k}={_short(job.overrides.get(k, ''))}" for k in keys) or "(defaults)"


def factor_groups(jobs: list[Job], factor: str) -> list[tuple[str, list[Job]]]:
    """Jobs per value of a factor; a numeric factor with more than :data:`MANY_VALUES` values
    (a search, not a grid) in three ranges of equal job count instead."""
    values = value_order(job.overrides.get(factor, "") for job in jobs)
    if len(values) <= MANY_VALUES or any(as_number(v) is None for v in values):
        return [(v, [j for j in jobs if j.overrides.get(factor, "") == v]) for v in values]

    def number(job: Job) -> float:
        return as_number(job.overrides.get(factor)) or 0.0

    ordered = sorted(jobs, key=number)
    thirds = [ordered[i * len(ordered) // 3 : (i + 1) * len(ordered) // 3] for i in range(3)]
    return [(f"{_fmt(number(g[0]))} to {_fmt(number(g[-1]))}", g) for g in thirds]


def factor_effects(jobs: list[Job], factor: str) -> list[list[Any]]:
    """Rows ``[value, ok, diverged, failed or missing, mean test MSE, median]`` for a factor."""
    rows = []
    for value, group in factor_groups(jobs, factor):
        tests = [t for job in group if (t := job.metric(M.TEST_MSE)) is not None]
        counts = [sum(job.status == s for job in group) for s in ("ok", "diverged")]
        failed = sum(job.status in ("failed", "missing") for job in group)
        mean = statistics.fmean(tests) if tests else None
        median = statistics.median(tests) if tests else None
        rows.append([value, *counts, failed, _fmt(mean), _fmt(median)])
    return rows


def markdown(jobs: list[Job], title: str) -> str:
    """The readable summary: counts, what the sweep shows, and every job best first."""
    factors = swept_factors(jobs)
    baselines = present_baselines(jobs)
    versus = [f"vs {name}" for _, name in baselines]
    fixed = [k for k in override_keys(jobs) if k not in factors]
    counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(j.status == s for j in jobs)))
    lines = [f"# Sweep {title}", "", f"{len(jobs)} jobs: {counts or 'none yet'}."]
    if fixed:
        same = " ".join(f"`{k}={jobs[0].overrides.get(k, '')}`" for k in fixed)
        lines.append(f"Every job: {same}.")
    lines += [
        f"Ranked by `{RANK_BY}` (the sweep's objective); test numbers are for reading, "
        "not for choosing. `vs persistence`, `vs mean`, `vs linear`: the test MSE against "
        "predicting the last point again, the mean target, and least squares on the window.",
        "",
        "## What the sweep shows",
        "",
    ]
    best_rows = []
    for cell in value_order(job.cell for job in jobs):
        best = ranked([job for job in jobs if job.cell == cell])[0]
        if best.status != "ok":
            missing = [NA] * (2 + len(versus))
            best_rows.append([cell, "(no finished job)", best.status, *missing])
            continue
        best_rows.append(
            [
                cell,
                _setting_text(best, [f for f in factors if f != "model"]),
                best.status,
                _fmt(best.metric(RANK_BY)),
                _fmt(best.metric(M.TEST_MSE)),
                *_versus(best, baselines),
            ]
        )
    lines += ["Best configuration per cell:", ""]
    header = ["cell", "configuration", "status", RANK_BY, M.TEST_MSE, *versus]
    lines += [*_table(header, best_rows), ""]
    if factors:
        lines += [
            "Effect of each swept factor: test MSE of the jobs that finished (`ok`), "
            "and how many jobs diverged or failed, per value:",
            "",
        ]
        rows = [[f"`{f}`", *row] for f in factors for row in factor_effects(jobs, f)]
        header = ["factor", "value", "ok", "diverged", "failed/missing", "mean test MSE", "median"]
        lines += [*_table(header, rows), ""]
    lines += ["![summary](summary.png)", "", "## Jobs, best first", ""]
    header = [
        "job",
        *factors,
        "status",
        RANK_BY,
        M.TEST_MSE,
        "95% CI (replicas)",
        M.TEST_MAE,
        M.TEST_ROLLOUT_MSE,
        *versus,
        "epochs",
        "fit s",
        "params",
        "error",
    ]
    rows = [
        [
            job.num,
            *(_short(job.overrides.get(f, "")) for f in factors),
            job.status,
            _fmt(job.metric(RANK_BY)),
            _fmt(job.metric(M.TEST_MSE)),
            _interval(job, M.TEST_MSE),
            _fmt(job.metric(M.TEST_MAE)),
            _fmt(job.metric(M.TEST_ROLLOUT_MSE)),
            *_versus(job, baselines),
            job.record.get("epochs", NA),
            _fmt(job.record.get("fit_seconds")),
            job.record.get("params", NA),
            job.error or "",
        ]
        for job in ranked(jobs)
    ]
    return "\n".join([*lines, *_table(header, rows), ""])


def summarize(sweep_dir: Path | str) -> list[Path]:
    """Write summary.csv, summary.md and summary.png into ``sweep_dir``; returns their paths."""
    sweep_dir = Path(sweep_dir)
    jobs = collect(sweep_dir)
    paths = [sweep_dir / name for name in (CSV_NAME, MD_NAME, PNG_NAME)]
    write_csv(jobs, paths[0])
    paths[1].write_text(markdown(jobs, str(sweep_dir)))
    plot_summary(jobs, paths[2])
    return paths


def not_a_sweep(sweep_dir: Path, jobs: list[Job]) -> str | None:
    """Why ``sweep_dir`` cannot be summarised as a sweep, or None if it can."""
    if not jobs:
        return f"{sweep_dir} holds no job directories (ones with .hydra/ or {M.METRICS_FILE})"
    if not any(job.multirun for job in jobs):
        return (
            f"{sweep_dir} holds single runs, not the jobs of a -m sweep; summarise a sweep "
            "directory, outputs/multirun/<date>/<time>"
        )
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.sweep", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sweep_dir", type=Path, help="outputs/multirun/<date>/<time>")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    problem = not_a_sweep(args.sweep_dir, collect(args.sweep_dir))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    for path in summarize(args.sweep_dir):
        print(path)


if __name__ == "__main__":
    main()
