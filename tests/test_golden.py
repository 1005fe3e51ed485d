"""The default run of each cell gives exactly the metrics.json numbers in golden/metrics.json.

A change that is not meant to change results leaves them bit-identical. A change that is meant
to updates golden/metrics.json in the same commit and says why in its message:

    python tests/test_golden.py --update     # reruns the three default runs (about a minute)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import run_train

from rnnlab import metrics as M
from rnnlab.choices import CELLS

GOLDEN = Path(__file__).parent / "golden" / "metrics.json"
#: The runs, by the command line after ``python train.py``: each cell's default run, and the
#: same with each cell's own initialisation (``model.init=native``, the default before it was
#: ``torch``: these must keep the numbers they always had).
RUNS = [f"model={cell}{init}" for init in ("", " model.init=native") for cell in CELLS]
#: Everything a default run's metrics.json holds that must not move: the numbers, not the times.
EXACT = (*M.FINAL_METRICS, "status", "epochs", "steps", "params")


def golden_run(command: str, out: Path) -> dict:
    """``python train.py <command>``, as the README's first command runs it."""
    run_dir = out / command.replace(" ", "_").replace("=", "-")
    proc = run_train(*command.split(), f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((run_dir / M.METRICS_FILE).read_text())
    return {key: record.get(key) for key in EXACT}


@pytest.mark.slow
@pytest.mark.parametrize("command", RUNS)
def test_default_run_matches_golden_metrics(command, tmp_path):
    golden = json.loads(GOLDEN.read_text())[command]
    assert golden_run(command, tmp_path) == golden  # exact: == on floats, no tolerance


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    with tempfile.TemporaryDirectory() as tmp:
        golden = {command: golden_run(command, Path(tmp)) for command in RUNS}
    GOLDEN.write_text(json.dumps(golden, indent=2) + "\n")
    print(GOLDEN.read_text())
