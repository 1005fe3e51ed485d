"""``python -m rnnlab.sweep DIR``: rebuild a sweep's summary (``summary.csv``, ``groups.csv``,
``summary.md``, ``summary.png``; rnnlab.analysis.summary) from its job directories, at any time,
also for an unfinished or partly failed sweep::

    python -m rnnlab.sweep outputs/multirun/<date>/<time>

The argument is checked before pandas and matplotlib are imported, so a wrong one is refused at
once, in one line with exit status 2.
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.analysis.jobs import collect, not_a_jobs_dir
from rnnlab.config.errors import OneLineParser, refuse


def not_a_sweep(sweep_dir: Path) -> str | None:
    """Why ``sweep_dir`` cannot be summarised as a sweep, or None if it can."""
    problem = not_a_jobs_dir(sweep_dir)
    if problem is None and not any(job.multirun for job in collect(sweep_dir)):
        return (
            f"{sweep_dir} holds single runs, not the jobs of a -m sweep; summarise a sweep "
            "directory, outputs/multirun/<date>/<time>"
        )
    return problem


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m rnnlab.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="outputs/multirun/<date>/<time>")
    args = parser.parse_args(argv)
    problem = not_a_sweep(args.sweep_dir)
    if problem:
        refuse(problem)
    from rnnlab.analysis.summary import summarize  # pandas and matplotlib: seconds

    try:
        paths = summarize(args.sweep_dir)
    except OSError as err:  # a read-only or full disk: the jobs' own files are untouched
        refuse(f"cannot write {err.filename or args.sweep_dir}: {err.strerror or err}")
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
