"""``python -m rnnlab.report``: the learning rate as a nuisance, and a real tanh/relu sweep's
report with its comparison and interval."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, run_train

from rnnlab import metrics as M
from rnnlab.analysis.report import LR, at_best_lr


def test_each_arm_is_compared_at_its_own_best_learning_rate():
    rows = []
    for act, lr, val, test in [
        ("tanh", 0.01, 1.0, 10.0),
        ("tanh", 0.1, 2.0, 1.0),  # better on test, worse on validation: not chosen
        ("relu", 0.01, 3.0, 3.0),
        ("relu", 0.1, 0.5, 5.0),
    ]:
        for seed in (0, 1):
            rows.append(
                {
                    "seed": seed,
                    "status": "ok",
                    "act": act,
                    LR: lr,
                    M.VAL_MSE_BEST: val,
                    M.TEST_MSE: test,
                }
            )
    rows.append({"seed": 2, "status": "diverged", "act": "relu", LR: 0.01})
    selected, arms, chosen = at_best_lr(pd.DataFrame(rows), ["act", LR])
    assert arms == ["act"] and chosen == {("tanh",): 0.01, ("relu",): 0.1}
    assert LR not in selected
    assert sorted(selected[M.TEST_MSE]) == [5.0, 5.0, 10.0, 10.0]


@pytest.mark.slow
def test_report_of_a_tanh_relu_sweep_states_the_comparison_with_its_interval(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_train(
        "-m",
        "model=scratch",
        "model.nonlinearity=tanh,relu",
        "model.lr=0.003,0.01",
        "replicas=3",
        "trainer.max_epochs=3",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = subprocess.run(
        [sys.executable, "-m", "rnnlab.analysis.report", str(sweep)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = (sweep / "report" / "report.md").read_text()
    assert "`model.nonlinearity=relu` vs `tanh`: test MSE" in report
    assert "[95% CI" in report and "paired ratios" in report
    assert "best lr" in report  # the lr is a nuisance: each arm at its own best
    for name in ("sweep_forest.png", "sweep_grad_flow.png"):
        assert (sweep / "report" / name).stat().st_size > 10_000
    # its numbers are the groups' of the same networks
    groups = pd.read_csv(sweep / "groups.csv")
    assert len(groups) == 4 and set(groups["n"]) == {3}


def test_report_and_summary_order_a_factors_values_alike(tmp_path):
    """The command line's order, data=sincos_noisy,adding_short: the summary's effects take
    sincos_noisy as the reference and the report answers for it first."""
    from test_groups import write_job

    from rnnlab.analysis.jobs import collect
    from rnnlab.analysis.report import Figures, study_section
    from rnnlab.analysis.summary import markdown

    num = 0
    for task in ("sincos_noisy", "adding_short"):
        for act in ("tanh", "relu"):
            for seed in range(3):
                val = 1e-3 * (1 + seed) * (2 if act == "relu" else 1)
                write_job(
                    tmp_path, num, [f"data={task}", f"act={act}", f"seed={seed}"], "ok", val, val
                )
                num += 1
    md = markdown(collect(tmp_path), "s")
    assert "`data=adding_short` vs `sincos_noisy`" in md
    (tmp_path / "figures").mkdir()
    report = "\n".join(study_section(tmp_path, Figures(tmp_path / "figures")))
    assert report.index("On `data=sincos_noisy`") < report.index("On `data=adding_short`")
