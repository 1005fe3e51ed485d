"""[cells] Forward+backward time of ScratchRNN and ConcatRNN against TorchRNN (``nn.RNN``),
with the same weights, at each ``--sizes`` BxLxH and both nonlinearities."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import torch

from rnnlab.bench.common import fwd_bwd_seconds, interleaved, iterations, median, size, table
from rnnlab.config.choices import NONLINEARITIES
from rnnlab.models.cells import ConcatRNN, ScratchRNN, TorchRNN


def measure(opts: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for bxlxh in opts.sizes:
        batch, seq_len, hidden = (int(v) for v in bxlxh.lower().split("x"))
        for nonlinearity in NONLINEARITIES:
            torch.manual_seed(0)
            ref = torch.nn.RNN(2, hidden, nonlinearity=nonlinearity, batch_first=True)
            cells = {
                cls.__name__: cls.from_torch(ref).to(opts.device)
                for cls in (TorchRNN, ScratchRNN, ConcatRNN)
            }
            x = torch.randn(batch, seq_len, 2, device=opts.device)
            timed = partial(fwd_bwd_seconds, cells["TorchRNN"], x)
            iters = iterations(timed, opts.device, opts.budget)
            fns = {
                name: partial(fwd_bwd_seconds, cell, x, iters, opts.device)
                for name, cell in cells.items()
            }
            times = interleaved(fns, opts.reps)
            ms = {name: 1e3 * median(t) for name, t in times.items()}
            rows.append(
                {
                    "batch_size": batch,
                    "seq_len": seq_len,
                    "hidden_size": hidden,
                    "nonlinearity": nonlinearity,
                    "ms": ms,
                    "scratch_ratio": ms["ScratchRNN"] / ms["TorchRNN"],
                    "concat_ratio": ms["ConcatRNN"] / ms["TorchRNN"],
                }
            )
    return rows


def print_table(cells: list[dict[str, Any]]) -> None:
    print("\n[cells] forward+backward ms per batch (input size 2), ratio to nn.RNN")
    ms = ("TorchRNN", "ScratchRNN", "ConcatRNN")
    ratios = ("scratch_ratio", "concat_ratio")
    rows = [
        [size(r), r["nonlinearity"], *(r["ms"][n] for n in ms), *map(r.get, ratios)] for r in cells
    ]
    headers = ["BxLxH", "act", "nn.RNN", "Scratch", "Concat", "Scratch/RNN", "Concat/RNN"]
    print(table(headers, rows))
