"""The report's effect interval covers: simulated sweeps with a known effect (lognormal errors,
a seed's data shared by all its networks, the effect varying with the seed), 600 per n; the
nominal 95% interval must hold the truth in at least 92% of them at n >= 10 seeds. The full
table, with the percentile bootstrap used before: ``python -m rnnlab.analysis.coverage``
(docs/statistics.md)."""

from __future__ import annotations

import numpy as np

from rnnlab.analysis import coverage

SWEEPS = 600  # Monte Carlo standard error of a 95% coverage: 0.9 points


def test_the_effect_interval_covers_at_ten_seeds_and_more(capsys):
    found = {n: coverage.effect_coverage(n, SWEEPS) for n in coverage.SEEDS}
    with capsys.disabled():
        print(f"\ncoverage of the 95% effect interval by seeds: {found}")
    assert all(found[n] >= 0.92 for n in coverage.SEEDS if n >= 10), found
    assert found[5] >= 0.92, found  # a t-interval on normal log ratios is exact at any n


def test_the_simulated_sweeps_pool_dependent_pairs():
    """A seed's pairs share its gain: treating them as independent would overstate n."""
    logs = coverage.sweep_logs(200, np.random.default_rng(0))
    within = logs.var(axis=1, ddof=1).mean()
    between = logs.mean(axis=1).var(ddof=1)
    assert between > within / coverage.CONFIGURATIONS * 2  # seed means vary beyond their noise
    assert abs(logs.mean() - coverage.EFFECT) < 0.15


def test_the_old_interval_did_not_cover():
    """The percentile bootstrap over pooled pairs, on the same sweeps: far below 95%."""
    rng = np.random.default_rng(1)
    old = coverage.coverage(
        lambda r: coverage.sweep_logs(5, r),
        lambda x: coverage.percentile_bootstrap(x.ravel(), 999, rng),
        coverage.EFFECT,
        200,
    )
    assert old < 0.85
