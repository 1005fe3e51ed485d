"""[compile] ``model.compile=true`` (``torch.compile`` of one time step of ScratchRNN): compile
time and speed-up over the eager cell, at each ``--compile-sizes`` BxLxH."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

import torch

from rnnlab.bench.common import fwd_bwd_seconds, interleaved, iterations, median, size, table
from rnnlab.models.cells import ScratchRNN, compiled_step


def measure(opts: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for bxlxh in opts.compile_sizes:
        batch, seq_len, hidden = (int(v) for v in bxlxh.lower().split("x"))
        # each size compiles afresh, so that its compile time is measured
        torch.compiler.reset()
        compiled_step.cache_clear()
        torch.manual_seed(0)
        ref = torch.nn.RNN(2, hidden, batch_first=True)
        eager = ScratchRNN.from_torch(ref).to(opts.device)
        compiled = ScratchRNN(2, hidden, compile=True).to(opts.device)
        compiled.load_state_dict(eager.state_dict())
        x = torch.randn(batch, seq_len, 2, device=opts.device)
        row: dict[str, Any] = {"batch_size": batch, "seq_len": seq_len, "hidden_size": hidden}
        try:
            eager_first = fwd_bwd_seconds(eager, x, 1, opts.device)
            first = fwd_bwd_seconds(compiled, x, 1, opts.device)
        except Exception as err:  # e.g. no C++ compiler for Inductor
            rows.append({**row, "error": f"{type(err).__name__}: {err}"})
            continue
        iters = iterations(partial(fwd_bwd_seconds, eager, x), opts.device, opts.budget)
        times = interleaved(
            {
                "eager": partial(fwd_bwd_seconds, eager, x, iters, opts.device),
                "compiled": partial(fwd_bwd_seconds, compiled, x, iters, opts.device),
            },
            opts.reps,
        )
        eager_ms, compiled_ms = 1e3 * median(times["eager"]), 1e3 * median(times["compiled"])
        rows.append(
            {
                **row,
                "compile_s": first - eager_first,
                "eager_ms": eager_ms,
                "compiled_ms": compiled_ms,
                "speedup": eager_ms / compiled_ms,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n[compile] ScratchRNN forward+backward, torch.compile of the time step")
    keys = ("compile_s", "eager_ms", "compiled_ms", "speedup")
    table_rows = [[size(r), *(r.get(k, r.get("error", "-")) for k in keys)] for r in rows]
    print(table(["BxLxH", "compile s", "eager ms", "compiled ms", "speed-up"], table_rows))
