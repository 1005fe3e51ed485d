"""How the analysis writes numbers and orders a factor's values, once for every text it makes:
``summary.md`` (rnnlab.analysis.summary), ``report.md`` (rnnlab.analysis.report) and the lines a
run prints when it ends (rnnlab.training.record.summary_text). Torch- and pandas-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: A number a job, network or configuration does not have (not run, diverged, not measured).
NA = "n/a"


def fmt(value: Any) -> str:
    """A number for reading, in three significant digits (``0.000863``, ``0.149``, ``1.23e+03``);
    a missing or non-finite one as :data:`NA`."""
    if value is None or not math.isfinite(value):
        return NA
    return f"{value:.3g}"


def fmt_worst(value: Any) -> str:
    """A median or interquartile mean where a diverged network counts as +inf: "inf" when the
    diverged networks decide it, else as :func:`fmt` writes it."""
    return "inf" if value == math.inf else fmt(value)


def as_number(text: Any) -> float | None:
    """``text`` as a number (an override's ``"0.01"``, a config's ``1``), else None."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def value_order(values: Iterable[Any]) -> list[Any]:
    """A factor's distinct values in the order tables, sentences and figures show them: numbers
    ascending when every value is one, else as ``values`` first lists them (given in job order,
    the command line's order for Hydra's basic sweeper: ``data=sincos_noisy,adding_short``)."""
    distinct = list(dict.fromkeys(values))
    if distinct and all(as_number(v) is not None for v in distinct):
        return sorted(distinct, key=as_number)
    return distinct


def cell(text: Any) -> str:
    """A markdown table cell: no pipes or newlines, long texts (errors) shortened."""
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows),
    ]
