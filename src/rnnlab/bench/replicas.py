"""[replicas] ``replicas=R``: one job training the networks of seeds ``seed .. seed+R-1``
together (rnnlab.models.replicas) against R separate runs. Per cell and R, the fit time of one
``rnnlab.training.experiment.train_and_test`` job (its record's ``fit_seconds``), interleaved with
the
R=1 job's, whose R-fold is the estimate for R separate runs; each configuration's peak RSS
growth in a fresh process; and a whole sweep of 15 networks, ``train.py -m model=... replicas=5``
against ``seed=0,..,4``, wall clock from outside."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rnnlab.bench.common import checkout, compose, interleaved, median, table
from rnnlab.bench.run import run_process
from rnnlab.config.choices import VANILLA_CELLS as CELL_NAMES
from rnnlab.training.experiment import train_and_test

E2E_SEEDS = 5  # the end-to-end sweep: 3 cells x 5 seeds, 15 networks
QUICK_E2E_SEEDS = 2
# The default config, figures included (``--replica-overrides KEY=VALUE ...`` to change it).
DEFAULT_OVERRIDES: tuple[str, ...] = ()


def replicas_override(replicas: int) -> list[str]:
    """The command-line override for ``replicas``: none for one (the normal path)."""
    return [] if replicas == 1 else [f"replicas={replicas}"]


def _overrides(cell: str, replicas: int, epochs: int, opts: argparse.Namespace) -> list[str]:
    return [
        f"model={cell}",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        f"threads={opts.threads}",
        *replicas_override(replicas),
        *opts.replica_overrides,
    ]


# One job in a fresh interpreter, on Linux: after the imports and the config, its RSS high-water
# mark is reset (/proc/self/clear_refs), so VmHWM after the job is the peak while the job ran.
_PEAK = """
import re, sys
from pathlib import Path
from rnnlab.bench.common import compose, set_up_process
from rnnlab.training.experiment import train_and_test
def kib(name):
    return re.search(name + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
set_up_process(int(sys.argv[1]))
cfg = compose(sys.argv[3:])
before = kib("VmRSS")
Path("/proc/self/clear_refs").write_text("5")
status = train_and_test(cfg, Path(sys.argv[2]))["status"]
print(f"rnnlab-bench-peak {status} {before} {kib('VmHWM')}")
"""


def peak_rss(overrides: list[str], run_dir: Path, threads: int) -> tuple[float, float]:
    """The peak RSS (MiB) of a fresh process while it runs one job, and how far that is above
    its RSS before the job (after the imports and the config)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, str(threads), str(run_dir), *overrides],
        cwd=checkout(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    line = proc.stdout.rstrip().rpartition("\n")[2].split()
    if proc.returncode != 0 or line[:2] != ["rnnlab-bench-peak", "ok"]:
        raise RuntimeError(f"peak RSS job {' '.join(overrides)} failed:\n{proc.stdout[-3000:]}")
    before, peak = int(line[2]) / 1024, int(line[3]) / 1024
    return peak, peak - before


def cell_rows(cell: str, opts: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Fit seconds of one job per R, the R values interleaved (R=1 among them)."""
    counts = sorted({1, *opts.replica_counts})
    runs = iter(range(10**6))

    def job(replicas: int) -> Any:
        cfg = compose(_overrides(cell, replicas, opts.replica_epochs, opts))

        def fn() -> float:
            result = train_and_test(cfg, work / f"replicas_{cell}_{replicas}_{next(runs)}")
            if result["status"] != "ok":
                raise RuntimeError(f"bench job {cell} R={replicas} ended {result['status']}")
            return result["fit_seconds"]

        return fn

    fits = interleaved({str(r): job(r) for r in counts}, opts.run_reps)
    one = median(fits["1"])
    rows = []
    for r in counts:
        fit = median(fits[str(r)])
        rows.append(
            {
                "cell": cell,
                "replicas": r,
                "fit_s": fit,
                "ratio": fit / one,  # fit time relative to the R=1 job's
                "s_per_replica": fit / r,
                "separate_s": r * one,  # R separate runs, estimated
                "speedup": r * one / fit,  # per seed, against separate runs
                "fit_times": fits[str(r)],
            }
        )
    return rows


def add_memory(rows: list[dict[str, Any]], opts: argparse.Namespace, work: Path) -> None:
    """Each row's peak RSS in a fresh process (one epoch: the peak is a step's, not the run's);
    in --quick mode the first cell's rows only."""
    cells = CELL_NAMES[:1] if opts.quick else CELL_NAMES
    for row in rows:
        if row["cell"] in cells:
            overrides = _overrides(row["cell"], row["replicas"], 1, opts)
            run_dir = work / f"replicas_rss_{row['cell']}_{row['replicas']}"
            row["peak_rss_mib"], row["rss_growth_mib"] = peak_rss(overrides, run_dir, opts.threads)


def end_to_end(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Wall clock of two whole sweeps of the same networks: one job per cell with
    replicas=seeds, against one job per cell and seed; interleaved."""
    seeds = QUICK_E2E_SEEDS if opts.quick else E2E_SEEDS
    root = checkout()
    common = [
        f"model={','.join(CELL_NAMES)}",
        f"trainer.max_epochs={opts.replica_epochs}",
        f"threads={opts.threads}",
        *opts.replica_overrides,
    ]
    sweeps = {
        "separate": [f"seed={','.join(str(s) for s in range(seeds))}"],
        "replicas": replicas_override(seeds),
    }
    runs = iter(range(10**6))
    rss: dict[str, list[float]] = {name: [] for name in sweeps}

    def sweep(name: str) -> Any:
        def fn() -> float:
            run_dir = f"hydra.sweep.dir={work}/replicas_e2e_{name}_{next(runs)}"
            args = [sys.executable, str(root / "train.py"), "-m", *common, *sweeps[name], run_dir]
            wall, peak = run_process(args, root)
            rss[name].append(peak)
            return wall

        return fn

    times = interleaved({name: sweep(name) for name in sweeps}, opts.run_reps)
    walls = {name: median(t) for name, t in times.items()}
    return {
        "seeds": seeds,
        "cells": len(CELL_NAMES),
        "separate_s": walls["separate"],
        "replicas_s": walls["replicas"],
        "speedup": walls["separate"] / walls["replicas"],
        "separate_peak_rss_mib": max(rss["separate"]),
        "replicas_peak_rss_mib": max(rss["replicas"]),
        "commands": {name: ["-m", *common, *sweeps[name]] for name in sweeps},
        "times": times,
    }


def measure(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    start = time.perf_counter()
    rows = [row for cell in CELL_NAMES for row in cell_rows(cell, opts, work)]
    out: dict[str, Any] = {
        "epochs": opts.replica_epochs,
        "reps": opts.run_reps,
        "overrides": list(opts.replica_overrides),
        "rows": rows,
    }
    if opts.replica_processes:
        add_memory(rows, opts, work)
        out["end_to_end"] = end_to_end(opts, work)
    out["seconds"] = time.perf_counter() - start
    return out


def print_table(r: dict[str, Any]) -> None:
    extra = f", with {' '.join(r['overrides'])}" if r["overrides"] else ", default config"
    print(
        f"\n[replicas] one train_and_test job training R seeds together, {r['epochs']} epochs"
        f"{extra}:\nfit seconds (the record's fit_seconds, median of {r['reps']}) against R"
        " separate runs (R x the R=1 job's fit, interleaved with it)"
    )
    keys = ("replicas", "fit_s", "ratio", "s_per_replica", "separate_s", "speedup")
    headers = ["cell", "R", "fit s", "x R=1", "s/replica", "separate s", "speed-up"]
    headers += ["peak RSS MiB", "RSS growth MiB"]
    rss = ("peak_rss_mib", "rss_growth_mib")
    rows = [
        [row["cell"], *(row[k] for k in keys), *(row.get(k, "-") for k in rss)] for row in r["rows"]
    ]
    print(table(headers, rows))
    print("  x R=1: the job's fit time over the R=1 job's; speed-up: per seed, R separate runs")
    if "peak_rss_mib" in r["rows"][0]:
        print(
            "  peak RSS: of a fresh process while it runs the job for 1 epoch; growth: that"
            " peak over its RSS before the job (after imports and config)"
        )
    e2e = r.get("end_to_end")
    if e2e is None:
        return
    n = e2e["cells"] * e2e["seeds"]
    suffixes = ("_s", "_peak_rss_mib")
    print(
        f"\n[replicas] whole sweeps of the same {n} networks, {r['epochs']} epochs{extra}"
        f" (medians of {r['reps']}, interleaved)"
    )
    rows = [
        [f"train.py {' '.join(e2e['commands'][name])}", *(e2e[f"{name}{k}"] for k in suffixes)]
        for name in ("separate", "replicas")
    ]
    print(table(["process", "wall s", "peak RSS MiB"], rows))
    print(f"  speed-up: {e2e['speedup']:.2f}x (separate wall / replicas wall)")
