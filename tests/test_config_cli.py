"""Bad config on the real command line: one line on stderr, exit status 2, no traceback, and no
directory written (so nothing trained). Each case is a real ``python train.py`` process."""

from __future__ import annotations

import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import ROOT, run_train
from test_config import BAD_INPUTS, ISSUE_BAD_INPUTS

from rnnlab.config import checks

pytestmark = pytest.mark.slow

#: The command lines: each bad input the issue lists (test_config.py checks the others
#: in-process), then sweeps and resume.
CASES = {override: (override,) for override in ISSUE_BAD_INPUTS}
CASES.update(
    {
        "bad value in a sweep": ("-m", "model.hidden_size=8,0"),
        "bad value in a sweep preset": ("-m", "sweep=quick", "model.lr=0"),
        "ddp in a sweep": ("-m", "trainer=ddp", "seed=1,2"),
        "resume a missing dir": ("resume=does/not/exist",),
        "resume in a sweep": ("-m", "resume=outputs"),
        "a network too large for memory": ("model.num_layers=1000000",),
    }
)
if not torch.cuda.is_available():  # a GPU asked for where there is none: before any directory
    CASES["gpu on a machine without one"] = ("trainer.accelerator=gpu",)

#: replicas=R: the command lines, and what their line starts with.
REPLICA_CASES = {
    "replicas=0": (("replicas=0",), "replicas=0 is not allowed; expected 1 to 4096"),
    "replicas=-1": (("replicas=-1",), "replicas=-1 is not allowed; expected 1 to 4096"),
    "replicas=1.5": (("replicas=1.5",), "replicas=1.5 is not allowed; expected an integer"),
    "replicas=5000": (("replicas=5000",), "replicas=5000 is not allowed; expected 1 to 4096"),
    "replicas past the highest seed": (
        ("seed=4294967295", "replicas=2"),
        "replicas=2 is not allowed; expected at most 1 with seed=4294967295: the highest seed",
    ),
    "overlapping seeds in a sweep": (
        ("-m", "seed=0,1", "replicas=5"),
        "seed=0,1 with replicas=5 trains seeds 1..4 twice; use seed=0,5 (seeds step by replicas)",
    ),
}
_MEMORY = checks._memory_bytes()
if _MEMORY is not None:  # one network takes about 1/64 of this machine's memory: 4096 do not fit
    _HIDDEN = math.isqrt(_MEMORY // (64 * checks.TRAIN_BYTES_PER_PARAM))
    REPLICA_CASES["replicas too many for memory"] = (
        (f"model.hidden_size={_HIDDEN}", "replicas=4096"),
        "replicas=4096 is not allowed; expected at most ",
    )
CASES.update({name: args for name, (args, _) in REPLICA_CASES.items()})


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every case (a few at a time: each costs a Python start and Hydra's import)."""
    root = tmp_path_factory.mktemp("cli")

    def one(item):
        name, args = item
        out = root / str(abs(hash(name)))
        proc = run_train(*args, f"hydra.run.dir={out}/run", f"hydra.sweep.dir={out}/sweep")
        return name, (proc, out)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, CASES.items()))


@pytest.mark.parametrize("case", CASES)
def test_bad_config_exits_2_with_one_line_and_writes_nothing(results, case):
    proc, out = results[case]
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists(), "a run or sweep directory was created"
    if case in BAD_INPUTS:
        key, _, value = case.lstrip("+").partition("=")
        assert f"{key}={value}" in lines[0] and BAD_INPUTS[case] in lines[0]


@pytest.mark.parametrize("case", REPLICA_CASES)
def test_bad_replicas_line_names_replicas_and_what_is_allowed(results, case):
    proc, _ = results[case]
    assert proc.stderr.strip().startswith(f"error: {REPLICA_CASES[case][1]}"), proc.stderr


def test_hydra_full_error_shows_the_traceback(tmp_path):
    proc = run_train("model=gpt", f"hydra.run.dir={tmp_path}/run", env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_bad_config_path_never_imports_torch(tmp_path):
    """What keeps a bad command line at about a second: no torch (and no Lightning) on its way."""
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['train.py', 'model.hidden_size=0', 'hydra.run.dir={tmp_path}/run']\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'train.py')!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code, 'torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.stdout.split() == ["exit", "2", "False", "False"], proc.stdout + proc.stderr


def test_help_and_cfg_still_work():
    helped = run_train("--help")
    assert helped.returncode == 0
    assert "model: concat, gru, irnn, lstm, scratch, torch" in helped.stdout
    # what every key means, from the schema, and the launchers a sweep can use
    assert "model.hidden_size" in helped.stdout and "hidden units per layer" in helped.stdout
    assert "hidden units per layer (default: 32)" in helped.stdout  # the schema's default
    assert "joblib" in helped.stdout and "submitit_slurm" in helped.stdout
    assert "(data=adding)" in helped.stdout and "data.n_train" in helped.stdout  # every task
    assert "model_defaults" not in helped.stdout
    shown = run_train("model=concat", "--cfg", "job")
    assert shown.returncode == 0 and "cell: concat" in shown.stdout


def count_validations(tmp_path, *args: str) -> list[str]:
    """Run train.py in a real process with ``rnnlab.config.checks.validate`` counted; returns the
    process's last stdout line: ``validated N``."""
    script = (
        "import runpy, sys\n"
        "import rnnlab.config.checks, rnnlab.training.experiment, rnnlab.config.hydra_callbacks\n"
        "calls = []\n"
        "real = rnnlab.config.checks.validate\n"
        "def counted(cfg):\n"
        "    calls.append(1)\n"
        "    return real(cfg)\n"
        "rnnlab.config.hydra_callbacks.validate = rnnlab.training.experiment.validate = counted\n"
        f"sys.argv = ['train.py', *{list(args)!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'train.py')!r}, run_name='__main__')\n"
        "finally:\n"
        "    print('validated', len(calls))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_each_job_is_validated_once(tmp_path):
    tiny = ["data.n_points=200", "trainer.max_epochs=1", "logger.figures=false"]
    single = count_validations(tmp_path, *tiny, f"hydra.run.dir={tmp_path}/run")
    assert single == "validated 1"  # by the Hydra callback, before the run directory exists
    sweep = count_validations(
        tmp_path, "-m", "model=scratch,torch", *tiny, f"hydra.sweep.dir={tmp_path}/sweep"
    )
    assert sweep == "validated 2"  # each job once, up front; none again inside the jobs
