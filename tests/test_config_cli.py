"""Bad config on the real command line: one line on stderr, exit status 2, no traceback, and no
directory written (so nothing trained). Each case is a real ``python train.py`` process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_train
from test_config import BAD_INPUTS, ISSUE_BAD_INPUTS

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
    }
)


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


def test_hydra_full_error_shows_the_traceback(tmp_path):
    proc = run_train("model=lstm", f"hydra.run.dir={tmp_path}/run", env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_and_cfg_still_work():
    helped = run_train("--help")
    assert helped.returncode == 0 and "model: concat, scratch, torch" in helped.stdout
    shown = run_train("model=concat", "--cfg", "job")
    assert shown.returncode == 0 and "cell: concat" in shown.stdout
