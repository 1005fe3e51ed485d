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

GOLDEN = Path(__file__).parent / "golden" / "metrics.json"
CELLS = ("scratch", "concat", "torch")
#: Everything a default run's metrics.json holds that must not move: the numbers, not the times.
EXACT = (*M.FINAL_METRICS, "status", "epochs", "steps", "params")


def default_run(cell: str, out: Path) -> dict:
    """``python train.py model=<cell>``, as the README's first command runs it."""
    run_dir = out / cell
    proc = run_train(f"model={cell}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((run_dir / M.METRICS_FILE).read_text())
    return {key: record.get(key) for key in EXACT}


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_default_run_matches_golden_metrics(cell, tmp_path):
    golden = json.loads(GOLDEN.read_text())[cell]
    assert default_run(cell, tmp_path) == golden  # exact: == on floats, no tolerance


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    with tempfile.TemporaryDirectory() as tmp:
        golden = {cell: default_run(cell, Path(tmp)) for cell in CELLS}
    GOLDEN.write_text(json.dumps(golden, indent=2) + "\n")
    print(GOLDEN.read_text())
