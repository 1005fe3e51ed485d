"""notebooks/tour.ipynb, the tutorial: committed without outputs, and it runs from top to bottom
(executed with nbclient in a real kernel, in a temporary working directory)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "tour.ipynb"


def test_the_committed_notebook_has_no_outputs():
    """Outputs are stripped in git: they are large (figures), and they would go stale."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code, "the notebook has no code cells"
    for number, cell in enumerate(code, 1):
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            f"code cell {number} of {NOTEBOOK.name} has outputs; strip them "
            "(jupyter nbconvert --clear-output --inplace notebooks/tour.ipynb)"
        )


@pytest.mark.slow
def test_the_notebook_runs(tmp_path):
    """Every cell runs without an error; the runs it makes go under its working directory."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises at the first cell that fails, with its traceback
    assert (tmp_path / "outputs").is_dir()
    reports = list((tmp_path / "outputs" / "multirun").glob("*/*/report/report.md"))
    assert len(reports) == 1
