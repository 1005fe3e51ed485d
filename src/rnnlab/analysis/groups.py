"""A sweep's trained networks pooled into configurations, with error bars (torch-free).

A *network* is one trained model: a single-seed job is one, a ``replicas=R`` job is R (seeds
``seed .. seed+R-1``, each with its own status and metrics in metrics.json's ``replicas``). A
*configuration* is everything a job sets except its seed: jobs that differ only in ``seed`` or
``replicas`` (or in keys without effect on results, rnnlab.config.choices.NO_EFFECT) pool into
one.

- :func:`networks`: one row per network (``job``, ``seed``, ``status``, the factors, the final
  metrics);
- :func:`groups_table`: one row per configuration (``groups.csv``): counts, the diverged rate,
  and the mean (with its 95% bootstrap interval), median and interquartile mean of the finished
  networks' test and best validation MSE;
- :func:`paired` and :func:`effects`: each factor's effect as the ratio of two arms' metrics,
  paired on the seed (same data order, comparable starting weights) where the sweep allows.

Every interval comes from rnnlab.analysis.stats (scipy's percentile bootstrap, fixed generator).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from rnnlab import metrics as M
from rnnlab.analysis import stats
from rnnlab.analysis.jobs import MANY_VALUES, RANK_BY, Job, swept_factors
from rnnlab.analysis.text import as_number, value_order
from rnnlab.config import choices

#: Swept keys that choose seeds, never a configuration (a replicas job's networks are seeds).
SEEDS = ("seed", "replicas")
#: The metrics groups.csv summarises per configuration.
GROUP_METRICS = (M.TEST_MSE, M.VAL_MSE_BEST)
GROUPS_NAME = "groups.csv"
FINISHED = "ok"


def factors(jobs: list[Job]) -> list[str]:
    """The swept keys that make a configuration: all but :data:`SEEDS` and keys without
    effect on results (:data:`rnnlab.config.choices.NO_EFFECT`: ``logger.*``, ``threads``,
    ...)."""
    return [k for k in swept_factors(jobs) if k not in SEEDS and choices.has_effect(k)]


def _factor_value(job: Job, key: str) -> str:
    """The job's override, else its config's value (a job that left the key at its default)."""
    if key in job.overrides:
        return job.overrides[key]
    value = job.setting(key)
    return "" if value is None else str(value)


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else math.nan


def _seed(job: Job) -> int | None:
    seed = job.setting("seed")
    number = as_number(seed)
    return int(number) if number is not None else None


def networks(jobs: list[Job], keys: list[str] | None = None) -> pd.DataFrame:
    """One row per trained network: ``job``, ``seed``, ``status``, a column per factor
    (``keys``, default :func:`factors`) and :data:`metrics.FINAL_METRICS`. A replicas job
    expands to its replicas; a failed or missing job is one row without metrics."""
    keys = factors(jobs) if keys is None else keys
    rows = []
    for job in sorted(jobs, key=lambda j: j.num):
        setting = {k: _factor_value(job, k) for k in keys}
        replicas = job.record.get("replicas")
        if isinstance(replicas, list) and replicas:
            for rep in replicas:
                rows.append(
                    {
                        "job": job.num,
                        "seed": rep.get("seed"),
                        "status": str(rep.get("status", job.status)),
                        **setting,
                        **{m: _finite(rep.get(m)) for m in M.FINAL_METRICS},
                    }
                )
            continue
        metrics = {m: _finite(job.metric(m)) for m in M.FINAL_METRICS}
        row = {"job": job.num, "seed": _seed(job), "status": job.status}
        rows.append({**row, **setting, **metrics})
    columns = ["job", "seed", "status", *keys, *M.FINAL_METRICS]
    nets = pd.DataFrame(rows, columns=columns)
    nets["seed"] = nets["seed"].astype("Int64")
    for key in keys:
        nets[key] = _typed(nets[key])
    return nets


def _typed(column: pd.Series) -> pd.Series:
    """A factor column as numbers when every value is one (ints when all are whole)."""
    numbers = [as_number(v) for v in column]
    if not numbers or any(n is None for n in numbers):
        return column.astype(object)
    pairs = zip(numbers, column, strict=True)
    if all(float(n).is_integer() and "." not in str(v) and "e" not in str(v) for n, v in pairs):
        return pd.Series([int(n) for n in numbers], index=column.index, dtype="int64")
    return pd.Series(numbers, index=column.index, dtype="float64")


def is_numeric(nets: pd.DataFrame, factor: str) -> bool:
    return pd.api.types.is_numeric_dtype(nets[factor])


def is_continuous(nets: pd.DataFrame, factor: str) -> bool:
    """A numeric factor with more distinct values than a grid has (a search: Optuna's lr)."""
    return is_numeric(nets, factor) and nets[factor].nunique() > MANY_VALUES


def factor_values(nets: pd.DataFrame, factor: str) -> list[Any]:
    """A factor's values in the sweep's order (rnnlab.analysis.text.value_order of the jobs in
    job order): numbers ascending, others as the jobs first use them."""
    return value_order(nets.sort_values("job", kind="stable")[factor])


def _summary(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return dict.fromkeys(("mean", "median", "iqm", "ci_low", "ci_high"))
    low, high = stats.mean_interval(values)
    return {
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "iqm": float(sps.trim_mean(values, 0.25)),
        "ci_low": low,
        "ci_high": high,
    }


def _sort_by_factors(table: pd.DataFrame, nets: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if not keys or table.empty:
        return table
    ranks = {k: {v: i for i, v in enumerate(factor_values(nets, k))} for k in keys}
    return table.sort_values(keys, key=lambda col: col.map(ranks[col.name]), kind="stable")


def groups_table(nets: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per configuration, best first by the mean ``val/mse_best`` of its finished
    networks: the factors, ``n`` (networks, every status), ``ok``, ``diverged``,
    ``diverged_rate`` and, per metric of :data:`GROUP_METRICS`, ``<metric>_mean``, ``_median``,
    ``_iqm`` (interquartile mean) and ``_ci_low``/``_ci_high`` (95% bootstrap interval of the
    mean) over the finished networks."""
    stat_columns = [f"{m}_{s}" for m in GROUP_METRICS for s in _summary(np.array([]))]
    columns = [*keys, "n", "ok", "diverged", "diverged_rate", *stat_columns]
    rows = []
    grouped = nets.groupby(keys, sort=False, dropna=False) if keys else [((), nets)]
    for value, group in grouped:
        if group.empty:
            continue
        value = value if isinstance(value, tuple) else (value,)
        n, ok = len(group), int((group["status"] == FINISHED).sum())
        diverged = int((group["status"] == "diverged").sum())
        row: dict[str, Any] = dict(zip(keys, value, strict=True))
        row.update(n=n, ok=ok, diverged=diverged, diverged_rate=diverged / n)
        finished = group[group["status"] == FINISHED]
        for m in GROUP_METRICS:
            x = finished[m].to_numpy(dtype=float)
            row.update({f"{m}_{s}": v for s, v in _summary(x[np.isfinite(x)]).items()})
        rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    for key in keys:  # groupby on an empty frame loses the factor dtypes
        if is_numeric(nets, key) and not table.empty:
            table[key] = table[key].astype(nets[key].dtype)
    table = _sort_by_factors(table, nets, keys)
    ranked = table.sort_values(f"{RANK_BY}_mean", kind="stable", na_position="last")
    return ranked.reset_index(drop=True)


def _same(column: pd.Series, value: Any) -> pd.Series:
    """Rows where a factor column equals ``value`` (given as its text or as a number)."""
    if pd.api.types.is_numeric_dtype(column):
        number = as_number(value)
        return column == number if number is not None else pd.Series(False, index=column.index)
    return column.astype(str) == str(value)


def _finished(nets: pd.DataFrame, metric: str) -> pd.DataFrame:
    ok = nets[(nets["status"] == FINISHED) & np.isfinite(nets[metric].astype(float))]
    return ok[ok[metric] > 0]  # a ratio needs a positive error


def _wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where x < y, 0.5 where they are equal (a tie is neither's win), 0 where x > y."""
    return (x < y) + 0.5 * (x == y)


def _a_lower(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(x < y) over all (x, y) pairs, ties counting half (the samples along the last axis)."""
    return np.mean(_wins(x[..., :, None], y[..., None, :]), axis=(-2, -1))


def _log_mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _exp(value: float | None) -> float | None:
    return None if value is None else float(np.exp(value))


def paired(
    nets: pd.DataFrame, factor: str, a: Any, b: Any, metric: str = M.TEST_MSE
) -> dict[str, Any]:
    """Arm ``factor=a`` against arm ``factor=b`` on ``metric`` (lower is better).

    Networks of the two arms are paired when every other factor and the seed match and both
    finished: ``n_pairs``, ``a_better`` (pairs where a's metric is lower), ``p_a_better`` with
    its 95% bootstrap interval (``p_ci_low``, ``p_ci_high``), ``median_ratio`` (median of a/b)
    and ``ratio``, the geometric mean of a/b, with its interval (``ratio_ci_low``,
    ``ratio_ci_high``). Without any pair (the arms trained different seeds): ``paired`` False,
    ``ratio`` the ratio of the arms' geometric means and ``p_a_better`` the share of all
    (a, b) network pairs where a is lower, both with a two-sample bootstrap interval.
    """
    others = [c for c in nets.columns if c not in ("job", "seed", "status", factor)]
    others = [c for c in others if c not in M.FINAL_METRICS]
    arm_a = _finished(nets[_same(nets[factor], a)], metric)
    arm_b = _finished(nets[_same(nets[factor], b)], metric)
    out: dict[str, Any] = {
        "factor": factor,
        "a": a,
        "b": b,
        "metric": metric,
        "n_a": len(arm_a),
        "n_b": len(arm_b),
    }
    on = [*others, "seed"]
    pairs = arm_a[[*on, metric]].merge(arm_b[[*on, metric]], on=on, suffixes=("_a", "_b"))
    pairs = pairs.dropna(subset=["seed"])
    if len(pairs):
        x, y = pairs[f"{metric}_a"].to_numpy(float), pairs[f"{metric}_b"].to_numpy(float)
        logs, wins = np.log(x / y), _wins(x, y).astype(float)
        p_low, p_high = stats.interval((wins,), np.mean)
        r_low, r_high = stats.interval((logs,), np.mean)
        out.update(
            paired=True,
            n_pairs=len(pairs),
            a_better=int((x < y).sum()),
            ties=int((x == y).sum()),
            p_a_better=float(wins.mean()),
            p_ci_low=p_low,
            p_ci_high=p_high,
            median_ratio=float(np.median(x / y)),
            ratio=float(np.exp(logs.mean())),
            ratio_ci_low=_exp(r_low),
            ratio_ci_high=_exp(r_high),
        )
        return out
    out.update(paired=False, n_pairs=0, a_better=None)
    if arm_a.empty or arm_b.empty:
        none = ("p_a_better", "p_ci_low", "p_ci_high", "median_ratio", "ratio")
        return {**out, **dict.fromkeys((*none, "ratio_ci_low", "ratio_ci_high"))}
    x, y = arm_a[metric].to_numpy(float), arm_b[metric].to_numpy(float)
    p_low, p_high = stats.interval((x, y), _a_lower)
    r_low, r_high = stats.interval((np.log(x), np.log(y)), _log_mean_difference)
    out.update(
        p_a_better=float(_a_lower(x, y)),
        p_ci_low=p_low,
        p_ci_high=p_high,
        median_ratio=float(np.median(x) / np.median(y)),
        ratio=float(np.exp(np.log(x).mean() - np.log(y).mean())),
        ratio_ci_low=_exp(r_low),
        ratio_ci_high=_exp(r_high),
    )
    return out


def continuous_effect(nets: pd.DataFrame, factor: str, metric: str = M.TEST_MSE) -> dict:
    """A searched factor against ``metric``: Spearman's rank correlation over the finished
    networks (``rho``, its ``pvalue``), with the diverged share."""
    ok = _finished(nets, metric)
    out: dict[str, Any] = {
        "factor": factor,
        "metric": metric,
        "continuous": True,
        "n": len(ok),
        "networks": len(nets),
        "diverged": int((nets["status"] == "diverged").sum()),
        "rho": None,
        "pvalue": None,
    }
    if len(ok) >= 3 and ok[factor].nunique() > 1 and ok[metric].nunique() > 1:
        result = sps.spearmanr(ok[factor], ok[metric])
        out.update(rho=float(result.statistic), pvalue=float(result.pvalue))
    return out


def effects(nets: pd.DataFrame, keys: Iterable[str], metric: str = M.TEST_MSE) -> list[dict]:
    """Each factor's effect: every value against the factor's first value (:func:`paired`,
    plus the two arms' diverged counts); a searched factor: :func:`continuous_effect`."""
    out = []
    for factor in keys:
        if is_continuous(nets, factor):
            out.append(continuous_effect(nets, factor, metric))
            continue
        values = factor_values(nets, factor)
        for value in values[1:]:
            effect = paired(nets, factor, value, values[0], metric)
            for arm, v in (("a", value), ("b", values[0])):
                rows = nets[_same(nets[factor], v)]
                effect[f"networks_{arm}"] = len(rows)
                effect[f"diverged_{arm}"] = int((rows["status"] == "diverged").sum())
            out.append(effect)
    return out


def write_groups(jobs: list[Job], path) -> pd.DataFrame:
    """``groups.csv``: the groups table of the jobs' networks; returns it."""
    keys = factors(jobs)
    table = groups_table(networks(jobs, keys), keys)
    table.to_csv(path, index=False)
    return table
