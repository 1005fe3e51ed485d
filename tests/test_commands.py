"""The ``python -m`` commands (rnnlab.sweep, rnnlab.report, rnnlab.bench) refuse a bad argument
in one line with exit status 2, before they import pandas, matplotlib, scipy, torch or Lightning
(seconds): each case runs the real command in a fresh interpreter and reads what it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "matplotlib", "scipy", "torch", "lightning")

#: The command, its arguments, and what its one line says.
CASES = {
    "sweep: no such directory": ("rnnlab.sweep", ["{tmp}/nope"], "nope does not exist"),
    "sweep: a file": ("rnnlab.sweep", ["{tmp}/file"], "is a file, not a directory"),
    "sweep: no jobs": ("rnnlab.sweep", ["{tmp}/empty"], "holds no job directories"),
    "sweep: one run's directory": ("rnnlab.sweep", ["{tmp}/run"], "the directory of one run"),
    "sweep: unknown option": ("rnnlab.sweep", ["--bogus", "{tmp}"], "unrecognized arguments"),
    "report: no such directory": ("rnnlab.report", ["{tmp}/nope"], "nope does not exist"),
    "report: no jobs": ("rnnlab.report", ["{tmp}/empty"], "holds no job directories"),
    "report: a file": ("rnnlab.report", ["{tmp}/sweep", "{tmp}/file"], "is a file"),
    "report: no directory": ("rnnlab.report", [], "the following arguments are required"),
    "report: no job has finished": (
        "rnnlab.report",
        ["{tmp}/unfinished"],
        "no job in {tmp}/unfinished has a readable metrics.json (2 job directories",
    ),
    "report: --out is a file": (
        "rnnlab.report",
        ["{tmp}/sweep", "--out", "{tmp}/file"],
        "is a file; give a folder, or a .md file name",
    ),
    "report: --out under a file": (
        "rnnlab.report",
        ["{tmp}/sweep", "--out", "{tmp}/file/report.md"],
        "cannot create it",
    ),
    "bench: unknown option": ("rnnlab.bench", ["--bogus"], "unrecognized arguments: --bogus"),
    "bench: unknown section": ("rnnlab.bench", ["--sections", "nope"], "unknown sections"),
    "bench: zero repetitions": ("rnnlab.bench", ["--reps", "0"], "expected an integer >= 1"),
    "bench: bad sizes": ("rnnlab.bench", ["--sizes", "32x4"], "expected sizes BxLxH"),
    "bench: bad replica counts": ("rnnlab.bench", ["--replica-counts", "1,x"], "replica counts"),
    "bench: bad device": ("rnnlab.bench", ["--device", "gpu"], "expected cpu, cuda or cuda:N"),
    "bench: --json in a directory that cannot be made": (
        "rnnlab.bench",
        ["--json", "{tmp}/file/bench.json"],
        "--json",
    ),
    "bench: --json is a directory": ("rnnlab.bench", ["--json", "{tmp}"], "is a directory"),
    "bench: bad config override": (
        "rnnlab.bench",
        ["--sections", "loop", "--overrides", "model.hidden_size=0"],
        "--overrides: model.hidden_size=0 is not allowed; expected an integer >= 1",
    ),
    "bench: unknown config key": (
        "rnnlab.bench",
        ["--sections", "replicas", "--replica-overrides", "model.hidden=8"],
        "--replica-overrides: model.hidden=8: there is no key model.hidden",
    ),
}

#: Runs the command as ``python -m`` does, then prints its exit status and the heavy modules
#: it had imported by then.
SCRIPT = """
import json, runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    code = 0
except SystemExit as exit:
    code = exit.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("commands")
    (tmp / "file").write_text("not a directory\n")
    (tmp / "empty" / "notes").mkdir(parents=True)
    (tmp / "run" / ".hydra").mkdir(parents=True)
    (tmp / "sweep" / "0_model=torch" / ".hydra").mkdir(parents=True)
    (tmp / "sweep" / "0_model=torch" / "metrics.json").write_text('{"status": "ok"}')
    for job in ("0_seed=0", "1_seed=1"):  # still running: no metrics.json yet
        (tmp / "unfinished" / job / ".hydra").mkdir(parents=True)
    return tmp


@pytest.mark.parametrize("case", CASES)
def test_bad_argument_is_one_line_exit_2_before_the_heavy_imports(places, case):
    module, args, says = CASES[case]
    argv = [a.format(tmp=places) for a in args]
    script = SCRIPT.format(heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", script, module, *argv], capture_output=True, text=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 2, "heavy": []}, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert says.format(tmp=places) in lines[0]


def test_sweep_summary_that_cannot_be_written_is_one_line(tmp_path, capsys):
    """A read-only or full disk, or a folder in the way: the jobs' files stay untouched."""
    from test_groups import write_job

    from rnnlab import sweep

    write_job(tmp_path, 0, ["model=torch"], "ok", 1e-4, 1e-4)
    (tmp_path / "summary.csv").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        sweep.main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot write {tmp_path / 'summary.csv'}: Is a directory\n"
