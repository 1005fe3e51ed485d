"""Summarise a sweep from its job directories (rnnlab.analysis.jobs): ``summary.csv`` (one row per
job), ``networks.csv`` (one row per network, rnnlab.analysis.networks), ``groups.csv`` (one row
per configuration, rnnlab.analysis.groups), ``summary.md`` and ``summary.png`` (drawn by
rnnlab.analysis.summary_plot). Written when a sweep ends (Hydra's callback
rnnlab.config.hydra_callbacks.SweepSummary) and rebuilt by ``python -m rnnlab.sweep DIR``
(rnnlab.sweep) at any time, also for an unfinished or partly failed sweep.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pandas as pd

from rnnlab import metrics as M
from rnnlab.analysis import groups
from rnnlab.analysis.jobs import (
    RANK_BY,
    STATUSES,
    Job,
    collect,
    override_keys,
    present_baselines,
    ranked,
    swept_factors,
)
from rnnlab.analysis.networks import EXPLODED_MULTIPLE, NETWORKS_NAME, networks, write_networks
from rnnlab.analysis.stats import EQUIVALENCE_MARGIN
from rnnlab.analysis.summary_plot import plot_summary
from rnnlab.analysis.text import NA, as_number, fmt, fmt_worst, markdown_table

CSV_NAME, MD_NAME, PNG_NAME = "summary.csv", "summary.md", "summary.png"
RECORD_COLUMNS = ("epochs", "fit_seconds", "params")
#: A replicas job's spread across its replicas (metrics.json's ``replica_spread``), per metric.
SPREAD_METRICS = (M.VAL_MSE_BEST, M.TEST_MSE)
SPREAD_COLUMNS = ("std", "ci_low", "ci_high")


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


def _interval(job: Job, metric: str) -> str:
    """A replicas job's 95% interval of the replicas' mean, with their count."""
    spread = (job.record.get("replica_spread") or {}).get(metric) or {}
    if spread.get("ci_low") is None:
        return NA
    return f"[{fmt(spread['ci_low'])}, {fmt(spread['ci_high'])}] n={spread['n']}"


def _short(value: str) -> str:
    """An override value for reading: a searched ``0.0024179177243329477`` as ``0.00242``."""
    number = as_number(value)
    return fmt(number) if number is not None and len(value) > 8 else value


def _versus(job: Job, baselines: list[tuple[str, str]]) -> list[str]:
    test = job.metric(M.TEST_MSE)
    return [M.times_better(test, job.metric(m)) or NA for m, _ in baselines]


def _value(value: Any) -> str:
    """A factor value for reading: ``1000.0`` as ``1000``, a searched ``0.0024179177`` as
    ``0.00242``."""
    return _short(f"{value:g}" if isinstance(value, float) else str(value))


def _num(value: float | None) -> str:
    """A ratio or share in two significant digits: ``9.0``, ``26``, ``0.12``, ``140``."""
    if value is None or not math.isfinite(value):
        return NA
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:#.2g}".rstrip(".")


def _config_text(row: pd.Series, keys: list[str]) -> str:
    return " ".join(f"`{k}={_value(row[k])}`" for k in keys) or "(the only configuration)"


def _ci(low: float | None, high: float | None, what: str = "") -> str:
    return NA if low is None or pd.isna(low) else f"[{what}{fmt(low)}, {fmt(high)}]"


def _diverged(row: pd.Series) -> str:
    return f"{int(row['diverged'])}/{int(row['n'])} ({row['diverged_rate']:.0%})"


def _networks(n: Any) -> str:
    return f"{int(n)} network{'s' if int(n) != 1 else ''}"


def _group_value(row: pd.Series, metric: str) -> float | None:
    value = row[metric]
    return None if pd.isna(value) else float(value)


def _group_baselines(
    nets: pd.DataFrame, keys: list[str], row: pd.Series, baselines: list[tuple[str, str]]
) -> list[str]:
    """The configuration's mean test MSE against the mean of each baseline over its networks."""
    mask = pd.Series(True, index=nets.index)
    for k in keys:
        mask &= nets[k] == row[k]
    test = _group_value(row, f"{M.TEST_MSE}_mean")
    out = []
    for metric, _ in baselines:
        base = nets.loc[mask, metric].dropna()
        out.append(M.times_better(test, float(base.mean()) if len(base) else None) or NA)
    return out


def _p(value: float | None) -> str:
    return NA if value is None else f"{value:.2g}"


def verdict_text(effect: dict[str, Any]) -> str:
    """The comparison's verdict after Holm's adjustment (rnnlab.analysis.groups.adjust)."""
    a, margin = _value(effect["a"]), effect["margin"]
    verdict = effect.get("verdict")
    if verdict in ("lower", "higher"):
        return f"{a} {verdict} (Holm-adjusted p = {_p(effect['p_holm'])})"
    if verdict == "equivalent":
        return (
            f"equivalent within +-{margin:.0%} (TOST, Holm-adjusted p = "
            f"{_p(effect['tost_p_holm'])})"
        )
    low, high = effect["ratio_ci_low"], effect["ratio_ci_high"]
    where = f": [{_num(low)}, {_num(high)}]" if low is not None else ""
    return (
        f"inconclusive{where} (difference: Holm-adjusted p = {_p(effect.get('p_holm'))}; "
        f"equivalence within +-{margin:.0%}: TOST Holm-adjusted p = "
        f"{_p(effect.get('tost_p_holm'))})"
    )


def _solved_text(effect: dict[str, Any], a: str, b: str) -> str:
    """The two arms' success counts on a task with a mean baseline, and their errors."""
    if "solved_a" not in effect:
        return ""
    n, fraction = effect["solved_of"], effect["fraction"]
    arms = [
        f"{effect[f'solved_{arm}']} of {n} ({name}"
        + (f", median test MSE {fmt(m)}" if (m := effect[f"solved_median_{arm}"]) else "")
        + ")"
        for arm, name in (("a", a), ("b", b))
    ]
    return f"; solved (test MSE < {fraction:g}x the mean predictor's): " + ", ".join(arms)


def effect_sentence(effect: dict[str, Any]) -> str:
    """One factor value's effect in one sentence (groups.effects, after groups.adjust)."""
    if effect.get("continuous"):
        f = effect["factor"]
        rho = effect["rho"]
        text = f"`{f}` (searched, {effect['n']} finished networks): "
        if rho is None:
            text += "too few finished networks for a rank correlation with test MSE"
        else:
            text += (
                f"Spearman rank correlation with test MSE {rho:+.2f} (p = {effect['pvalue']:.2g}"
                ", a diverged network as the worst); summary.png plots each network against it"
            )
        if effect["diverged"]:
            text += f"; {effect['diverged']} of {effect['networks']} networks diverged"
        return text + "."
    a, b = _value(effect["a"]), _value(effect["b"])
    text = f"`{effect['factor']}={a}` vs `{b}`: "
    low, high = effect["ratio_ci_low"], effect["ratio_ci_high"]
    interval = f" [95% CI {_num(low)}, {_num(high)}]" if low is not None else ""
    if effect["paired"]:
        n, seeds = effect["n_pairs"], effect["n_seeds"]
        if effect["identical"]:
            return text + (
                f"identical, or equal to rounding, in all {n} pairs ({seeds} seeds): the same "
                "networks."
            )
        if effect["ratio"] is None:
            text += f"no pair with two finished networks ({n} pairs)"
        else:
            kept = effect["configurations"] - effect["duplicates"]
            pooled = (
                f", each seed's {kept} paired configurations averaged on the log scale"
                if kept > 1
                else ""
            )
            text += (
                f"test MSE {_num(effect['ratio'])}x{interval} (geometric mean ratio over "
                f"{effect['n_seeds_ratio']} seed{'s' if effect['n_seeds_ratio'] > 1 else ''}"
                f"{pooled}): {verdict_text(effect)}"
            )
        ties = effect["ties"]
        tied = f", equal in {ties}" if ties else ""
        wins, losses = effect["seed_wins"], effect["seed_losses"]
        text += f"; {a} lower in {effect['a_better']} of {n} pair{'s' if n > 1 else ''}{tied}"
        if wins + losses:
            text += (
                f", win rate over seeds {wins}/{wins + losses} = {_num(effect['win_rate'])} "
                f"[95% CI {_num(effect['win_ci_low'])}, {_num(effect['win_ci_high'])}]"
            )
        if effect["seed_ties"]:
            t = effect["seed_ties"]
            text += f" ({t} tied seed{'s' if t > 1 else ''} left out)"
        if effect["duplicates"]:
            d = effect["duplicates"]
            text += (
                f"; {d} configuration{'s' if d > 1 else ''} with the same networks in both arms "
                "as another counted once"
            )
        text += _solved_text(effect, a, b)
    else:
        n_a, n_b = effect["n_a"], effect["n_b"]
        if effect["ratio"] is None:
            text += f"no comparison ({n_a} vs {n_b} networks without shared seeds)"
        else:
            text += (
                f"test MSE {_num(effect['ratio'])}x{interval} (ratio of geometric means, unpaired:"
                f" {n_a} vs {n_b} networks without shared seeds, Welch's t-interval): "
                f"{verdict_text(effect)}; P({a} lower) over all {n_a}x{n_b} network pairs "
                f"(probability of improvement) = {_num(effect['p_improvement'])}"
            )
    if effect.get("diverged_a") or effect.get("diverged_b"):
        text += (
            f"; diverged: {effect['diverged_a']} of {effect['networks_a']} ({a}), "
            f"{effect['diverged_b']} of {effect['networks_b']} ({b})"
        )
    return text + "."


def _best_sentence(table: pd.DataFrame, keys: list[str], nets: pd.DataFrame, baselines) -> str:
    done = table[table["ok"] > 0]
    if table.empty:
        return "No network yet."
    if done.empty:
        return "No network finished: no configuration can be ranked."
    best = done.iloc[0]
    against = _group_baselines(nets, keys, best, baselines)
    versus = [
        f"{text} than {name}"
        for text, (_, name) in zip(against, baselines, strict=True)
        if text != NA
    ]
    what = (
        f"Best configuration: {_config_text(best, keys)}"
        if keys
        else "One configuration (the jobs differ only in seed)"
    )
    ci = _ci(best[f"{M.TEST_MSE}_ci_low"], best[f"{M.TEST_MSE}_ci_high"], "95% CI ")
    return (
        f"{what}, {_networks(best['n'])} ({int(best['diverged'])} diverged): median "
        f"`{RANK_BY}` {fmt(_group_value(best, f'{RANK_BY}_median'))}, mean test MSE "
        f"{fmt(_group_value(best, f'{M.TEST_MSE}_mean'))}"
        + (f" {ci}" if ci != NA else "")
        + (f" ({', '.join(versus)})" if versus else "")
        + "."
    )


#: What the configurations tables show, and why (summary.md and the report).
TABLE_NOTE = (
    "The mean and its 95% t-interval are over the finished networks (the arithmetic mean is "
    "what the loss averages; its interval covers 95% on normal data but less on skewed, "
    "lognormal-like errors); the geometric mean with its interval (a t-interval of the mean "
    "log error, exact on lognormal errors) is the scale the effects use; the median and the "
    "IQM (interquartile mean, rliable's robust mean) count a diverged network as +inf, the "
    "worst outcome, so that divergence cannot improve them. docs/statistics.md has the methods "
    "and their measured coverage; a t-interval reaching below 0 is cut at 0."
)


def _configurations_table(table: pd.DataFrame, keys: list[str]) -> list[str]:
    header = [
        *keys,
        "n",
        "ok",
        "diverged",
        f"{M.TEST_MSE} mean",
        "95% CI",
        "geometric mean",
        "95% CI",
        "median",
        "IQM",
        f"{RANK_BY} median",
        "same networks as",
    ]
    t, v = M.TEST_MSE, RANK_BY
    rows = [
        [
            *(_value(row[k]) for k in keys),
            int(row["n"]),
            int(row["ok"]),
            _diverged(row),
            fmt(_group_value(row, f"{t}_mean")),
            _ci(row[f"{t}_ci_low"], row[f"{t}_ci_high"]),
            fmt(_group_value(row, f"{t}_gmean")),
            _ci(row[f"{t}_gmean_ci_low"], row[f"{t}_gmean_ci_high"]),
            fmt_worst(_group_value(row, f"{t}_median")),
            fmt_worst(_group_value(row, f"{t}_iqm")),
            fmt_worst(_group_value(row, f"{v}_median")),
            row["duplicate_of"] if isinstance(row["duplicate_of"], str) else "",
        ]
        for _, row in table.iterrows()
    ]
    return markdown_table(header, rows)


def _best_per_cell(
    table: pd.DataFrame, keys: list[str], nets: pd.DataFrame, baselines, versus: list[str]
) -> list[str]:
    rest = [k for k in keys if k != "model"]
    rows = []
    for cell in groups.factor_values(nets, "model"):
        of_cell = table[table["model"] == cell]
        done = of_cell[of_cell["ok"] > 0]
        if done.empty:
            n, div = int(of_cell["n"].sum()), int(of_cell["diverged"].sum())
            lost = [cell, "(no finished network)", n, f"{div}/{n}", NA, NA]
            rows.append([*lost, *[NA] * len(versus)])
            continue
        best = done.iloc[0]
        rows.append(
            [
                cell,
                _config_text(best, rest).replace("`", "") if rest else "-",
                int(best["n"]),
                _diverged(best),
                fmt_worst(_group_value(best, f"{RANK_BY}_median")),
                fmt(_group_value(best, f"{M.TEST_MSE}_mean")),
                *_group_baselines(nets, keys, best, baselines),
            ]
        )
    header = ["cell", "configuration", "n", "diverged", f"{RANK_BY} median", f"{M.TEST_MSE} mean"]
    return ["Best configuration per cell:", "", *markdown_table([*header, *versus], rows), ""]


def markdown(jobs: list[Job], title: str) -> str:
    """The readable summary: counts, the best configuration and each factor's effect with its
    interval, every configuration best first (groups.csv), and every job."""
    swept = swept_factors(jobs)
    keys = groups.factors(jobs)
    nets = groups.networks(jobs, keys)
    table = groups.groups_table(nets, keys)
    baselines = present_baselines(jobs)
    versus = [f"vs {name}" for _, name in baselines]
    fixed = [k for k in override_keys(jobs) if k not in swept]
    counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(j.status == s for j in jobs)))
    lines = [f"# Sweep {title}", "", f"{len(jobs)} jobs: {counts or 'none yet'}."]
    if len(nets) != len(jobs):
        by_status = nets["status"].value_counts()
        lines.append(
            f"{len(nets)} networks (a replicas job trains several): "
            + ", ".join(f"{n} {s}" for s, n in by_status.items())
            + "."
        )
    if fixed:
        same = " ".join(f"`{k}={jobs[0].overrides.get(k, '')}`" for k in fixed)
        lines.append(f"Every job: {same}.")
    pooled = [k for k in swept if k not in keys]
    if pooled and len(table):
        lines.append(
            f"{len(table)} configuration{'s' if len(table) > 1 else ''}: the networks that "
            "differ only in " + ", ".join(f"`{k}`" for k in pooled) + " pool into one."
        )
    lines += [
        f"Ranked by the median `{RANK_BY}` of each configuration's networks, a diverged one "
        "counting as +inf (the sweep's objective); test numbers are for reading, not for "
        "choosing. A network counts as diverged when its loss went non-finite or its error "
        f"exploded past {EXPLODED_MULTIPLE:g}x the naive baseline. "
        "`vs persistence`, `vs mean`, `vs linear`: the test MSE against predicting the last "
        "point again, the mean target, and least squares on the window.",
        "",
        "## What the sweep shows",
        "",
        _best_sentence(table, keys, nets, baselines),
        "",
    ]
    if "model" in keys:
        lines += _best_per_cell(table, keys, nets, baselines, versus)
    sentences = [effect_sentence(e) for e in groups.effects(nets, keys)]
    if sentences:
        lines += [
            "Effect of each factor: the test MSE of each value against the factor's first, "
            "as a geometric mean ratio (below 1: lower error), networks paired on the other "
            "factors and the seed, the seed as the unit (its data and weights are shared by "
            "all its networks): 95% t-intervals over seeds, exact win-rate intervals over "
            "seeds, and verdicts Holm-adjusted over the comparisons below (one family); "
            f"'equivalent' only where a TOST shows the ratio within +-{EQUIVALENCE_MARGIN:.0%}.",
            "",
            *(f"- {s}" for s in sentences),
            "",
        ]
    lines += ["## Configurations, best first", "", TABLE_NOTE, ""]
    lines += [*_configurations_table(table, keys), ""]
    lines += ["![summary](summary.png)", "", "## Jobs, best first", ""]
    factors = swept
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
            fmt(job.metric(RANK_BY)),
            fmt(job.metric(M.TEST_MSE)),
            _interval(job, M.TEST_MSE),
            fmt(job.metric(M.TEST_MAE)),
            fmt(job.metric(M.TEST_ROLLOUT_MSE)),
            *_versus(job, baselines),
            job.record.get("epochs", NA),
            fmt(job.record.get("fit_seconds")),
            job.record.get("params", NA),
            job.error or "",
        ]
        for job in ranked(jobs)
    ]
    return "\n".join([*lines, *markdown_table(header, rows), ""])


def summarize(sweep_dir: Path | str) -> list[Path]:
    """Write summary.csv, networks.csv, groups.csv, summary.md and summary.png into
    ``sweep_dir``; returns
    their paths."""
    sweep_dir = Path(sweep_dir)
    jobs = collect(sweep_dir)
    names = (CSV_NAME, NETWORKS_NAME, groups.GROUPS_NAME, MD_NAME, PNG_NAME)
    paths = [sweep_dir / name for name in names]
    write_csv(jobs, paths[0])
    nets = networks(jobs, groups.factors(jobs))
    write_networks(nets, paths[1])
    groups.write_groups(jobs, paths[2], nets)
    paths[3].write_text(markdown(jobs, str(sweep_dir)))
    plot_summary(jobs, paths[4])
    return paths
