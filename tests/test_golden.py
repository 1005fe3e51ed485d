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
from conftest import DEFAULT_RUNS, default_run

from rnnlab import metrics as M

GOLDEN = Path(__file__).parent / "golden" / "metrics.json"
#: Everything a default run's metrics.json holds that must not move: the numbers, not the times.
EXACT = (*M.FINAL_METRICS, "status", "epochs", "steps", "params")


def exact_numbers(proc, run_dir: Path) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((run_dir / M.METRICS_FILE).read_text())
    return {key: record.get(key) for key in EXACT}


@pytest.mark.slow
@pytest.mark.parametrize("command", DEFAULT_RUNS)
def test_default_run_matches_golden_metrics(command, default_runs):
    """The runs of ``DEFAULT_RUNS`` (made once, shared with tests/test_train_e2e.py)."""
    golden = json.loads(GOLDEN.read_text())[command]
    assert exact_numbers(*default_runs[command]) == golden  # exact: == on floats, no tolerance


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    with tempfile.TemporaryDirectory() as tmp:
        golden = {c: exact_numbers(*default_run(c, Path(tmp))) for c in DEFAULT_RUNS}
    GOLDEN.write_text(json.dumps(golden, indent=2) + "\n")
    print(GOLDEN.read_text())
