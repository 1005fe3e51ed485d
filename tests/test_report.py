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


def test_each_half_of_the_seeds_is_reported_at_the_lr_the_other_half_chose():
    """Cross-fitting: seeds 0, 2 form one half, 1, 3 the other. tanh: lr 0.01 is best on
    validation in both halves (0.1 is better on test: never chosen for it). relu: lr 0.1 is
    best on the networks that finished, but in half {0, 2} one of its two diverged, a median
    of +inf: that half chooses 0.01, and its networks are reported at the 0.1 the other half
    chose."""
    rows = []
    for act, lr, val, test in [
        ("tanh", 0.01, 1.0, 10.0),
        ("tanh", 0.1, 2.0, 1.0),
        ("relu", 0.01, 3.0, 3.0),
        ("relu", 0.1, 0.5, 5.0),
    ]:
        for seed in range(4):
            diverged = (act, lr, seed) == ("relu", 0.1, 2)
            rows.append(
                {
                    "seed": seed,
                    "status": "diverged" if diverged else "ok",
                    "act": act,
                    LR: lr,
                    M.VAL_MSE_BEST: val,
                    M.TEST_MSE: test,
                }
            )
    selected, arms, chosen = at_best_lr(pd.DataFrame(rows), ["act", LR])
    assert arms == ["act"] and LR not in selected
    assert chosen[("tanh",)].by_half == {0: 0.01, 1: 0.01}
    assert chosen[("relu",)].by_half == {0: 0.1, 1: 0.01}
    assert chosen[("relu",)].text() == "0.1 / 0.01 (edge)"
    relu = selected[selected["act"] == "relu"].sort_values("seed")
    assert list(relu["status"]) == ["ok", "ok", "diverged", "ok"]
    assert list(relu[M.TEST_MSE].fillna(-1)) == [5.0, 3.0, 5.0, 3.0]
    assert sorted(selected[selected["act"] == "tanh"][M.TEST_MSE]) == [10.0] * 4


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
        [sys.executable, "-m", "rnnlab.report", str(sweep)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = (sweep / "report" / "report.md").read_text()
    assert "`model.nonlinearity=relu` vs `tanh`: test MSE" in report
    assert "[95% CI" in report and "geometric mean ratio over 3 seeds" in report
    assert "lr (chosen on the other half)" in report  # the lr is a nuisance, chosen held out
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


def test_report_names_the_jobs_it_cannot_read(tmp_path, capsys):
    """A job whose metrics.json was cut off, or holds no record, is named in report.md and on
    stderr, as summary.md names it; a damaged csv/metrics.csv is left out of the curves, named."""
    from test_groups import write_job

    from rnnlab.report import main

    sweep = tmp_path / "sweep"
    for num, act in enumerate(("tanh", "relu", "tanh", "relu")):
        write_job(sweep, num, [f"act={act}", f"seed={num // 2}"], "ok", 1e-3, 1e-3)
    cut = write_job(sweep, 4, ["act=tanh", "seed=2"], "ok", 1e-3, 1e-3)
    (cut / "metrics.json").write_text('{"status": "ok", "test/m')
    listed = write_job(sweep, 5, ["act=relu", "seed=2"], "ok", 1e-3, 1e-3)
    (listed / "metrics.json").write_text("[1, 2]")
    (sweep / "0_act=tanh,seed=0" / "csv").mkdir()
    (sweep / "0_act=tanh,seed=0" / "csv" / "metrics.csv").write_bytes(b"\xe3\x00\xff")
    main([str(sweep), "--out", str(tmp_path / "report.md")])
    out, err = capsys.readouterr()
    report = (tmp_path / "report.md").read_text()
    assert "4 jobs, 4 networks" in report
    assert "Not in this report: 2 jobs without a readable `metrics.json`" in report
    assert "- `4_act=tanh,seed=2`: unreadable metrics.json: Unterminated string" in report
    assert "- `5_act=relu,seed=2`: unreadable metrics.json: a JSON list, not an object" in report
    assert "Left out of the learning curves, unreadable: `0_act=tanh,seed=0/csv/metrics.csv`" in (
        report
    )
    assert out.strip() == str(tmp_path / "report.md")
    assert err.count("\n") == 1 and "2 jobs without a readable metrics.json" in err
    assert "4_act=tanh,seed=2, 5_act=relu,seed=2" in err


def test_the_equivalence_margin_is_an_option_and_a_wrong_one_is_refused(tmp_path, capsys):
    """Arms within 1% of each other on every seed: equivalent within the default +-10%,
    inconclusive within +-0.1%; a margin of 2 (200%) is refused in one line, exit status 2."""
    from test_groups import write_job

    from rnnlab.report import main

    sweep = tmp_path / "sweep"
    for seed, wobble in enumerate((0.004, -0.003, 0.006, 0.001, -0.002, 0.003)):
        base = 1e-3 * (1 + seed)
        write_job(sweep, 2 * seed, ["act=tanh", f"seed={seed}"], "ok", base, base)
        near = base * (1 + wobble)
        write_job(sweep, 2 * seed + 1, ["act=relu", f"seed={seed}"], "ok", near, near)
    for margin, verdict in ((None, "equivalent within +-10%"), ("0.001", "inconclusive")):
        out = tmp_path / f"report_{margin}.md"
        main([str(sweep), "--out", str(out), *(["--margin", margin] if margin else [])])
        sentence = next(line for line in out.read_text().splitlines() if "`act=relu`" in line)
        assert verdict in sentence
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep), "--margin", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--margin 2: give a fraction between 0 and 1" in err
