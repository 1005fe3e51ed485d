"""A sweep's trained networks pooled into configurations, with error bars, and the comparisons
of arms (torch-free; the methods: docs/statistics.md).

The networks are rnnlab.analysis.networks' (one row per trained network). A *configuration*
is everything a job sets except its seed: jobs that differ only in ``seed`` or ``replicas`` (or
in keys without effect on results, rnnlab.config.choices.NO_EFFECT) pool into one.

- :func:`groups_table`: one row per configuration (``groups.csv``): counts, the diverged rate,
  the success rate where the task has a mean baseline, the mean and geometric mean of the
  finished networks' test and best validation MSE with their intervals, the median and
  interquartile mean with a diverged network as +inf, and the configuration it duplicates;
- :func:`paired`, :func:`effects` and :func:`adjust`: each factor's effect as the ratio of two
  arms' metrics, paired on the seed (same data, comparable starting weights), the seed as the
  unit, with Holm-adjusted verdicts over a family of comparisons.

Every interval and test comes from rnnlab.analysis.stats.
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
from rnnlab.analysis.jobs import MANY_VALUES, RANK_BY, Job
from rnnlab.analysis.networks import DIVERGED, FINISHED, factors, networks
from rnnlab.analysis.text import as_number, value_order

#: The metrics groups.csv summarises per configuration.
GROUP_METRICS = (M.TEST_MSE, M.VAL_MSE_BEST)
GROUPS_NAME = "groups.csv"
#: Two networks, or two configurations seed by seed, are the same when their errors agree to
#: this relative tolerance (identical weights give equal errors, or errors equal to rounding).
DUPLICATE_RTOL = 1e-3
#: The columns of a networks table that are not factors.
NOT_FACTORS = ("job", "seed", "status", "exploded", *M.FINAL_METRICS)


def is_numeric(nets: pd.DataFrame, factor: str) -> bool:
    return pd.api.types.is_numeric_dtype(nets[factor])


def is_continuous(nets: pd.DataFrame, factor: str) -> bool:
    """A numeric factor with more distinct values than a grid has (a search: Optuna's lr)."""
    return is_numeric(nets, factor) and nets[factor].nunique() > MANY_VALUES


def factor_values(nets: pd.DataFrame, factor: str) -> list[Any]:
    """A factor's values in the sweep's order (rnnlab.analysis.text.value_order of the jobs in
    job order): numbers ascending, others as the jobs first use them."""
    return value_order(nets.sort_values("job", kind="stable")[factor])


def _worst_inf(rows: pd.DataFrame, metric: str) -> np.ndarray:
    """A metric over networks that trained: finished ones' values, +inf for diverged ones (the
    worst outcome, never dropped); failed and missing jobs trained no network."""
    trained = rows[rows["status"].isin((FINISHED, DIVERGED))]
    x = trained[metric].to_numpy(dtype=float)
    return np.where(trained["status"] == DIVERGED, np.inf, x)


def _summary(rows: pd.DataFrame, metric: str) -> dict[str, float | None]:
    """``mean`` and its t-interval (``ci_low``, ``ci_high``) and the geometric mean with its
    interval (``gmean``, ``gmean_ci_low``, ``gmean_ci_high``) over the finished networks;
    ``median`` and ``iqm`` over every network that trained, a diverged one as +inf."""
    worst = _worst_inf(rows, metric)
    x = worst[np.isfinite(worst)]
    low, high = stats.mean_interval(x)
    # an error is never below 0, though the t-interval of a skewed sample can reach below
    low = None if low is None else max(low, 0.0)
    g, g_low, g_high = stats.geometric_interval(x)
    return {
        "mean": float(np.mean(x)) if len(x) else None,
        "ci_low": low,
        "ci_high": high,
        "gmean": g,
        "gmean_ci_low": g_low,
        "gmean_ci_high": g_high,
        "median": float(np.median(worst)) if len(worst) else None,
        "iqm": stats.iqm(worst),
    }


SUMMARY_STATS = ("mean", "ci_low", "ci_high", "gmean", "gmean_ci_low", "gmean_ci_high")
SUMMARY_STATS += ("median", "iqm")


def solved(rows: pd.DataFrame, fraction: float = stats.SUCCESS_FRACTION) -> pd.Series | None:
    """Per network that trained: whether its test MSE is below ``fraction`` of the mean
    predictor's (a diverged network never solved it); None without a mean baseline."""
    trained = rows[rows["status"].isin((FINISHED, DIVERGED))]
    base = trained[M.MEAN_MSE].astype(float)
    if not len(trained) or base.isna().all():
        return None
    test = trained[M.TEST_MSE].astype(float)
    return (trained["status"] == FINISHED) & (test < fraction * base)


def success(rows: pd.DataFrame, fraction: float = stats.SUCCESS_FRACTION) -> dict[str, Any]:
    """``solved`` networks of ``trained``, ``solved_rate`` with its exact interval
    (``solved_ci_low``, ``solved_ci_high``) and the median test MSE of the solved ones
    (``solved_test_median``); empty without a mean baseline."""
    hit = solved(rows, fraction)
    if hit is None:
        return {}
    k, n = int(hit.sum()), len(hit)
    low, high = stats.rate_interval(k, n)
    errors = rows.loc[hit[hit].index, M.TEST_MSE].astype(float)
    return {
        "solved": k,
        "trained": n,
        "solved_rate": k / n if n else None,
        "solved_ci_low": low,
        "solved_ci_high": high,
        "solved_test_median": float(errors.median()) if k else None,
    }


SUCCESS_COLUMNS = ("solved", "trained", "solved_rate", "solved_ci_low", "solved_ci_high")
SUCCESS_COLUMNS += ("solved_test_median",)


def _sort_by_factors(table: pd.DataFrame, nets: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if not keys or table.empty:
        return table
    ranks = {k: {v: i for i, v in enumerate(factor_values(nets, k))} for k in keys}
    return table.sort_values(keys, key=lambda col: col.map(ranks[col.name]), kind="stable")


def _signature(rows: pd.DataFrame, metrics: Iterable[str]) -> pd.DataFrame:
    """A configuration's outcome seed by seed: status and ``metrics`` (+inf when diverged)."""
    rows = _trained(rows)
    out = pd.DataFrame({"seed": rows["seed"].astype(float).fillna(-1), "status": rows["status"]})
    for m in metrics:
        out[m] = np.where(rows["status"] == DIVERGED, np.inf, rows[m].astype(float))
    return out.sort_values("seed").reset_index(drop=True)


def same_outcome(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Two signatures (:func:`_signature`) of the same networks: the same seeds and statuses,
    and every error equal to :data:`DUPLICATE_RTOL`."""
    if len(a) != len(b) or not len(a) or list(a["seed"]) != list(b["seed"]):
        return False
    if list(a["status"]) != list(b["status"]):
        return False
    x, y = a.drop(columns=["seed", "status"]), b.drop(columns=["seed", "status"])
    return bool(np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=DUPLICATE_RTOL, atol=0))


def _config_text(keys: list[str], value: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, value, strict=True))


def groups_table(
    nets: pd.DataFrame, keys: list[str], fraction: float = stats.SUCCESS_FRACTION
) -> pd.DataFrame:
    """One row per configuration, best first by the median ``val/mse_best`` of its networks (a
    diverged network as +inf): the factors, ``n`` (networks, every status), ``ok``,
    ``diverged``, ``diverged_rate``; on a task with a mean baseline, the success columns of
    :func:`success`; per metric of :data:`GROUP_METRICS` the statistics of :func:`_summary`
    (``<metric>_mean``, ...); and ``duplicate_of``: the first configuration whose networks
    had the same outcome seed by seed (the same networks by construction, or a setting that
    never acted), else empty."""
    stat_columns = [f"{m}_{s}" for m in GROUP_METRICS for s in SUMMARY_STATS]
    rows, seen = [], []
    grouped = nets.groupby(keys, sort=False, dropna=False) if keys else [((), nets)]
    for value, group in grouped:
        if group.empty:
            continue
        value = value if isinstance(value, tuple) else (value,)
        n, ok = len(group), int((group["status"] == FINISHED).sum())
        diverged = int((group["status"] == DIVERGED).sum())
        row: dict[str, Any] = dict(zip(keys, value, strict=True))
        row.update(n=n, ok=ok, diverged=diverged, diverged_rate=diverged / n)
        row.update(success(group, fraction))
        for m in GROUP_METRICS:
            row.update({f"{m}_{s}": v for s, v in _summary(group, m).items()})
        signature = _signature(group, GROUP_METRICS)
        twin = next((v for v, sig in seen if same_outcome(sig, signature)), None)
        row["duplicate_of"] = _config_text(keys, twin) if twin is not None else ""
        seen.append((value, signature))
        rows.append(row)
    success_columns = list(SUCCESS_COLUMNS) if any("solved" in r for r in rows) else []
    columns = [*keys, "n", "ok", "diverged", "diverged_rate", *success_columns, *stat_columns]
    table = pd.DataFrame(rows, columns=[*columns, "duplicate_of"])
    for key in keys:  # groupby on an empty frame loses the factor dtypes
        if is_numeric(nets, key) and not table.empty:
            table[key] = table[key].astype(nets[key].dtype)
    table = _sort_by_factors(table, nets, keys)
    ranked = table.sort_values(
        [f"{RANK_BY}_median", f"{RANK_BY}_mean"], kind="stable", na_position="last"
    )
    return ranked.reset_index(drop=True)


def config_columns(nets: pd.DataFrame) -> list[str]:
    """The factor columns of a networks table."""
    diagnostics = M.DIAGNOSTICS + "/"
    return [c for c in nets.columns if c not in NOT_FACTORS and not c.startswith(diagnostics)]


def _same(column: pd.Series, value: Any) -> pd.Series:
    """Rows where a factor column equals ``value`` (given as its text or as a number)."""
    if pd.api.types.is_numeric_dtype(column):
        number = as_number(value)
        return column == number if number is not None else pd.Series(False, index=column.index)
    return column.astype(str) == str(value)


def _trained(nets: pd.DataFrame) -> pd.DataFrame:
    return nets[nets["status"].isin((FINISHED, DIVERGED))]


def _wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where x < y, 0.5 where they are equal (a tie is neither's win), 0 where x > y."""
    return (x < y) + 0.5 * (x == y)


def _positive(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x) & (x > 0)


def _distinct_configurations(pairs: pd.DataFrame, others: list[str]) -> tuple[pd.DataFrame, int]:
    """The pairs without the configurations whose pairs repeat an earlier one's seed by seed
    (both arms the same networks: scratch and torch cells from the same weights, a clip that
    never acted): each distinct pair of networks counts once. Returns the pairs and how many
    configurations were dropped."""
    if not others:
        return pairs, 0
    keep, seen, dropped = [], [], 0
    for _, rows in pairs.groupby(others, sort=False, dropna=False):
        signature = rows[["seed", "x", "y"]].astype(float).sort_values("seed")
        signature = signature.reset_index(drop=True)
        signature.insert(1, "status", "")
        if any(same_outcome(s, signature) for s in seen):
            dropped += 1
            continue
        seen.append(signature)
        keep.append(rows)
    return pd.concat(keep), dropped


def paired(
    nets: pd.DataFrame,
    factor: str,
    a: Any,
    b: Any,
    metric: str = M.TEST_MSE,
    margin: float = stats.EQUIVALENCE_MARGIN,
    fraction: float = stats.SUCCESS_FRACTION,
) -> dict[str, Any]:
    """Arm ``factor=a`` against arm ``factor=b`` on ``metric`` (lower is better), the seed as
    the unit.

    Networks pair when every other factor and the seed match (a diverged one pairs as +inf).
    Configurations whose pairs repeat another's seed by seed count once (``duplicates``: how
    many were dropped). Each seed's pairs, pooled over the other factors, reduce to the mean of
    their log ratios a/b (stratified: each configuration once per seed); the effect is then
    :func:`rnnlab.analysis.stats.log_effect` over ``n_seeds`` seeds: ``ratio`` (geometric mean
    ratio) with its t-interval, ``p`` and the TOST ``tost_p`` at ``margin``. A seed is a win
    for a when the mean of its pairs' log ratios is below 0, a diverged network's ratio counting
    as infinite (a diverged network loses; two diverged networks tie): the ``win_rate`` of
    ``seed_wins`` in ``seed_wins + seed_losses`` with its exact interval (``win_ci_low``,
    ``win_ci_high``). ``a_better`` and ``ties`` count pairs; ``identical``:
    every pair equal to rounding. Without any pair (the arms trained different seeds):
    ``paired`` False, the two arms' log errors in Welch's t-interval, and
    ``p_improvement``, P(a < b) over all (a, b) network pairs (rliable's probability of
    improvement), without interval.
    """
    others = [c for c in config_columns(nets) if c != factor]
    arm_a = _trained(nets[_same(nets[factor], a)])
    arm_b = _trained(nets[_same(nets[factor], b)])
    out: dict[str, Any] = {"factor": factor, "a": a, "b": b, "metric": metric, "margin": margin}
    out.update(n_a=len(arm_a), n_b=len(arm_b))
    on = [*others, "seed"]

    def values(arm: pd.DataFrame) -> pd.DataFrame:
        return arm[on].assign(v=_worst_inf(arm, metric), mean_mse=arm[M.MEAN_MSE].to_numpy())

    pairs = values(arm_a).merge(values(arm_b), on=on, suffixes=("_a", "_b"))
    pairs = pairs.dropna(subset=["seed"]).rename(columns={"v_a": "x", "v_b": "y"})
    if len(pairs):
        return {**out, **_paired_effect(pairs, others, margin, fraction)}
    out.update(paired=False, n_pairs=0, n_seeds=0, a_better=None, identical=False)
    x, y = _worst_inf(arm_a, metric), _worst_inf(arm_b, metric)
    lx, ly = np.log(x[_positive(x)]), np.log(y[_positive(y)])
    out.update(dict.fromkeys(("ratio", "ratio_ci_low", "ratio_ci_high", "p", "tost_p")))
    out["p_improvement"] = float(np.mean(_wins(x[:, None], y[None, :]))) if len(x) else None
    if len(lx) >= 2 and len(ly) >= 2:
        from statsmodels.stats.weightstats import ttost_ind

        test = sps.ttest_ind(lx, ly, equal_var=False)
        ci = test.confidence_interval(stats.CONFIDENCE)
        bound = math.log1p(margin)
        out.update(
            ratio=float(np.exp(lx.mean() - ly.mean())),
            ratio_ci_low=float(np.exp(ci.low)),
            ratio_ci_high=float(np.exp(ci.high)),
            p=float(test.pvalue),
            tost_p=float(ttost_ind(lx, ly, -bound, bound, usevar="unequal")[0]),
        )
    return out


def _paired_effect(
    pairs: pd.DataFrame, others: list[str], margin: float, fraction: float
) -> dict[str, Any]:
    configurations = len(pairs.groupby(others, dropna=False)) if others else 1
    pairs, dropped = _distinct_configurations(pairs, others)
    x, y = pairs["x"].to_numpy(float), pairs["y"].to_numpy(float)
    both = _positive(x) & _positive(y)
    pairs["log"] = np.where(both, np.log(np.where(both, x, 1) / np.where(both, y, 1)), np.nan)
    # the seed's verdict: a diverged network's ratio as infinite, two diverged ones as equal
    with np.errstate(invalid="ignore"):  # inf - inf: the two-diverged pairs, set to 0 here
        signed = np.where(np.isinf(x) & np.isinf(y), 0.0, np.sign(np.log(x) - np.log(y)) * np.inf)
    pairs["signed"] = np.where(both, pairs["log"], signed)
    by_seed = pairs.groupby("seed")
    logs = by_seed["log"].mean().dropna()  # each seed: its configurations' mean log ratio
    with np.errstate(invalid="ignore"):  # +inf and -inf in one seed: NaN, neither's win
        score = by_seed["signed"].mean()
    wins, losses = int((score < 0).sum()), int((score > 0).sum())
    win_low, win_high = stats.rate_interval(wins, wins + losses)
    same = (both & np.isclose(x, y, rtol=DUPLICATE_RTOL, atol=0)) | (np.isinf(x) & np.isinf(y))
    out: dict[str, Any] = {
        "paired": True,
        "n_pairs": len(pairs),
        "configurations": configurations,
        "duplicates": dropped,
        "n_seeds": int(by_seed.ngroups),
        "a_better": int((x < y).sum()),
        "ties": int((x == y).sum()),
        "identical": bool(same.all()),
        "diverged_pairs_a": int(np.isinf(x).sum()),
        "diverged_pairs_b": int(np.isinf(y).sum()),
        "seed_wins": wins,
        "seed_losses": losses,
        "seed_ties": int(by_seed.ngroups - wins - losses),
        "win_rate": wins / (wins + losses) if wins + losses else None,
        "win_ci_low": win_low,
        "win_ci_high": win_high,
        "median_ratio": float(np.median(x[both] / y[both])) if both.any() else None,
        **stats.log_effect(logs.to_numpy(), margin),
    }
    out["n_seeds_ratio"] = out.pop("n")
    base = pairs["mean_mse_a"].astype(float)
    if base.notna().any():
        for arm, v in (("a", x), ("b", y)):
            hit = np.isfinite(v) & (v < fraction * pairs[f"mean_mse_{arm}"].to_numpy(float))
            out[f"solved_{arm}"] = int(hit.sum())
            out[f"solved_median_{arm}"] = float(np.median(v[hit])) if hit.any() else None
        out.update(solved_of=len(pairs), fraction=fraction)
    return out


def continuous_effect(nets: pd.DataFrame, factor: str, metric: str = M.TEST_MSE) -> dict:
    """A searched factor against ``metric``: Spearman's rank correlation over the networks that
    trained, a diverged one as +inf (``rho``, its ``pvalue``), with the diverged share."""
    trained = _trained(nets)
    values = _worst_inf(nets, metric)
    out: dict[str, Any] = {
        "factor": factor,
        "metric": metric,
        "continuous": True,
        "n": int(np.isfinite(values).sum()),
        "networks": len(nets),
        "diverged": int((nets["status"] == DIVERGED).sum()),
        "rho": None,
        "pvalue": None,
    }
    if len(trained) >= 3 and trained[factor].nunique() > 1 and len(set(values)) > 1:
        result = sps.spearmanr(trained[factor], values)
        out.update(rho=float(result.statistic), pvalue=float(result.pvalue))
    return out


#: What a comparison's verdict says, after Holm's adjustment across its family.
VERDICTS = ("identical", "lower", "higher", "equivalent", "inconclusive")


def adjust(found: list[dict]) -> list[dict]:
    """Holm's adjustment across a family of comparisons (a sweep's summary, or a study's
    report): ``p_holm`` for the difference tests and ``tost_p_holm`` for the equivalence tests,
    each family adjusted on its own; and each comparison's ``verdict``: ``identical`` (every
    pair equal to rounding), ``lower``/``higher`` (a's error, the difference significant after
    Holm), ``equivalent`` (TOST within the margin, after Holm) or ``inconclusive``."""
    compared = [e for e in found if not e.get("continuous")]
    for key in ("p", "tost_p"):
        for e, p in zip(compared, stats.holm([e.get(key) for e in compared]), strict=True):
            e[f"{key}_holm"] = p
    for e in compared:
        if e.get("identical"):
            e["verdict"] = "identical"
        elif e["p_holm"] is not None and e["p_holm"] < stats.ALPHA:
            e["verdict"] = "lower" if e["ratio"] < 1 else "higher"
        elif e["tost_p_holm"] is not None and e["tost_p_holm"] < stats.ALPHA:
            e["verdict"] = "equivalent"
        else:
            e["verdict"] = "inconclusive"
    return found


def effects(
    nets: pd.DataFrame,
    keys: Iterable[str],
    metric: str = M.TEST_MSE,
    margin: float = stats.EQUIVALENCE_MARGIN,
    fraction: float = stats.SUCCESS_FRACTION,
    family: bool = True,
    order: pd.DataFrame | None = None,
) -> list[dict]:
    """Each factor's effect: every value against the factor's first value (:func:`paired`,
    plus the two arms' diverged counts); a searched factor: :func:`continuous_effect`. The
    comparisons are one family (:func:`adjust`) unless ``family`` is False (the caller adjusts
    a larger one). ``order``: the networks whose job order orders the values (default
    ``nets``; a report passes the whole sweep's, as its networks at the chosen lrs may start
    with any job)."""
    out = []
    for factor in keys:
        if is_continuous(nets, factor):
            out.append(continuous_effect(nets, factor, metric))
            continue
        values = factor_values(nets if order is None else order, factor)
        values = [v for v in values if _same(nets[factor], v).any()]
        for value in values[1:]:
            effect = paired(nets, factor, value, values[0], metric, margin, fraction)
            for arm, v in (("a", value), ("b", values[0])):
                rows = nets[_same(nets[factor], v)]
                effect[f"networks_{arm}"] = len(rows)
                effect[f"diverged_{arm}"] = int((rows["status"] == DIVERGED).sum())
            out.append(effect)
    return adjust(out) if family else out


def write_groups(jobs: list[Job], path, nets: pd.DataFrame | None = None) -> pd.DataFrame:
    """``groups.csv``: the groups table of the jobs' networks; returns it."""
    keys = factors(jobs)
    nets = networks(jobs, keys) if nets is None else nets
    table = groups_table(nets, keys)
    table.to_csv(path, index=False)
    return table
