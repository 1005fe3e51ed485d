"""The series of ``data=csv`` (a user's CSV file) and ``data=sunspots`` (statsmodels' yearly
sunspot numbers), read and checked: each problem with a file is one line naming the file and,
where it applies, the column and the line, before anything trains.

Torch-free (pandas): rnnlab.config.checks reads the file while it validates a run or every job
of a sweep, and rnnlab.data.tasks builds the DataModule from the same :class:`Series`. A file
is read once per process for the same path, modification time, columns and time column.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rnnlab.config.errors import ConfigError

#: A data row's line in its file: the header is line 1.
HEADER_LINES = 1
#: metrics.json's key for a series task's :class:`Scale` (and the DataModule's state's).
SCALE_KEY = "data_scale"


@dataclass(frozen=True)
class Series:
    """A multichannel series in time order: ``values`` ``(T, C)`` float64 (read-only), the
    name of each channel, and the time of each row when the file has a time column."""

    values: Any  # numpy (T, C)
    columns: tuple[str, ...]
    time: tuple[Any, ...] | None
    source: str  # how messages name it: "data.path=<file>", or the package it ships in


@dataclass(frozen=True)
class Scale:
    """Each channel's mean and standard deviation (numpy's, ddof 0) over the train split:
    the model sees ``z = (x - mean) / std``, forecasts go back as ``x = mean + std * z``."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, series: Series, start: int, end: int) -> Scale:
        train = series.values[start:end]
        return cls(series.columns, tuple(train.mean(0).tolist()), tuple(train.std(0).tolist()))

    def standardise(self, values: Any) -> Any:
        import numpy as np

        return (values - np.asarray(self.mean)) / np.asarray(self.std)

    def to_units(self, z: Any) -> Any:
        """Standardised values ``(..., C)`` (numpy) back in the data's units, in float64."""
        import numpy as np

        return np.asarray(self.mean) + np.asarray(self.std) * np.asarray(z, dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Scale:
        return cls(tuple(saved["columns"]), tuple(saved["mean"]), tuple(saved["std"]))

    def same_as(self, other: Scale) -> bool:
        import numpy as np

        return self.columns == other.columns and np.allclose(
            self.mean + self.std, other.mean + other.std, rtol=1e-12, atol=0
        )


def _line(position: int) -> int:
    """The file line of the data row at ``position`` (0-based, in file order)."""
    return position + HEADER_LINES + 1


def _refuse(source: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {problem}")


def _show_value(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 30 else text[:27] + "...")


def _read_table(path: str, source: str) -> Any:
    import pandas as pd

    if not os.path.exists(path):
        raise _refuse(source, "no such file; expected a CSV file with a header line")
    if os.path.isdir(path):
        raise _refuse(source, "is a directory; expected a CSV file with a header line")
    try:
        # every cell as text, so that a non-numeric value is found here with its line
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except PermissionError:
        raise _refuse(source, "cannot read the file (permission denied)") from None
    except pd.errors.EmptyDataError:
        raise _refuse(source, "the file is empty; expected a CSV file with a header line") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        reason = " ".join(str(err).split())
        raise _refuse(source, f"cannot read it as CSV: {reason}") from None


def _numbers(table: Any, column: str, source: str) -> Any:
    """The column as float64, refusing a missing, non-numeric or non-finite cell: the first in
    the file, by its line (the rows may have been sorted by time since they were read)."""
    import numpy as np
    import pandas as pd

    text = table[column].str.strip()
    missing = text.isin(["", "NA", "NaN", "nan", "null", "None"]).to_numpy()
    if missing.any():
        first = int(table.index[missing].min())
        raise _refuse(
            source,
            f"column {column!r} has a missing value at line {_line(first)} "
            f"({int(missing.sum())} missing in all); rnnlab does not fill gaps: fill or drop "
            "them in the file",
        )
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(table.index[bad].min())
        raise _refuse(
            source,
            f"column {column!r} holds {_show_value(text.loc[first])} at line {_line(first)}, "
            "not a finite number",
        )
    return values


def _order(table: Any, time_column: str, source: str) -> Any:
    """The row order sorted by ``time_column`` (numbers, else dates), refusing an unreadable
    time and two rows at the same time."""
    import numpy as np
    import pandas as pd

    text = table[time_column].str.strip()
    times = pd.to_numeric(text, errors="coerce")
    if times.isna().any():  # not all numbers: dates?
        numbers = times.notna()
        times = pd.to_datetime(text, errors="coerce", format="mixed")
        bad = times.isna() & ~numbers
        if not bad.any():  # numbers among dates: the numbers are the odd ones
            bad = times.isna()
        if bad.any():
            where = int(np.flatnonzero(bad.to_numpy())[0])
            raise _refuse(
                source,
                f"data.time_column={time_column}: {_show_value(text.iloc[where])} at line "
                f"{_line(where)} is neither a number nor a date",
            )
    order = np.argsort(times.to_numpy(), kind="stable")
    ordered = times.to_numpy()[order]
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(repeated):
        first, second = sorted(order[[repeated[0], repeated[0] + 1]])
        raise _refuse(
            source,
            f"data.time_column={time_column}: lines {_line(first)} and {_line(second)} have the "
            f"same time, {_show_value(table[time_column].iloc[first])}",
        )
    return order


def _columns(table: Any, columns: Sequence[str] | None, time_column: str | None, source: str):
    """The channel columns: those asked for, or every column but the time column whose cells
    are all numbers."""
    import pandas as pd

    header = [str(c) for c in table.columns]
    for key, wanted in (("data.columns", columns or ()), ("data.time_column", [time_column])):
        for name in wanted:
            if name is not None and name not in header:
                listed = ", ".join(header)
                raise _refuse(source, f"there is no column {name!r} ({key}); its columns: {listed}")
    if columns:
        given = "data.columns=[" + ",".join(columns) + "]"
        if len(set(columns)) < len(columns):
            raise _refuse(source, f"{given} names a column twice")
        if time_column in columns:
            raise _refuse(
                source,
                f"{given} lists {time_column!r}, which is data.time_column, the time of each "
                "row, not a channel",
            )
        return list(columns)
    numeric = [
        c
        for c in header
        if c != time_column and pd.to_numeric(table[c].str.strip(), errors="coerce").notna().all()
    ]
    if not numeric:
        raise _refuse(
            source,
            "no column holds only numbers (columns: "
            + ", ".join(header)
            + "); choose the channels with data.columns=[NAME,...] and fix the cells that are "
            "not numbers",
        )
    return numeric


@functools.lru_cache(maxsize=8)
def _read_csv_cached(
    path: str,
    stamp: tuple[int, int],
    columns: tuple[str, ...] | None,
    time_column: str | None,
    source: str,
) -> Series:
    table = _read_table(path, source)
    if len(table) == 0:
        raise _refuse(source, "the file has a header but no rows")
    chosen = _columns(table, columns, time_column, source)
    if time_column is not None:
        table = table.iloc[_order(table, time_column, source)]
    import numpy as np

    values = np.stack([_numbers(table, c, source) for c in chosen], axis=1)
    values.flags.writeable = False
    time = tuple(table[time_column].str.strip()) if time_column is not None else None
    return Series(values, tuple(chosen), time, source)


def read_csv(
    path: Any,
    columns: Sequence[str] | None = None,
    time_column: str | None = None,
    source: str | None = None,
) -> Series:
    """The series in the CSV file ``path`` (``data.path``): the columns ``columns``
    (``data.columns``; None: every numeric column), its rows sorted by ``time_column`` when
    given; ``source`` names the file in messages (default ``data.path=<path>``). Raises a
    one-line :class:`ConfigError` naming the file, the column and the line for a missing,
    unreadable or empty file, an unknown column, a cell that is not a finite number (missing
    values included: rnnlab does not fill gaps) and an unreadable or repeated time."""
    if path is None or str(path).strip() == "":
        raise ConfigError(
            f"data.path={'null' if path is None else path} is not allowed; expected a CSV file "
            "(python train.py data=csv data.path=FILE)"
        )
    path = str(path)
    try:
        info = os.stat(path)
        stamp = (info.st_mtime_ns, info.st_size)
    except OSError:
        stamp = (0, 0)  # refused with its reason by _read_table
    return _read_csv_cached(
        os.path.abspath(path),
        stamp,
        tuple(columns) if columns else None,
        time_column,
        source or f"data.path={path}",
    )


#: Where statsmodels keeps the yearly sunspot numbers, inside its package.
SUNSPOTS_PACKAGE = "statsmodels.datasets.sunspots"


@functools.lru_cache(maxsize=1)
def sunspots() -> Series:
    """The yearly sunspot numbers 1700-2008 that statsmodels ships in its package
    (``statsmodels.datasets.sunspots``: column ``SUNACTIVITY``, time ``YEAR``); no download."""
    from statsmodels.datasets import sunspots as data

    table = data.load_pandas().data
    values = table[["SUNACTIVITY"]].to_numpy(dtype="float64")
    values.flags.writeable = False
    time = tuple(int(y) for y in table["YEAR"])
    return Series(values, ("SUNACTIVITY",), time, SUNSPOTS_PACKAGE)


def series_of(data: Any) -> Series:
    """The series of a ``data`` config section of ``data=csv`` or ``data=sunspots``."""
    if data.name == "sunspots":
        return sunspots()
    columns = list(data.columns) if data.columns is not None else None
    return read_csv(data.path, columns, data.time_column)


def constant_column(series: Series, start: int, end: int) -> str | None:
    """A channel whose values do not change over rows ``start..end-1`` (the train split, whose
    standard deviation scales it), or None."""
    part = series.values[start:end]
    for c, name in enumerate(series.columns):
        if part[:, c].std() == 0:
            return name
    return None

