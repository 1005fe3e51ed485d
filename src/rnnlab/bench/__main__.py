"""The command line: run the chosen sections, print their tables and the targets, and write the
whole report (every repetition) as JSON with ``--json PATH``.

Every argument, and every config override, is checked before a section is imported (they
import torch and Lightning: seconds), so a wrong one is refused at once, in one line with exit
status 2, and never after minutes of measuring.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import rnnlab.bench
from rnnlab.config.errors import OneLineParser, refuse

#: The sections, in the order they run; each is the module rnnlab.bench.<name>.
SECTIONS = ("loop", "cells", "data", "compile", "job", "run", "replicas", "fused")
DEFAULT_SIZES = ("32x4x32", "256x64x64", "64x512x64")  # BxLxH; the first is the default config
#: [replicas]: the config its jobs run, the default one, figures included
#: (``--replica-overrides KEY=VALUE ...`` to change it).
DEFAULT_REPLICA_OVERRIDES: tuple[str, ...] = ()
FUSED_STUDIES = ("activation", "clipping", "loss", "memory", "readout")  # conf/study/
DATA_SEQ_LEN = 64  # [data] builds windows of this length: the series needs more points


def section(name: str) -> ModuleType:
    """The module of section ``name`` (``compile`` is not the builtin)."""
    return importlib.import_module(f"rnnlab.bench.{name}")


def _int_at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _sizes(text: str) -> list[str]:
    """``32x4x32,256x64x64``: batch size x window length x hidden size, each >= 1."""
    sizes = text.split(",")
    for size in sizes:
        if not re.fullmatch(r"[1-9]\d*x[1-9]\d*x[1-9]\d*", size.strip().lower()):
            raise argparse.ArgumentTypeError(
                f"expected sizes BxLxH (batch x length x hidden, integers >= 1) separated by "
                f"commas, e.g. 32x4x32,256x64x64; got {size!r}"
            )
    return sizes


def _counts(text: str) -> list[int]:
    parse = _int_at_least(1)
    try:
        return [parse(r) for r in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected replica counts >= 1 separated by commas, e.g. 1,4,16; got {text!r}"
        ) from None


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(
        prog="python -m rnnlab.bench", description=rnnlab.bench.__doc__.split("\n\n")[0]
    )
    count = _int_at_least(1)
    parser.add_argument(
        "--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--reps", type=count, default=5, help="repetitions per measurement")
    parser.add_argument("--run-reps", type=count, default=2, help="repetitions in [job], [run]")
    parser.add_argument(
        "--threads", type=count, default=1, help="torch threads (train.py: threads)"
    )
    parser.add_argument("--epochs", type=count, default=20, help="epochs per fit in [loop]")
    parser.add_argument(
        "--sizes", type=_sizes, default=",".join(DEFAULT_SIZES), help="[cells] BxLxH list"
    )
    parser.add_argument(
        "--compile-sizes", type=_sizes, default="32x4x32,256x64x64", help="[compile] BxLxH"
    )
    points = _int_at_least(DATA_SEQ_LEN + 1)
    parser.add_argument("--points", type=points, default=10**6, help="[data] series length")
    parser.add_argument("--seed-points", type=points, default=5000, help="[data] seed way at")
    parser.add_argument(
        "--budget", type=_positive_float, default=0.2, help="seconds per cell measurement"
    )
    parser.add_argument(
        "--device", type=_device, default="cpu", help="cpu or cuda ([loop], [cells], [compile])"
    )
    parser.add_argument(
        "--replica-counts",
        type=_counts,
        default="1,4,8,16,64",
        help="[replicas] R values (R=1 always)",
    )
    parser.add_argument(
        "--replica-epochs", type=count, default=10, help="[replicas] epochs per job"
    )
    parser.add_argument(
        "--replica-overrides",
        nargs="*",
        default=list(DEFAULT_REPLICA_OVERRIDES),
        help="[replicas] config overrides (none: the default config)",
    )
    parser.add_argument(
        "--no-replica-processes",
        dest="replica_processes",
        action="store_false",
        help="[replicas] skip the fresh processes (peak RSS, the end-to-end sweeps)",
    )
    parser.add_argument(
        "--fused-studies",
        default=",".join(FUSED_STUDIES),
        help="[fused] studies run end to end with both launchers (empty: none)",
    )
    parser.add_argument("--fused-reps", type=count, default=1, help="[fused] study repetitions")
    parser.add_argument(
        "--fused-overrides", nargs="*", default=[], help="[fused] overrides for the studies"
    )
    parser.add_argument(
        "--pack-sizes", type=_counts, default="1,16,64,256,1024", help="[fused] pack sizes N"
    )
    parser.add_argument("--fused-epochs", type=count, default=3, help="[fused] epochs per fit")
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
    # [fused] runs the five studies twice: about half an hour here, so only when asked for
    default = [s for s in SECTIONS if not (opts.quick and s == "compile") and s != "fused"]
    opts.sections = default if opts.sections is None else opts.sections.split(",")
    unknown = [s for s in opts.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    opts.job_overrides = []
    if opts.quick:
        opts.reps, opts.run_reps, opts.epochs, opts.budget = 1, 1, 1, 0.01
        opts.sizes, opts.compile_sizes = ["8x4x8"], ["8x4x8"]
        opts.points, opts.seed_points = 10**4, 500
        opts.job_overrides = ["trainer.max_epochs=1"]
        opts.replica_counts, opts.replica_epochs = [1, 4], 1
        opts.pack_sizes, opts.fused_epochs = [1, 4], 1
        opts.fused_overrides = [*opts.fused_overrides, "trainer.max_epochs=1"]
    if opts.json is not None:
        problem = _not_writable(opts.json)
        if problem:
            refuse(f"--json {opts.json}: {problem}")
    studies = [s for s in opts.fused_studies.split(",") if s]
    unknown = [s for s in studies if s not in FUSED_STUDIES]
    if unknown:
        parser.error(f"--fused-studies: unknown {unknown}; choose from {','.join(FUSED_STUDIES)}")
    opts.fused_studies = studies
    _check_overrides(opts)
    return opts


def _not_writable(path: Path) -> str | None:
    """Why the report could not be written to ``path`` (after minutes of measuring), or None."""
    if path.is_dir():
        return "is a directory; give a file name, e.g. bench.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"cannot create {err.filename or path.parent}: {err.strerror or err}"
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"cannot write in {path.parent}: permission denied"
    return None


def _check_overrides(opts: argparse.Namespace) -> None:
    """Compose and check each config the chosen sections will run (Hydra, no torch), so that a
    bad override is refused before the first measurement, not when its section comes."""
    from rnnlab.bench.checkout import compose
    from rnnlab.config.cli import error_line

    threads = [f"threads={opts.threads}"]
    runs: list[tuple[str, list[str]]] = []
    if "loop" in opts.sections:
        runs.append(("--overrides", [*threads, *opts.overrides]))
    if {"job", "run"} & set(opts.sections):
        runs.append(("[job] and [run]", [*threads, *opts.job_overrides]))
    if "replicas" in opts.sections:
        most = max(opts.replica_counts)
        replicas = [f"replicas={most}"] if most > 1 else []
        runs.append(("--replica-overrides", [*threads, *replicas, *opts.replica_overrides]))
    for option, overrides in runs:
        try:
            compose(overrides)
        except Exception as err:
            line = error_line(err, overrides)
            if line is None:
                raise
            refuse(f"{option}: {line}")


def print_report(report: dict[str, Any]) -> None:
    from rnnlab.bench.common import table

    m = report["machine"]
    print(
        f"rnnlab bench: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['torch_threads']} torch "
        f"thread(s), device {m['device']}; torch {m['torch']}, lightning {m['lightning']}, "
        f"Python {m['python']}; medians of {report['settings']['reps']} interleaved repetitions"
    )
    for name in SECTIONS:
        if name in report:
            section(name).print_table(report[name])
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
    import torch

    from rnnlab.bench.common import machine_info, set_up_process, targets

    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        refuse(f"--device {opts.device}: torch finds no CUDA GPU here; use --device cpu")
    set_up_process(opts.threads)
    report: dict[str, Any] = {
        "machine": machine_info(opts.threads, opts.device),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
    }
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        work = Path(tmp)
        for name in (s for s in SECTIONS if s in opts.sections):  # in SECTIONS' order
            measure = section(name).measure
            # [loop], [job], [run] and [replicas] write runs into a scratch directory
            takes_work = name in ("loop", "job", "run", "replicas", "fused")
            report[name] = measure(opts, work) if takes_work else measure(opts)
            if name == "run":
                section("run").add_training_steps(report, opts)
    report["targets"] = targets(report)
    print_report(report)
    if opts.json is not None:
        try:
            opts.json.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as err:
            refuse(f"--json {opts.json}: cannot write it: {err.strerror or err}")
        print(f"\nJSON: {opts.json}")
    return report


if __name__ == "__main__":
    main()
