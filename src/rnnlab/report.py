"""``python -m rnnlab.report DIR [DIR ...]``: the answers of one or more sweeps (the study
presets, conf/study/), with their intervals, in ``report.md`` and its figures
(rnnlab.analysis.report). The report goes to ``DIR/report/`` of the first directory, or to
``--out``.

The arguments are checked before pandas, matplotlib and torch are imported, so a wrong one is
refused at once, in one line with exit status 2: a directory without jobs, or whose jobs have
no readable ``metrics.json`` (there would be nothing to report), or an ``--out`` that cannot be
written. Jobs without a readable ``metrics.json`` are named in the report and on stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rnnlab import metrics as M
from rnnlab.analysis.jobs import collect, not_a_jobs_dir
from rnnlab.analysis.stats import EQUIVALENCE_MARGIN, SUCCESS_FRACTION
from rnnlab.config.errors import OneLineParser, refuse


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def out_problem(out: Path, given: bool) -> str | None:
    """Why the report cannot go to ``out`` (a folder, or a ``.md`` file with its figures in the
    folder of the same name), or None."""
    what = f"--out {out}" if given else f"the report folder {out}"
    folder = out.with_suffix("") if out.suffix == ".md" else out
    if out.suffix == ".md" and out.is_dir():
        return f"{what} is a directory; give a folder, or a .md file name"
    if folder.exists() and not folder.is_dir():
        return f"{what}: {folder} is a file; give a folder, or a .md file name"
    base = _nearest_existing(folder)
    if not base.is_dir():
        return f"{what}: cannot create it, {base} is a file"
    if not os.access(base, os.W_OK):
        return f"{what}: cannot write in {base} (permission denied); give another --out"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m rnnlab.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep directories (one per study)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="a folder for report.md and its figures (default: DIR/report), or a .md file",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=EQUIVALENCE_MARGIN,
        help="equivalence margin: 'equivalent' when a TOST shows the ratio within +-MARGIN "
        f"(default {EQUIVALENCE_MARGIN:g}: +-{EQUIVALENCE_MARGIN:.0%})",
    )
    parser.add_argument(
        "--success",
        type=float,
        default=SUCCESS_FRACTION,
        help="a network solved a task with a mean baseline (adding) when its test MSE is below "
        f"SUCCESS x the mean predictor's (default {SUCCESS_FRACTION:g})",
    )
    opts = parser.parse_args(argv)
    if not 0 < opts.margin < 1:
        refuse(f"--margin {opts.margin:g}: give a fraction between 0 and 1 (0.1: +-10%)")
    if not 0 < opts.success < 1:
        refuse(f"--success {opts.success:g}: give a fraction between 0 and 1 of the mean's MSE")
    for d in opts.dirs:
        problem = not_a_jobs_dir(d)
        if problem:
            refuse(problem)
    jobs = {d: collect(d) for d in opts.dirs}
    if not any(job.record for found in jobs.values() for job in found):
        count = sum(len(found) for found in jobs.values())
        refuse(
            f"no job in {', '.join(map(str, opts.dirs))} has a readable {M.METRICS_FILE} "
            f"({count} job director{'ies' if count > 1 else 'y'}: still running, stopped before "
            "writing it, or damaged): there is nothing to report yet"
        )
    out = opts.out or opts.dirs[0] / "report"
    problem = out_problem(out, given=opts.out is not None)
    if problem:
        refuse(problem)
    from rnnlab.analysis.report import write_report  # pandas, matplotlib, scipy: seconds

    try:
        path = write_report(opts.dirs, out, opts.margin, opts.success)
    except OSError as err:  # a full disk, or a folder that cannot be made
        refuse(f"cannot write {err.filename or out}: {err.strerror or err}; give another --out")
    print(path)
    for d, found in jobs.items():
        missing = [job.path.name for job in found if not job.record]
        if missing:
            print(
                f"warning: {d}: {len(missing)} job{'s' if len(missing) > 1 else ''} without a "
                f"readable {M.METRICS_FILE}, named in the report, not counted: "
                + ", ".join(missing),
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
