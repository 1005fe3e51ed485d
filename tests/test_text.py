"""rnnlab.analysis.text: the one number format and the one value order of every text the
analysis writes (summary.md, report.md, a run's closing lines)."""

from __future__ import annotations

import math

import numpy as np

from rnnlab.analysis.text import NA, fmt, markdown_table, value_order
from rnnlab.training.record import summary_text


def test_numbers_in_three_significant_digits_and_one_word_for_missing_ones():
    assert [fmt(x) for x in (8.625823e-07, 0.1494, 1234.0, 5, np.float64(0.5))] == [
        "8.63e-07",
        "0.149",
        "1.23e+03",
        "5",
        "0.5",
    ]
    assert [fmt(x) for x in (None, math.nan, math.inf, -math.inf)] == [NA] * 4


def test_values_in_job_order_or_numbers_ascending():
    assert value_order(["sincos_noisy", "adding_short", "sincos_noisy"]) == [
        "sincos_noisy",
        "adding_short",
    ]
    assert value_order(["null", "1", "10", "null"]) == ["null", "1", "10"]  # not all numbers
    assert value_order(["0.1", "0.01", "1e-3"]) == ["1e-3", "0.01", "0.1"]
    assert value_order([32, 8, 16]) == [8, 16, 32]
    assert value_order([]) == []


def test_table_cells_escape_pipes_and_shorten_errors():
    header, rule, row = markdown_table(["a", "b"], [["x | y", "e" * 100]])
    assert header == "| a | b |" and rule == "|---|---|"
    assert row == "| x \\| y | " + "e" * 77 + "... |"


def test_a_runs_closing_lines_use_the_same_missing_word():
    result = {
        "config": {"model": dict(cell="scratch", nonlinearity="tanh", hidden_size=32)},
        "status": "diverged",
        "error": "loss became nan",
        "epochs": 1,
        "fit_seconds": 0.5,
        "test/mse": None,
    }
    result["config"]["model"].update(num_layers=1, lr=0.01, loss="last")
    text = summary_text(result, "run")
    assert f"test MSE {NA}" in text and f"rollout MSE {NA}" in text
