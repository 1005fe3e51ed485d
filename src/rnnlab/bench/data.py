"""[data] Building the windows of a long series (10^6 points at L=64) as views, against seed
002's list comprehension, extrapolated from a shorter series: it takes minutes at full size."""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import torch

from rnnlab.bench.common import interleaved, median, table
from rnnlab.data.tasks import make_windows, sincos_series


def seed_windows(data: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The concat cell's source text's ``TrignoDS.make_data``, verbatim apart from the names."""
    x = torch.tensor([data[i : i + seq_len] for i in range(0, len(data) - seq_len)]).float()
    y = torch.tensor([data[i] for i in range(seq_len, len(data))]).float()
    return x, y


def _new_bytes(tensors: tuple[torch.Tensor, ...], base: torch.Tensor) -> int:
    """Bytes of storage the tensors do not share with ``base``."""
    shared = base.untyped_storage().data_ptr()
    return sum(
        t.untyped_storage().nbytes() for t in tensors if t.untyped_storage().data_ptr() != shared
    )


def measure(opts: argparse.Namespace) -> dict[str, Any]:
    n_points, seq_len = opts.points, 64
    series = sincos_series(n_points, 100.0)

    def views() -> float:
        start = time.perf_counter()
        make_windows(series, seq_len)
        return time.perf_counter() - start

    small = min(opts.seed_points, n_points)
    data = series[:small].double().numpy()  # the seed builds windows from a numpy array

    def seed() -> float:
        start = time.perf_counter()
        seed_windows(data, seq_len)
        return time.perf_counter() - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "list of ndarrays is extremely slow" warning
        times = interleaved({"views": views, "seed": seed}, opts.reps)
        seed_bytes = _new_bytes(seed_windows(data, seq_len), series)
    scale = (n_points - seq_len) / (small - seq_len)
    views_ms = 1e3 * median(times["views"])
    seed_ms = 1e3 * median(times["seed"]) * scale
    return {
        "points": n_points,
        "seq_len": seq_len,
        "views_ms": views_ms,
        "views_new_bytes": _new_bytes(make_windows(series, seq_len), series),
        "seed_ms": seed_ms,
        "seed_new_bytes": int(seed_bytes * scale),
        "seed_measured_points": small,
        "seed_extrapolated": small < n_points,
        "speedup": seed_ms / views_ms,
    }


def print_table(d: dict[str, Any]) -> None:
    print(f"\n[data] windows of {d['points']} points at L={d['seq_len']}")
    seed = "the source text's list comprehension"
    if d["seed_extrapolated"]:
        seed += f" (extrapolated from {d['seed_measured_points']} points)"
    rows = [
        ["make_windows (views)", d["views_ms"], d["views_new_bytes"] / 2**20],
        [seed, d["seed_ms"], d["seed_new_bytes"] / 2**20],
    ]
    print(table(["method", "ms", "new MiB"], rows))
