"""[run] Wall time and peak RSS of whole processes: the bare import of torch + lightning +
hydra, a default ``python train.py``, and a three-job sweep (per job); with [loop] and [job],
how much of those walls is training steps."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnlab.bench.common import checkout, compose, interleaved, median, table
from rnnlab.config.choices import VANILLA_CELLS as CELL_NAMES

# Runs the command given after it and prints its wall seconds and peak RSS. A child's peak RSS
# starts at its parent's RSS at fork, so the measured process is started from this small
# interpreter rather than from the benchmark, which holds torch and its data.
_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[1:])
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"rnnlab-bench-measure {code} {wall} {peak}")
"""


def run_process(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, Linux) of a command; raises if it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    line = proc.stdout.rstrip().rpartition("\n")[2]
    _, code, wall, peak = line.split()
    if int(code) != 0:
        tail = proc.stdout[-3000:]
        raise RuntimeError(f"{' '.join(args)} exited {code}:\n{tail}")
    return float(wall), int(peak) / 1024  # ru_maxrss is in KiB on Linux


def measure(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    root = checkout()
    python, train = sys.executable, str(root / "train.py")
    common = [f"threads={opts.threads}", *opts.job_overrides]
    jobs = ",".join(CELL_NAMES)
    runs = iter(range(10**6))
    rss: dict[str, list[float]] = {"import": [], "run": [], "sweep": []}

    def timed(name: str, args: Callable[[int], list[str]]) -> Callable[[], float]:
        def fn() -> float:
            wall, peak = run_process(args(next(runs)), root)
            rss[name].append(peak)
            return wall

        return fn

    fns = {
        "import": timed("import", lambda i: [python, "-c", "import torch, lightning, hydra"]),
        "run": timed("run", lambda i: [python, train, f"hydra.run.dir={work}/run{i}", *common]),
        "sweep": timed(
            "sweep",
            lambda i: [
                python,
                train,
                "-m",
                f"model={jobs}",
                f"hydra.sweep.dir={work}/sw{i}",
                *common,
            ],
        ),
    }
    times = interleaved(fns, opts.run_reps)
    walls = {name: median(t) for name, t in times.items()}
    return {
        "import_s": walls["import"],
        "run_s": walls["run"],
        "sweep_s": walls["sweep"],
        "sweep_jobs": len(CELL_NAMES),
        "run_minus_import_s": walls["run"] - walls["import"],
        "sweep_job_s": (walls["sweep"] - walls["import"]) / len(CELL_NAMES),
        "import_peak_rss_mib": max(rss["import"]),
        "run_peak_rss_mib": max(rss["run"]),
        "sweep_peak_rss_mib": max(rss["sweep"]),
        "times": times,
        "overrides": opts.job_overrides,
    }


def add_training_steps(report: dict[str, Any], opts: argparse.Namespace) -> None:
    """Split [run]'s walls with the other sections' figures: the default run's training steps
    (model=scratch) timed at [loop]'s per-step speeds, how much of its wall no loop can avoid;
    and each sweep job's overhead beyond the steps [job] timed for the same three configs."""
    run, loop, job = report["run"], report.get("loop"), report.get("job")
    if loop is not None and not opts.overrides:  # [loop] ran the default config
        row = loop["rows"][0]
        steps = row["steps"] // loop["epochs"] * compose(opts.job_overrides).trainer.max_epochs
        run["run_steps"] = steps
        run["run_steps_plain_s"] = steps * row["plain_ms_per_step"] / 1e3
        run["run_steps_project_s"] = steps * row["project_ms_per_step"] / 1e3
    if job is not None:
        steps_s = statistics.mean(r["train_steps_s"] for r in job["rows"])
        run["sweep_job_overhead_s"] = run["sweep_job_s"] - steps_s


def print_table(r: dict[str, Any]) -> None:
    extra = f" with {' '.join(r['overrides'])}" if r["overrides"] else ""
    print(f"\n[run] whole processes{extra}")
    rows = [
        ["python -c 'import torch, lightning, hydra'", r["import_s"], r["import_peak_rss_mib"]],
        ["python train.py (default run)", r["run_s"], r["run_peak_rss_mib"]],
        [f"train.py -m model=... ({r['sweep_jobs']} jobs)", r["sweep_s"], r["sweep_peak_rss_mib"]],
    ]
    print(table(["process", "wall s", "peak RSS MiB"], rows))
    print(f"  train.py wall - import: {r['run_minus_import_s']:.2f} s")
    if "run_steps" in r:
        print(
            f"  of which the default run's {r['run_steps']} training steps, at [loop]'s speeds: "
            f"{r['run_steps_project_s']:.2f} s (plain loop: {r['run_steps_plain_s']:.2f} s)"
        )
    print(f"  sweep: {r['sweep_job_s']:.2f} s per job ((sweep wall - import) / jobs)")
    if "sweep_job_overhead_s" in r:
        print(
            f"  sweep: {r['sweep_job_overhead_s']:.2f} s per job besides its training steps "
            "(per job, minus [job]'s steps s)"
        )
    print("  the jobs of a sweep share one process: its peak RSS is that of the largest job")
