"""``python -m rnnlab.report DIR [DIR ...]``: the answers of one or more sweeps (the study
presets, conf/study/), with their intervals, in ``report.md`` and its figures
(rnnlab.analysis.report). The report goes to ``DIR/report/`` of the first directory, or to
``--out``.

The arguments are checked before pandas, matplotlib and torch are imported, so a wrong one is
refused at once, in one line with exit status 2.
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.analysis.jobs import not_a_jobs_dir
from rnnlab.config.errors import OneLineParser, refuse


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m rnnlab.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="sweep directories (one per study)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="a folder for report.md and its figures (default: DIR/report), or a .md file",
    )
    opts = parser.parse_args(argv)
    for d in opts.dirs:
        problem = not_a_jobs_dir(d)
        if problem:
            refuse(problem)
    from rnnlab.analysis.report import write_report  # pandas, matplotlib, scipy: seconds

    print(write_report(opts.dirs, opts.out))


if __name__ == "__main__":
    main()
