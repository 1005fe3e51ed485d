"""The command line: run the chosen sections, print their tables and the targets, and write the
whole report (every repetition) as JSON with ``--json PATH``."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import rnnlab.bench
from rnnlab.bench import cells, data, job, loop, replicas, run
from rnnlab.bench import compile as compile_step  # not the builtin
from rnnlab.bench.common import machine_info, set_up_process, table, targets

SECTIONS = {
    "loop": loop,
    "cells": cells,
    "data": data,
    "compile": compile_step,
    "job": job,
    "run": run,
    "replicas": replicas,
}
DEFAULT_SIZES = ("32x4x32", "256x64x64", "64x512x64")  # BxLxH; the first is the default config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.bench", description=rnnlab.bench.__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions per measurement")
    parser.add_argument("--run-reps", type=int, default=2, help="repetitions in [job], [run]")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (train.py: threads)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per fit in [loop]")
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES), help="[cells] BxLxH list")
    parser.add_argument("--compile-sizes", default="32x4x32,256x64x64", help="[compile] BxLxH")
    parser.add_argument("--points", type=int, default=10**6, help="[data] series length")
    parser.add_argument("--seed-points", type=int, default=5000, help="[data] seed way at")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per cell measurement")
    parser.add_argument("--device", default="cpu", help="cpu or cuda ([loop], [cells], [compile])")
    parser.add_argument(
        "--replica-counts", default="1,4,8,16,64", help="[replicas] R values (R=1 always)"
    )
    parser.add_argument("--replica-epochs", type=int, default=10, help="[replicas] epochs per job")
    parser.add_argument(
        "--replica-overrides",
        nargs="*",
        default=list(replicas.DEFAULT_OVERRIDES),
        help="[replicas] config overrides (none: the default config)",
    )
    parser.add_argument(
        "--no-replica-processes",
        dest="replica_processes",
        action="store_false",
        help="[replicas] skip the fresh processes (peak RSS, the end-to-end sweeps)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the whole report here")
    parser.add_argument(
        "--overrides",
        nargs="*",
        default=[],
        help="config overrides for [loop], e.g. data.batch_size=256",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, one repetition, 1-epoch runs, no compile: checks that it works",
    )
    opts = parser.parse_args(argv)
    default = [s for s in SECTIONS if not (opts.quick and s == "compile")]
    opts.sections = default if opts.sections is None else opts.sections.split(",")
    unknown = set(opts.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    opts.job_overrides = []
    if opts.quick:
        opts.reps, opts.run_reps, opts.epochs, opts.budget = 1, 1, 1, 0.01
        opts.sizes, opts.compile_sizes = "8x4x8", "8x4x8"
        opts.points, opts.seed_points = 10**4, 500
        opts.job_overrides = ["trainer.max_epochs=1"]
        opts.replica_counts, opts.replica_epochs = "1,4", 1
    opts.sizes = opts.sizes.split(",")
    opts.compile_sizes = opts.compile_sizes.split(",")
    opts.replica_counts = [int(r) for r in opts.replica_counts.split(",")]
    return opts


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"rnnlab bench: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['torch_threads']} torch "
        f"thread(s), device {m['device']}; torch {m['torch']}, lightning {m['lightning']}, "
        f"Python {m['python']}; medians of {report['settings']['reps']} interleaved repetitions"
    )
    for name, section in SECTIONS.items():
        if name in report:
            section.print_table(report[name])
    quick = report["settings"].get("quick")
    # --quick checks that everything runs: 1-epoch fits of tiny sizes say nothing about targets
    print(
        "\n[targets]"
        + (" (--quick: tiny sizes, one repetition: not a measurement)" if quick else "")
    )
    rows = [[t["target"], t["value"], "met" if t["met"] else "NOT met"] for t in report["targets"]]
    print(table(["target", "measured", ""], rows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = parse_args(argv)
    set_up_process(opts.threads)
    report: dict[str, Any] = {
        "machine": machine_info(opts.threads, opts.device),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
    }
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        work = Path(tmp)
        if "loop" in opts.sections:
            report["loop"] = loop.measure(opts, work)
        if "cells" in opts.sections:
            report["cells"] = cells.measure(opts)
        if "data" in opts.sections:
            report["data"] = data.measure(opts)
        if "compile" in opts.sections:
            report["compile"] = compile_step.measure(opts)
        if "job" in opts.sections:
            report["job"] = job.measure(opts, work)
        if "run" in opts.sections:
            report["run"] = run.measure(opts, work)
            run.add_training_steps(report, opts)
        if "replicas" in opts.sections:
            report["replicas"] = replicas.measure(opts, work)
    report["targets"] = targets(report)
    print_report(report)
    if opts.json is not None:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON: {opts.json}")
    return report


if __name__ == "__main__":
    main()
