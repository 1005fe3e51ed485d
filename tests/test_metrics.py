"""How a number is compared with its baseline in the run summary and the sweep tables."""

import pytest

from rnnlab.metrics import times_better


@pytest.mark.parametrize(
    ("value", "baseline", "words"),
    [
        (5.036e-07, 5.006e-03, "9940x better"),
        (6.04e-03, 5.01e-03, "1.21x worse"),  # worse than persistence says so (it said "1x better")
        (2.0, 3.0, "1.5x better"),  # not rounded down to 1x
        (3.0, 2.0, "1.5x worse"),
        (1.0, 1.0, "1x better"),
        (0.164, 0.162, "1.01x worse"),  # close to a baseline: not rounded to "1x"
        (9.6e-07, 1.08e-12, "8.9e+05x worse"),  # far from it: no seven-digit factor
    ],
)
def test_times_better_says_better_or_worse(value, baseline, words):
    assert times_better(value, baseline) == words


@pytest.mark.parametrize(("value", "baseline"), [(None, 1.0), (1.0, None), (0.0, 1.0)])
def test_times_better_is_none_without_both_numbers(value, baseline):
    assert times_better(value, baseline) is None
