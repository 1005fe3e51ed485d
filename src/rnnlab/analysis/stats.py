"""The statistics of every table and sentence of the analysis, in one place (docs/statistics.md
gives the methods, their measured coverage and the references).

- A mean over seeds: Student's t-interval (scipy.stats.ttest_1samp's confidence interval). On
  normal data it covers 95% at any n; on lognormal data nothing we tried covers at n <= 15 (t:
  83-87%; the percentile bootstrap used before: 73-85%), which is why the effects are on the log
  scale: :func:`log_effect`.
- An effect: the mean over seeds of a log ratio, its t-interval, its t-test against 0, and a
  two one-sided tests (TOST) equivalence test against a margin of +-:data:`EQUIVALENCE_MARGIN`
  (statsmodels' ``ttost_paired``). The unit is the seed: the caller reduces each seed's networks
  to one value first.
- A rate (wins, solved networks): the exact Clopper-Pearson interval (scipy.stats.binomtest).
- A family of tests: Holm's step-down adjustment (statsmodels' ``multipletests``).

scipy and statsmodels are imported when first used, so that the commands can read the defaults
(:data:`EQUIVALENCE_MARGIN`, :data:`SUCCESS_FRACTION`) and refuse a wrong argument at once.

``python -m rnnlab.analysis.coverage`` measures the coverage of these intervals by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
#: Equivalence margin: two arms are "equivalent within +-10%" when a TOST shows their ratio
#: inside [1/1.1, 1.1] (``python -m rnnlab.report --margin``).
EQUIVALENCE_MARGIN = 0.10
#: A network "solved" a task with a mean baseline (the adding problem) when its test MSE is below
#: this fraction of the mean predictor's (``python -m rnnlab.report --success``).
SUCCESS_FRACTION = 0.1


def finite(values: Sequence[float | None]) -> np.ndarray:
    """The finite values, as floats."""
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    return x[np.isfinite(x)]


def mean_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The 95% t-interval of the mean of ``values`` (None, None with fewer than two; the value
    itself when all are equal)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None, None
    if np.all(x == x[0]):  # no spread: the t statistic is undefined
        return float(x[0]), float(x[0])
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(CONFIDENCE)
    return float(ci.low), float(ci.high)


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """``n`` (finite values), ``mean``, ``std`` (ddof 1) and ``ci_low``/``ci_high`` (95%
    t-interval of the mean) of the finite ``values``."""
    x = finite(values)
    low, high = mean_interval(x)
    return {
        "n": len(x),
        "mean": float(np.mean(x)) if len(x) else None,
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else None,
        "ci_low": low,
        "ci_high": high,
    }


def geometric_interval(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """The geometric mean of positive ``values`` and its 95% interval (the t-interval of the
    mean log, exponentiated): exact when the values are lognormal."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if not len(x):
        return None, None, None
    low, high = mean_interval(np.log(x))
    g = float(np.exp(np.mean(np.log(x))))
    return g, _exp(low), _exp(high)


def _exp(value: float | None) -> float | None:
    return None if value is None else float(np.exp(value))


def log_effect(logs: Sequence[float], margin: float = EQUIVALENCE_MARGIN) -> dict[str, Any]:
    """One value per seed, each a log ratio A/B: ``n``, ``ratio`` (exp of their mean: the
    geometric mean ratio), ``ratio_ci_low``/``_high`` (its 95% t-interval), ``p`` (two-sided
    t-test of no effect) and ``tost_p`` (TOST of a ratio inside [1/(1+margin), 1+margin]).
    With one seed, or no spread, the tests have no p-value (None)."""
    from scipy import stats

    d = np.asarray(logs, dtype=float)
    out: dict[str, Any] = {"n": len(d), "margin": margin}
    out.update(dict.fromkeys(("ratio", "ratio_ci_low", "ratio_ci_high", "p", "tost_p")))
    if not len(d):
        return out
    out["ratio"] = float(np.exp(d.mean()))
    low, high = mean_interval(d)
    out.update(ratio_ci_low=_exp(low), ratio_ci_high=_exp(high))
    if len(d) < 2 or np.all(d == d[0]):
        return out
    from statsmodels.stats.weightstats import ttost_paired  # seconds: only when there is a test

    bound = math.log1p(margin)
    out["p"] = float(stats.ttest_1samp(d, 0.0).pvalue)
    out["tost_p"] = float(ttost_paired(d, np.zeros_like(d), -bound, bound)[0])
    return out


def rate_interval(k: int, n: int) -> tuple[float | None, float | None]:
    """The exact (Clopper-Pearson) 95% interval of a rate of ``k`` in ``n``."""
    from scipy import stats

    if n <= 0:
        return None, None
    ci = stats.binomtest(int(k), int(n)).proportion_ci(CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family's p-values (None where a test has none)."""
    given = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    out: list[float | None] = [None] * len(pvalues)
    if not given:
        return out
    from statsmodels.stats.multitest import multipletests

    adjusted = multipletests([pvalues[i] for i in given], alpha=ALPHA, method="holm")[1]
    for i, p in zip(given, adjusted, strict=True):
        out[i] = float(p)
    return out


def iqm(values: Sequence[float]) -> float | None:
    """The interquartile mean (rliable's IQM: the mean of the middle 50%); +inf values (diverged
    networks) count as the worst."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if not len(x):
        return None
    with np.errstate(invalid="ignore"):
        return float(stats.trim_mean(x, 0.25))
