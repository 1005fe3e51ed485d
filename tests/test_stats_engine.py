"""The statistics engine on job directories with known values, checked against independent
computations (numpy and the t, beta distributions by hand): groups.csv, the effect sentences of
summary.md and the report, which must say the same (one engine).

The sweep: ``model`` in scratch, torch, concat x ``act`` in tanh, relu, 6 seeds, on a task with a
mean baseline (1/6, as the adding problem). ``torch`` repeats ``scratch`` network for network
(the same networks by construction); scratch/relu's seed 5 diverged (so did torch's); concat is
bimodal: some seeds solve the task, the others stay at the mean predictor's 0.166.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import write_job
from scipy import stats as sps

from rnnlab import metrics as M
from rnnlab.analysis import groups
from rnnlab.analysis import summary as sweep
from rnnlab.analysis.jobs import collect
from rnnlab.analysis.report import Figures, study_section

SEEDS = 6
MEAN_MSE = 1 / 6
F = np.exp(0.3 * np.array([0.5, -1.0, 0.2, 1.3, -0.4, 0.1]))  # each seed's data: shared
G = np.array([0.5, 0.6, 0.4, 0.7, 0.55, np.nan])  # relu's gain on scratch; seed 5 diverged
TEST = {
    ("scratch", "tanh"): 0.01 * F,
    ("scratch", "relu"): 0.01 * F * G,
    ("concat", "tanh"): np.array([0.004, 0.006, 0.005, 0.166, 0.167, 0.165]),
    ("concat", "relu"): np.array([0.003, 0.004, 0.166, 0.166, 0.160, 0.004]),
}
for _act in ("tanh", "relu"):
    TEST[("torch", _act)] = TEST[("scratch", _act)]


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """The sweep's job directories, summarised (summary.md, groups.csv, networks.csv)."""
    tmp_path = tmp_path_factory.mktemp("known")
    num = 0
    for model in ("scratch", "torch", "concat"):
        for act in ("tanh", "relu"):
            values = TEST[(model, act)]
            reps = [
                {"seed": s, "test": v, "val": v}
                if np.isfinite(v)
                else {"seed": s, "status": "diverged"}
                for s, v in enumerate(values)
            ]
            job = write_job(
                tmp_path, num, [f"model={model}", f"act={act}", f"replicas={SEEDS}"], replicas=reps
            )
            record = json.loads((job / M.METRICS_FILE).read_text())
            for rep in record["replicas"]:
                rep[M.MEAN_MSE] = MEAN_MSE
            (job / M.METRICS_FILE).write_text(json.dumps(record))
            num += 1
    sweep.summarize(tmp_path)
    return tmp_path


def t_interval(d: np.ndarray) -> tuple[float, float, float]:
    """The mean of ``d``, its 95% t-interval (by hand) and the two-sided t-test's p-value."""
    se = d.std(ddof=1) / np.sqrt(len(d))
    half = sps.t.ppf(0.975, len(d) - 1) * se
    p = 2 * sps.t.sf(abs(d.mean()) / se, len(d) - 1)
    return d.mean() - half, d.mean() + half, p


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    low = sps.beta.ppf(0.025, k, n - k + 1) if k else 0.0
    high = sps.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return low, high


def holm(p: list[float]) -> list[float]:
    order = np.argsort(p)
    adjusted, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return list(adjusted)


def solved(model: str) -> int:
    """The model's networks, both activations, below 0.1 of the mean predictor's MSE (a
    diverged one, NaN here, never)."""
    return int(sum((TEST[(model, a)] < 0.1 * MEAN_MSE).sum() for a in ("tanh", "relu")))


def relu_vs_tanh_logs() -> np.ndarray:
    """Each seed's mean log ratio relu/tanh over the distinct configurations (torch repeats
    scratch: counted once), pairs with a diverged network left out of the ratio."""
    logs = np.log(
        np.vstack([TEST[(m, "relu")] / TEST[(m, "tanh")] for m in ("scratch", "concat")])
    )
    return np.nanmean(logs, axis=0)


def concat_vs_scratch_logs() -> np.ndarray:
    logs = np.log(
        np.vstack([TEST[("concat", a)] / TEST[("scratch", a)] for a in ("tanh", "relu")])
    )
    return np.nanmean(logs, axis=0)


def test_groups_csv_counts_duplicates_divergence_and_success(known):
    table = pd.read_csv(known / groups.GROUPS_NAME).set_index(["model", "act"])
    assert table.loc[("torch", "relu"), "duplicate_of"] == "model=scratch, act=relu"
    assert table.loc[("torch", "tanh"), "duplicate_of"] == "model=scratch, act=tanh"
    assert pd.isna(table.loc[("concat", "relu"), "duplicate_of"])
    relu = table.loc[("scratch", "relu")]
    assert (relu["n"], relu["ok"], relu["diverged"]) == (6, 5, 1)
    # the diverged network is +inf in the median and the IQM, absent from the mean
    values = TEST[("scratch", "relu")]
    worst = np.sort(np.where(np.isnan(values), np.inf, values))
    assert relu[f"{M.TEST_MSE}_median"] == pytest.approx((worst[2] + worst[3]) / 2)
    assert relu[f"{M.TEST_MSE}_iqm"] == pytest.approx(worst[1:5].mean())
    assert relu[f"{M.TEST_MSE}_mean"] == pytest.approx(np.nanmean(TEST[("scratch", "relu")]))
    # the diverged network never solved it; concat/tanh: 3 of 6, the successes' median error
    assert (relu["solved"], relu["trained"]) == (5, 6)
    concat = table.loc[("concat", "tanh")]
    assert concat["solved"] == 3 and concat["solved_rate"] == 0.5
    expected = clopper_pearson(3, 6)
    assert (concat["solved_ci_low"], concat["solved_ci_high"]) == pytest.approx(expected)
    assert concat["solved_test_median"] == pytest.approx(0.005)
    # the geometric mean's interval: the t-interval of the mean log, exponentiated
    logs = np.log(TEST[("concat", "tanh")])
    low, high, _ = t_interval(logs)
    assert concat[f"{M.TEST_MSE}_gmean"] == pytest.approx(np.exp(logs.mean()))
    assert (concat[f"{M.TEST_MSE}_gmean_ci_low"], concat[f"{M.TEST_MSE}_gmean_ci_high"]) == (
        pytest.approx((np.exp(low), np.exp(high)))
    )


def test_effects_are_seed_unit_intervals_exact_win_rates_and_holm_verdicts(known):
    jobs = collect(known)
    nets = groups.networks(jobs, groups.factors(jobs))
    torch, concat, relu = groups.effects(nets, ["model", "act"])
    assert torch["identical"] and torch["verdict"] == "identical"

    p = []
    for effect, logs in ((concat, concat_vs_scratch_logs()), (relu, relu_vs_tanh_logs())):
        low, high, p_value = t_interval(logs)
        assert effect["n_seeds_ratio"] == SEEDS
        assert effect["ratio"] == pytest.approx(np.exp(logs.mean()))
        assert (effect["ratio_ci_low"], effect["ratio_ci_high"]) == pytest.approx(
            (np.exp(low), np.exp(high))
        )
        assert effect["p"] == pytest.approx(p_value)
        p.append(p_value)
    assert [concat["p_holm"], relu["p_holm"]] == pytest.approx(holm(p))
    # relu vs tanh: torch's configuration repeats scratch's, counted once
    assert relu["duplicates"] == 1 and relu["n_pairs"] == 2 * SEEDS
    # a seed wins when its mean log ratio is below 0, a diverged network's ratio infinite
    worst = {k: np.where(np.isnan(v), np.inf, v) for k, v in TEST.items()}
    score = np.mean(
        [np.log(worst[(m, "relu")]) - np.log(worst[(m, "tanh")]) for m in ("scratch", "concat")],
        axis=0,
    )
    wins, losses = int((score < 0).sum()), int((score > 0).sum())
    assert (relu["seed_wins"], relu["seed_losses"], relu["seed_ties"]) == (wins, losses, 0)
    assert losses >= 1 and np.isinf(score[5])  # seed 5: relu's scratch network diverged
    expected = clopper_pearson(wins, wins + losses)
    assert (relu["win_ci_low"], relu["win_ci_high"]) == pytest.approx(expected)
    assert relu["diverged_pairs_a"] == 1
    # bimodal concat: success counted per pair, the diverged network among the failures
    assert (concat["solved_a"], concat["solved_b"], concat["solved_of"]) == (
        solved("concat"),
        solved("scratch"),
        2 * SEEDS,
    )


def test_summary_and_report_say_the_same_sentences(known):
    md = (known / "summary.md").read_text()
    sentences = [line for line in md.splitlines() if line.startswith("- `")]
    assert len(sentences) == 3
    torch, concat, relu = sentences
    assert "identical, or equal to rounding, in all 12 pairs (6 seeds)" in torch
    logs = relu_vs_tanh_logs()
    low, high, _ = t_interval(logs)
    ratio = f"{np.exp(logs.mean()):#.2g}".rstrip(".")
    assert f"test MSE {ratio}x [95% CI {np.exp(low):#.2g}, {np.exp(high):#.2g}]" in relu
    assert "(geometric mean ratio over 6 seeds, each seed's 2 paired configurations" in relu
    low, high = clopper_pearson(4, 6)
    assert f"win rate over seeds 4/6 = 0.67 [95% CI {low:#.2g}, {high:#.2g}]" in relu
    assert "1 configuration with the same networks in both arms as another counted once" in relu
    assert f"solved (test MSE < 0.1x the mean predictor's): {solved('concat')} of 12 (" in concat
    (known / "figures").mkdir()
    report = "\n".join(study_section(known, Figures(known / "figures")))
    for sentence in sentences:
        assert sentence in report
    assert "Holm-adjusted over the 2 with a test" in report
    written = pd.read_csv(known / "figures" / f"{known.name}_networks.csv")
    assert len(written) == 6 * SEEDS and int(written["status"].eq("diverged").sum()) == 2
