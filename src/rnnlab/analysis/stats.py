"""Spread across seeds: the standard deviation and a 95% bootstrap confidence interval of the
mean (scipy.stats.bootstrap), shared by a replicas job's metrics.json and the summaries.

The interval is the bootstrap's percentile interval, from a fixed generator so that the same
numbers give the same interval; BCa, scipy's default, is unstable at the 3 to 10 seeds a
study has. With fewer than two finite values there is no spread: the entries are None.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999
RNG_SEED = 0  # the bootstrap's own generator: the same values give the same interval


def mean_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The 95% bootstrap confidence interval of the mean of ``values`` (None, None with fewer
    than two; the value itself when all are equal)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None, None
    if np.all(x == x[0]):  # no spread to resample: scipy would return NaN
        return float(x[0]), float(x[0])
    result = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(RNG_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """``n`` (finite values), ``mean``, ``std`` (ddof 1) and ``ci_low``/``ci_high`` (95%
    bootstrap interval of the mean) of the finite ``values``."""
    x = [float(v) for v in values if v is not None and math.isfinite(v)]
    low, high = mean_interval(x)
    return {
        "n": len(x),
        "mean": float(np.mean(x)) if x else None,
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else None,
        "ci_low": low,
        "ci_high": high,
    }


def interval(
    samples: Sequence[Sequence[float]], statistic: Callable[..., Any], paired: bool = False
) -> tuple[float | None, float | None]:
    """The 95% percentile bootstrap interval of ``statistic`` over one or more ``samples``
    (scipy.stats.bootstrap, the fixed generator; two samples resample independently unless
    ``paired``). ``statistic(*samples, axis=-1)`` must be vectorised along the last axis.
    (None, None) when a sample has fewer than two values; the statistic itself when the
    resamples cannot move it (every value equal, or a share that is 0 or 1 in every resample)."""
    xs = tuple(np.asarray(s, dtype=float) for s in samples)
    if any(len(x) < 2 for x in xs):
        return None, None
    value = float(statistic(*xs, axis=-1))
    if all(np.all(x == x[0]) for x in xs):
        return value, value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            xs,
            statistic,
            paired=paired,
            vectorized=True,
            confidence_level=CONFIDENCE,
            n_resamples=RESAMPLES,
            batch=1000,
            method="percentile",
            rng=np.random.default_rng(RNG_SEED),
        )
    low, high = result.confidence_interval.low, result.confidence_interval.high
    if not (math.isfinite(low) and math.isfinite(high)):
        return value, value
    return float(low), float(high)
