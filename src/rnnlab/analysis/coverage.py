"""How often the analysis' 95% intervals hold the truth, measured by simulation::

    python -m rnnlab.analysis.coverage [--sweeps 2000] [--resamples 1999]

prints a markdown table (docs/statistics.md keeps it) of the coverage, at n = 5, 10 and 15
seeds, of:

- *one configuration's mean* (groups.csv's ``_ci_low``/``_ci_high``) on normal and on lognormal
  errors, and its *geometric mean* (``_gmean_ci_low``/``_gmean_ci_high``) on lognormal errors:
  the percentile bootstrap (scipy.stats.bootstrap) the analysis used before, against the
  t-interval it uses now (rnnlab.analysis.stats.mean_interval, of the logs for the geometric
  mean);
- *a pooled effect* (the report's "A vs B" ratio) in simulated sweeps with a known effect: a
  seed draws the data shared by all its networks, so the errors of one seed's networks move
  together, and how much A gains over B varies with the seed. Before: the percentile bootstrap
  of the mean log ratio over every pair, as if the pairs were independent; now: each seed's
  pairs reduced to their mean log ratio, and the t-interval over seeds
  (rnnlab.analysis.stats.log_effect).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats as sps

from rnnlab.analysis import stats
from rnnlab.analysis.text import markdown_table

SEEDS = (5, 10, 15)
#: A simulated sweep: configurations pooled per comparison (the activation study pools 9),
#: the true effect (log of the geometric mean ratio), and the spreads of the log error: between
#: seeds (the data each draws), of the effect between seeds, and of each network.
CONFIGURATIONS = 9
EFFECT = np.log(0.5)
SEED_SD, SEED_EFFECT_SD, NETWORK_SD = 1.0, 0.5, 0.5


def percentile_bootstrap(
    x: np.ndarray, resamples: int, rng: np.random.Generator, method: str = "percentile"
) -> tuple:
    """The interval the analysis used before: scipy's percentile bootstrap of the mean (or
    another of scipy's ``method``s: ``"BCa"``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        ci = sps.bootstrap(
            (x,), np.mean, n_resamples=resamples, method=method, rng=rng
        ).confidence_interval
    return ci.low, ci.high


def sweep_logs(seeds: int, rng: np.random.Generator) -> np.ndarray:
    """One simulated sweep's log ratios A/B, one row per seed, one column per configuration."""
    configuration = rng.normal(0, 1, CONFIGURATIONS)  # cancels in the ratio, as in a real pair
    seed = rng.normal(0, SEED_SD, (seeds, 1))  # shared by every network of the seed: cancels too
    gain = EFFECT + rng.normal(0, SEED_EFFECT_SD, (seeds, 1))  # A's gain under the seed's data
    log_b = configuration + seed + rng.normal(0, NETWORK_SD, (seeds, CONFIGURATIONS))
    log_a = configuration + seed + gain + rng.normal(0, NETWORK_SD, (seeds, CONFIGURATIONS))
    return log_a - log_b


def coverage(
    draw: Callable[[np.random.Generator], np.ndarray],
    interval: Callable[[np.ndarray], tuple],
    truth: float,
    sweeps: int,
    seed: int = 0,
) -> float:
    """The share of ``sweeps`` simulated data sets whose ``interval`` holds ``truth``."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(sweeps):
        low, high = interval(draw(rng))
        hits += low <= truth <= high
    return hits / sweeps


def effect_coverage(seeds: int, sweeps: int, seed: int = 0) -> float:
    """The coverage of the report's effect interval in simulated sweeps of ``seeds`` seeds:
    each seed's mean log ratio, and their t-interval (rnnlab.analysis.stats.mean_interval, the
    interval rnnlab.analysis.stats.log_effect exponentiates)."""

    def interval(logs: np.ndarray) -> tuple:
        return stats.mean_interval(logs.mean(axis=1))

    return coverage(lambda rng: sweep_logs(seeds, rng), interval, EFFECT, sweeps, seed)


def table(sweeps: int, resamples: int) -> list[str]:
    """The coverage table: one row per quantity, data and n."""
    boot_rng = np.random.default_rng(1)

    def before(x: np.ndarray) -> tuple:
        return percentile_bootstrap(x.ravel(), resamples, boot_rng)

    def bca(x: np.ndarray) -> tuple:
        return percentile_bootstrap(x.ravel(), resamples, boot_rng, "BCa")

    rows = []
    data = {
        "normal": (lambda n: lambda rng: rng.normal(1.0, 1.0, n), 1.0),
        "lognormal": (lambda n: lambda rng: rng.lognormal(0.0, 1.0, n), float(np.exp(0.5))),
    }
    for name, (draw, truth) in data.items():
        for n in SEEDS:
            old = coverage(draw(n), before, truth, sweeps)
            other = coverage(draw(n), bca, truth, sweeps)
            new = coverage(draw(n), stats.mean_interval, truth, sweeps)
            row = ["one configuration's mean", name, n, f"{old:.1%}", f"{other:.1%}"]
            rows.append([*row, f"{new:.1%}"])
    for n in SEEDS:  # the geometric mean's interval: the mean log's, exponentiated
        draw = lambda rng, n=n: rng.normal(0.0, 1.0, n)  # noqa: E731  (log of lognormal errors)
        old = coverage(draw, before, 0.0, sweeps)
        other = coverage(draw, bca, 0.0, sweeps)
        new = coverage(draw, stats.mean_interval, 0.0, sweeps)
        what = "one configuration's geometric mean"
        rows.append([what, "lognormal", n, f"{old:.1%}", f"{other:.1%}", f"{new:.1%}"])
    for n in SEEDS:
        old = coverage(lambda rng, n=n: sweep_logs(n, rng), before, EFFECT, sweeps)
        new = effect_coverage(n, sweeps)
        what = f"pooled effect ({CONFIGURATIONS} configurations a seed)"
        rows.append([what, "lognormal", n, f"{old:.1%}", "", f"{new:.1%}"])
    header = ["quantity", "errors", "n seeds", "before: percentile bootstrap", "BCa bootstrap"]
    header.append("now: t-interval")
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rnnlab.analysis.coverage")
    parser.add_argument("--sweeps", type=int, default=2000, help="simulated data sets per row")
    parser.add_argument("--resamples", type=int, default=1999, help="bootstrap resamples")
    opts = parser.parse_args(argv)
    print(
        f"Coverage of nominal 95% intervals, {opts.sweeps} simulated data sets per row "
        f"({opts.resamples} bootstrap resamples):\n"
    )
    print("\n".join(table(opts.sweeps, opts.resamples)))


if __name__ == "__main__":
    main()
