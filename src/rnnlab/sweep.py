"""Summarise a sweep from its job directories: ``summary.csv``, ``summary.md``, ``summary.png``.

Why from disk: jobs run in other processes (joblib, submitit) or crash, and Hydra skips
``on_multirun_end`` after a failed job, so each job's ``metrics.json`` and
``.hydra/overrides.yaml`` are the only records every launcher leaves. Rebuild at any time, also
for an unfinished or partly failed sweep::

    python -m rnnlab.sweep outputs/multirun/<date>/<time>
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rnnlab import metrics as M

#: Status order in tables: finished jobs first. ``missing``: a job directory without a readable
#: ``metrics.json`` (still running, killed, or crashed before writing it).
STATUSES = ("ok", "diverged", "failed", "missing")
#: Ranking key: the sweep's objective. Test numbers are reported, never used to choose.
RANK_BY = M.VAL_MSE_BEST
CSV_NAME, MD_NAME, PNG_NAME = "summary.csv", "summary.md", "summary.png"
#: Override keys that select a preset rather than describe a job (as in conf/config.yaml).
DEFAULT_EXCLUDED = ("sweep", "hparams_search")
RECORD_COLUMNS = ("epochs", "fit_seconds", "params")
NA = "-"  # a number a job does not have
#: A numeric factor with more distinct values than this comes from a search (Optuna), not a grid.
MANY_VALUES = 6


@dataclass
class Job:
    """One job directory of a sweep, read back from disk."""

    num: int
    path: Path
    overrides: dict[str, str]
    status: str
    record: dict[str, Any] = field(default_factory=dict)  # metrics.json, {} when missing
    error: str | None = None

    def metric(self, name: str) -> float | None:
        value = self.record.get(name)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def setting(self, dotted: str, override: str | None = None) -> Any:
        """A config value (``model.loss``) from metrics.json, else from the overrides."""
        node: Any = self.record.get("config")
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            node = self.overrides.get(override or dotted)
        return node

    @property
    def cell(self) -> str:
        return str(self.setting("model.cell", override="model") or "?")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _parse_overrides(lines: Iterable[str], excluded: Iterable[str]) -> dict[str, str]:
    """``["model=torch", "+trainer.x=1"]`` -> ``{"model": "torch", "trainer.x": "1"}``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(lines))
    out = {}
    for override in parsed:
        key = override.key_or_group + (f"@{override.package}" if override.package else "")
        if key in excluded or override.is_delete():
            continue
        out[key] = override.get_value_element_as_str()
    return out


def read_job(path: Path, fallback_num: int) -> Job:
    """Read one job directory; never raises for a missing or damaged file."""
    hydra_cfg = (_read_yaml(path / ".hydra" / "hydra.yaml") or {}).get("hydra", {})
    job_cfg = hydra_cfg.get("job", {}) if isinstance(hydra_cfg, dict) else {}
    excluded = (
        job_cfg.get("config", {}).get("override_dirname", {}).get("exclude_keys")
        or DEFAULT_EXCLUDED
    )
    match = re.match(r"(\d+)_", path.name)
    num = job_cfg.get("num", int(match.group(1)) if match else fallback_num)
    lines = _read_yaml(path / ".hydra" / "overrides.yaml") or []
    try:
        overrides = _parse_overrides(lines, excluded)
    except Exception:  # a hand-edited or foreign file: keep the job, lose its overrides
        overrides = {}

    try:
        record = json.loads((path / M.METRICS_FILE).read_text())
    except FileNotFoundError:
        return Job(num, path, overrides, "missing", error=f"no {M.METRICS_FILE}")
    except (OSError, ValueError) as err:
        return Job(num, path, overrides, "missing", error=f"unreadable {M.METRICS_FILE}: {err}")
    status = record.get("status") if record.get("status") in STATUSES else "failed"
    return Job(num, path, overrides, status, record, record.get("error"))


def collect(sweep_dir: Path) -> list[Job]:
    """Every job directory directly under ``sweep_dir``, in job-number order."""
    dirs = sorted(
        p
        for p in Path(sweep_dir).iterdir()
        if p.is_dir() and ((p / ".hydra").is_dir() or (p / M.METRICS_FILE).exists())
    )
    return sorted((read_job(p, i) for i, p in enumerate(dirs)), key=lambda j: (j.num, j.path))


def as_number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def value_order(values: Iterable[Any]) -> list[Any]:
    """Distinct values, numerically sorted when they are all numbers."""
    distinct = list(dict.fromkeys(values))
    if all(as_number(v) is not None for v in distinct):
        return sorted(distinct, key=as_number)
    return sorted(distinct, key=str)


def override_keys(jobs: list[Job]) -> list[str]:
    return list(dict.fromkeys(k for job in jobs for k in job.overrides))


def swept_factors(jobs: list[Job]) -> list[str]:
    """Override keys that take more than one value across the jobs."""
    return [k for k in override_keys(jobs) if len({job.overrides.get(k) for job in jobs}) > 1]


def ranked(jobs: list[Job]) -> list[Job]:
    """Best first: ok jobs by the objective, then diverged, failed and missing ones."""

    def key(job: Job) -> tuple:
        value = job.metric(RANK_BY)
        return (STATUSES.index(job.status), value is None, value or 0.0, job.num)

    return sorted(jobs, key=key)


def csv_columns(jobs: list[Job]) -> list[str]:
    return [
        "job",
        *override_keys(jobs),
        "status",
        *M.FINAL_METRICS,
        *RECORD_COLUMNS,
        "error",
        "dir",
    ]


def csv_row(job: Job) -> dict[str, Any]:
    row: dict[str, Any] = {"job": job.num, **job.overrides, "status": job.status}
    row.update({name: job.metric(name) for name in M.FINAL_METRICS})
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


def _vs_persistence(job: Job) -> str:
    test, base = job.metric(M.TEST_MSE), job.metric(M.PERSISTENCE_MSE)
    if not (test and base):
        return NA
    ratio = base / test
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


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
    fixed = [k for k in override_keys(jobs) if k not in factors]
    counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(j.status == s for j in jobs)))
    lines = [f"# Sweep {title}", "", f"{len(jobs)} jobs: {counts or 'none yet'}."]
    if fixed:
        same = " ".join(f"`{k}={jobs[0].overrides.get(k, '')}`" for k in fixed)
        lines.append(f"Every job: {same}.")
    lines += [
        f"Ranked by `{RANK_BY}` (the sweep's objective); test numbers are for reading, "
        "not for choosing. `vs persistence`: how many times lower the test MSE is than "
        "predicting the last point again.",
        "",
        "## What the sweep shows",
        "",
    ]
    best_rows = []
    for cell in value_order(job.cell for job in jobs):
        best = ranked([job for job in jobs if job.cell == cell])[0]
        if best.status != "ok":
            best_rows.append([cell, "(no finished job)", best.status, NA, NA, NA])
            continue
        best_rows.append(
            [
                cell,
                _setting_text(best, [f for f in factors if f != "model"]),
                best.status,
                _fmt(best.metric(RANK_BY)),
                _fmt(best.metric(M.TEST_MSE)),
                _vs_persistence(best),
            ]
        )
    lines += ["Best configuration per cell:", ""]
    header = ["cell", "configuration", "status", RANK_BY, M.TEST_MSE, "vs persistence"]
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
        M.TEST_MAE,
        M.TEST_ROLLOUT_MSE,
        "vs persistence",
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
            _fmt(job.metric(M.TEST_MAE)),
            _fmt(job.metric(M.TEST_ROLLOUT_MSE)),
            _vs_persistence(job),
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
    from rnnlab.sweep_plot import plot_summary

    sweep_dir = Path(sweep_dir)
    jobs = collect(sweep_dir)
    paths = [sweep_dir / name for name in (CSV_NAME, MD_NAME, PNG_NAME)]
    write_csv(jobs, paths[0])
    paths[1].write_text(markdown(jobs, str(sweep_dir)))
    plot_summary(jobs, paths[2])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.sweep", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sweep_dir", type=Path, help="outputs/multirun/<date>/<time>")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    for path in summarize(args.sweep_dir):
        print(path)


if __name__ == "__main__":
    main()
