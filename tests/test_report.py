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


def _source_sweep(sweep, relu_factor: dict[str, float], noise: float = 0.0):
    """Single-network jobs of the source text's setup: 3 cells x tanh/relu x lr 0.01, 0.1 x 6
    seeds. lr 0.01 has the lower validation error everywhere; relu's test MSE is tanh's times
    ``relu_factor[cell]``, times a small per-seed wobble; the linear floor is 1e-6."""
    from helpers import write_job

    num = 0
    for cell in ("concat", "scratch", "torch"):
        readout = ("concat", "tanh") if cell == "concat" else ("linear", "identity")
        for act in ("tanh", "relu"):
            for lr in (0.01, 0.1):
                for seed, wobble in enumerate((0.004, -0.003, 0.006, 0.001, -0.002, 0.003)):
                    test = 1e-4 * (1 + seed) * (1 + 10 * lr)
                    if act == "relu":
                        test *= relu_factor[cell] * (1 + wobble)
                    config = {
                        "seed": seed,
                        "data": {"name": "sincos", "noise_std": noise, "seq_len": 4},
                        "model": {
                            "cell": cell,
                            "loss": "last",
                            "readout": readout[0],
                            "readout_activation": readout[1],
                        },
                    }
                    overrides = [f"model={cell}", f"model.nonlinearity={act}"]
                    overrides += [f"model.lr={lr}", f"seed={seed}"]
                    extra = {M.LINEAR_MSE: 1e-6, "config": config}
                    write_job(sweep, num, overrides, "ok", test, test * (1 + 10 * lr), **extra)
                    num += 1
    return sweep


def _section(sweep, figures):
    from rnnlab.analysis.report import Figures, study_section

    figures.mkdir(exist_ok=True)
    return "\n".join(study_section(sweep, Figures(figures)))


@pytest.mark.parametrize(
    ("factors", "answer", "verdict"),
    [
        ({"concat": 2.0, "scratch": 1.0, "torch": 0.5}, "No, it hurts", "relu higher"),
        ({"concat": 1.0, "scratch": 1.0, "torch": 1.0}, "No difference", "equivalent within"),
    ],
)
def test_the_source_section_answers_the_texts_question_from_the_numbers(
    tmp_path, factors, answer, verdict
):
    """relu twice tanh's error on the concat cell: a difference; relu within 1% of tanh on
    every seed: equivalent within +-10% by TOST. Either way the sentence states n, the interval,
    the Holm family of three cells and the lr policy; the table gives each arm's test MSE over
    the linear floor."""
    report = _section(_source_sweep(tmp_path / "source", factors), tmp_path / "figures")
    lead = next(line for line in report.splitlines() if "help on this dataset?**" in line)
    assert lead.startswith(f"**Does ReLU instead of tanh help on this dataset?** {answer}:")
    assert "for the concat cell as the text trains it (its tanh readout over [h_(t-1), x_t]" in lead
    ratio = factors["concat"] * 1.0015  # the geometric mean of the wobbles, to 3 digits
    assert f"ReLU's test MSE is {ratio:.3g}x tanh's [95% CI " in lead
    assert "over 6 seeds" in lead and verdict in lead
    assert "(Holm over the section's 3 claims: concat, scratch, torch)" in lead
    assert "from the grid 0.01, 0.1 (tanh 0.01 (edge), relu 0.01 (edge))" in lead
    if verdict.startswith("equivalent"):
        assert "(TOST, Holm-adjusted p = " in lead
    for cell in ("concat", "scratch", "torch"):
        assert f"- `model={cell}` (" in report
    # the floor table: one row per arm, test - floor and test / floor of its networks
    table = [r for r in report.splitlines() if r.startswith("| concat | tanh |")]
    assert len(table) == 2  # the generic arms table, and the floor table
    floor_row = table[1].split(" | ")
    tanh = 1e-4 * 3.5 * 1.1  # lr 0.01: 1e-4 (1 + seed) 1.1 for seeds 0..5, a median of 3.5
    assert floor_row[5] == f"{tanh:.3g}" and floor_row[6] == "1e-06"
    assert floor_row[7] == f"{tanh - 1e-6:.3g}" and floor_row[8] == f"{tanh / 1e-6:.3g}"


def test_a_study_off_the_source_setup_has_no_source_section(tmp_path):
    report = _section(
        _source_sweep(tmp_path / "noisy", {"concat": 2.0, "scratch": 1.0, "torch": 1.0}, 0.05),
        tmp_path / "figures",
    )
    assert "The source text's question" not in report and "`model.nonlinearity=relu`" in report


def test_the_gradient_reach_figure_draws_the_median_over_seeds_per_arm(tmp_path):
    """Two arms, each a job of 3 networks with per-network columns in csv/metrics.csv (the row of
    step 0 at initialisation, then one row per epoch): one line per arm, from epoch 0, at the
    median of its networks; study_section saves it as <study>_grad_reach.png."""
    from helpers import write_job

    from rnnlab.analysis.jobs import collect
    from rnnlab.analysis.networks import factors, networks
    from rnnlab.analysis.report import grad_reach_curves

    sweep = tmp_path / "sweep"
    tag = M.diagnostics_tag(M.GRAD_FIRST_OVER_LAST)
    for num, (act, scale) in enumerate((("tanh", 1.0), ("relu", 0.01))):
        reps = [{"seed": s, "test": 1e-3, "val": 1e-3} for s in range(3)]
        job = write_job(sweep, num, [f"act={act}", "replicas=3"], "ok", replicas=reps)
        (job / "csv").mkdir()
        rows = ["epoch,step," + ",".join(M.network_column(tag, r) for r in range(3)) + f",{tag}"]
        rows.append(",0," + ",".join(str(scale * (r + 1)) for r in range(3)) + ",9")
        for epoch in range(4):  # the reach shrinks tenfold an epoch
            values = [scale * (r + 1) * 0.1 ** (epoch + 1) for r in range(3)]
            rows.append(f"{epoch},{10 * epoch + 9}," + ",".join(map(str, values)) + ",9")
        rows.append(",40," + ",".join("7" for _ in range(3)) + ",7")  # the test's row: not drawn
        (job / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    jobs = collect(sweep)
    nets = networks(jobs, factors(jobs))
    fig = grad_reach_curves(jobs, nets, ["act"], "reach")
    lines = fig.axes[0].get_lines()
    assert sorted(line.get_label() for line in lines) == ["act=relu (n=3)", "act=tanh (n=3)"]
    tanh = next(line for line in lines if line.get_label().startswith("act=tanh"))
    assert list(tanh.get_xdata()) == [0, 1, 2, 3, 4]
    assert list(tanh.get_ydata()) == pytest.approx([2 * 0.1**e for e in range(5)])
    assert fig.axes[0].get_yscale() == "log"
    report = _section(sweep, tmp_path / "figures")
    assert "![sweep gradient reaching the first step through training]" in report
    assert (tmp_path / "figures" / "sweep_grad_reach.png").stat().st_size > 10_000


def _le2015_sweep(sweep, tests: dict[str, float]):
    """Single-network jobs of an adding-problem study over model=torch,irnn,lstm x lr 0.01,
    0.1 x 6 seeds under SGD: lr 0.01 has the lower validation error; each cell's test MSE is
    ``tests[cell]`` times a small per-seed wobble; the mean predictor scores 1/6."""
    from helpers import write_job

    num = 0
    for cell in ("torch", "irnn", "lstm"):
        for lr in (0.01, 0.1):
            for seed, wobble in enumerate((0.04, -0.03, 0.06, 0.01, -0.02, 0.03)):
                test = tests[cell] * (1 + wobble) * (1 + 10 * lr)
                config = {
                    "seed": seed,
                    "data": {"name": "adding", "seq_len": 50, "n_train": 2000, "batch_size": 16},
                    "model": {"cell": cell, "hidden_size": 100, "optimizer": "sgd"},
                    "trainer": {"gradient_clip_val": 1.0},
                }
                overrides = [f"model={cell}", f"model.lr={lr}", f"seed={seed}"]
                extra = {M.MEAN_MSE: 1 / 6, "config": config, "steps": 1500}
                write_job(sweep, num, overrides, "ok", test, test, **extra)
                num += 1
    return sweep


@pytest.mark.parametrize(
    ("tests", "verdict"),
    [
        ({"torch": 0.166, "irnn": 0.01, "lstm": 0.001}, "Reproduced at this budget"),
        ({"torch": 0.166, "irnn": 0.165, "lstm": 0.16}, "Not reproduced at this budget"),
        ({"torch": 0.05, "irnn": 0.01, "lstm": 0.001}, "Partly reproduced"),
        ({"torch": 0.01, "irnn": 0.05, "lstm": 0.001}, "Not reproduced: the IRNN's test MSE"),
    ],
)
def test_the_le2015_section_sets_the_budgets_side_by_side_and_decides_from_the_numbers(
    tmp_path, tests, verdict
):
    report = _section(_le2015_sweep(tmp_path / "le2015", tests), tmp_path / "figures")
    assert "### Le, Jaitly & Hinton 2015: the IRNN on the adding problem" in report
    assert "| sequence length T | 150, 200, 300, 400 | 50 |" in report
    assert "| training sequences | 100,000 | 2000 |" in report
    assert "| updates per network | not restated here | 1500, of 16 sequences |" in report
    lead = next(line for line in report.splitlines() if line.startswith("**Verdict.**"))
    assert lead.startswith(f"**Verdict.** {verdict}")
    # the generic arms table's row, then the section's
    row = [r for r in report.splitlines() if r.startswith("| irnn | 0.01 (edge) | 6 |")][-1]
    # the median over the 6 seeds of test / (1/6), at lr 0.01
    wobbles = sorted((0.04, -0.03, 0.06, 0.01, -0.02, 0.03))
    median = tests["irnn"] * 1.1 * (1 + (wobbles[2] + wobbles[3]) / 2) * 6
    assert row.split(" | ")[-1].rstrip(" |") == f"{median:.3g}"


def test_a_study_without_the_irnn_and_tanh_rnn_has_no_le2015_section(tmp_path):
    report = _section(
        _source_sweep(tmp_path / "source", {"concat": 2.0, "scratch": 1.0, "torch": 1.0}),
        tmp_path / "figures",
    )
    assert "Le, Jaitly & Hinton" not in report


def test_the_rates_figure_draws_divergence_and_success_against_lr_per_arm(tmp_path):
    """Two lengths (panels) x two cells x clip off/on (lines) x lr 0.01, 0.1: at lr 0.1 the
    unclipped networks diverge; at lr 0.01 the gru solves the task (under 0.1x the mean
    predictor's 1/6), the torch cell does not."""
    import pandas as pd

    from rnnlab.analysis.report import rates_figure

    rows = []
    for length in (20, 50):
        for cell in ("torch", "gru"):
            for clip in ("null", "1"):
                for lr in (0.01, 0.1):
                    for seed in range(4):
                        diverged = lr == 0.1 and clip == "null"
                        test = 0.001 if cell == "gru" else 0.15
                        rows.append(
                            {
                                "job": f"{length}-{cell}-{clip}-{lr}",
                                "data.seq_len": length,
                                "model": cell,
                                "trainer.gradient_clip_val": clip,
                                "model.lr": lr,
                                "seed": seed,
                                "status": "diverged" if diverged else "ok",
                                M.TEST_MSE: None if diverged else test,
                                M.MEAN_MSE: 1 / 6,
                            }
                        )
    nets = pd.DataFrame(rows)
    fig = rates_figure(nets, ["data.seq_len"], ["model", "trainer.gradient_clip_val"], 0.1)
    assert [ax.get_title() for ax in fig.axes] == ["seq_len=20", "seq_len=50"]
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 * 2 * 2  # four arms, a diverged and a solved line each
    labelled = {line.get_label(): line for line in lines if not line.get_label().startswith("_")}
    assert set(labelled) == {
        f"model={c}, gradient_clip_val={v}" for c in ("gru", "torch") for v in ("1", "null")
    }
    diverged = labelled["model=gru, gradient_clip_val=null"]
    assert list(diverged.get_xdata()) == [0.01, 0.1] and list(diverged.get_ydata()) == [0, 1]
    solved = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert sorted(tuple(ln.get_ydata()) for ln in solved) == [(0, 0), (0, 0), (1, 0), (1, 1)]
