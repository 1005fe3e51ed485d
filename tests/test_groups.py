"""rnnlab.analysis.groups on synthetic sweeps: networks pooled into configurations, replicas
expanded,
diverged networks counted, paired and unpaired comparisons, and what summary.md says."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import write_job
from scipy import stats as sps

from rnnlab import metrics as M
from rnnlab.analysis import groups, stats
from rnnlab.analysis import summary as sweep
from rnnlab.analysis.jobs import collect


def nets_and_keys(sweep_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    jobs = collect(sweep_dir)
    keys = groups.factors(jobs)
    return groups.networks(jobs, keys), keys


def test_seeds_pool_into_one_configuration_and_keys_without_effect_are_not_factors(tmp_path):
    num = 0
    for act, base in (("tanh", 2e-4), ("relu", 1e-4)):
        for seed in range(3):
            extra = [f"threads={1 + seed % 2}", f"logger.histograms={seed % 2 == 0}"]
            overrides = [f"model.nonlinearity={act}", f"seed={seed}", *extra]
            write_job(tmp_path, num, overrides, "ok", base * (1 + seed), base * (1 + seed))
            num += 1
    nets, keys = nets_and_keys(tmp_path)
    assert keys == ["model.nonlinearity"]
    assert list(nets.columns[:5]) == ["job", "seed", "status", "exploded", "model.nonlinearity"]
    assert list(nets["seed"]) == [0, 1, 2, 0, 1, 2]
    table = groups.groups_table(nets, keys)
    assert list(table["model.nonlinearity"]) == ["relu", "tanh"]  # best first by val mean
    assert list(table["n"]) == [3, 3] and list(table["diverged_rate"]) == [0.0, 0.0]
    relu = table.iloc[0]
    assert relu[f"{M.TEST_MSE}_mean"] == pytest.approx(2e-4, rel=1e-12)
    assert relu[f"{M.TEST_MSE}_median"] == pytest.approx(2e-4)
    assert relu[f"{M.TEST_MSE}_ci_low"] <= 2e-4 <= relu[f"{M.TEST_MSE}_ci_high"]


def test_a_job_reads_its_overrides_without_the_keys_its_directory_name_leaves_out(tmp_path):
    """hydra.yaml records ``exclude_keys`` as conf/config.yaml writes it, the resolver call:
    the keys it names now are the ones left out; a list recorded by an older sweep is kept."""
    overrides = ["model=concat", "threads=2", "logger.figures=false", "sweep=quick"]
    for num, recorded in enumerate(("${rnnlab.unnamed_keys:}", ["sweep"])):
        job = write_job(tmp_path, num, overrides, "ok", 1e-4, 1e-4)
        hydra = {"hydra": {"job": {"config": {"override_dirname": {"exclude_keys": recorded}}}}}
        (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    now, before = collect(tmp_path)
    assert now.overrides == {"model": "concat"}
    assert before.overrides == {"model": "concat", "threads": "2", "logger.figures": "False"}
    assert groups.factors([now, before]) == []  # threads and logger.* are never factors


def test_replicas_expand_to_one_row_each_and_diverged_networks_count(tmp_path):
    reps = [
        {"seed": 0, "test": 1e-4, "val": 1e-4},
        {"seed": 1, "test": 3e-4, "val": 2e-4},
        {"seed": 2, "status": "diverged"},
    ]
    write_job(tmp_path, 0, ["model.hidden_size=32", "replicas=3"], replicas=reps)
    write_job(tmp_path, 1, ["model.hidden_size=8", "replicas=3"], replicas=reps[:2])
    write_job(tmp_path, 2, ["model.hidden_size=64", "replicas=3"], status="failed")
    write_job(tmp_path, 3, ["model.hidden_size=16", "replicas=3"], status=None)  # missing
    nets, keys = nets_and_keys(tmp_path)
    assert keys == ["model.hidden_size"]
    assert len(nets) == 3 + 2 + 1 + 1
    first = nets[nets["job"] == 0]
    assert list(first["seed"]) == [0, 1, 2]
    assert list(first["status"]) == ["ok", "ok", "diverged"]
    assert list(first[M.TEST_MSE][:2]) == [1e-4, 3e-4] and math.isnan(first[M.TEST_MSE].iloc[2])
    assert list(nets[nets["job"] >= 2]["status"]) == ["failed", "missing"]
    table = groups.groups_table(nets, keys).set_index("model.hidden_size")
    assert table.loc[32, ["n", "ok", "diverged"]].tolist() == [3, 2, 1]
    assert table.loc[32, "diverged_rate"] == pytest.approx(1 / 3)
    assert table.loc[32, f"{M.TEST_MSE}_mean"] == pytest.approx(2e-4)  # the finished two
    assert table.loc[64, ["n", "ok"]].tolist() == [1, 0]
    assert math.isnan(table.loc[64, f"{M.TEST_MSE}_mean"])


def test_numeric_factors_are_numbers_sorted_numerically_and_never_binned(tmp_path):
    for num, size in enumerate((128, 8, 32, 16, 64, 256, 512, 1024)):
        write_job(tmp_path, num, [f"model.hidden_size={size}"], "ok", 1e-4, 1e-4)
    nets, keys = nets_and_keys(tmp_path)
    assert groups.factor_values(nets, "model.hidden_size") == [8, 16, 32, 64, 128, 256, 512, 1024]
    table = groups.groups_table(nets, keys)  # ties in the objective: factor order
    assert list(table["model.hidden_size"]) == [8, 16, 32, 64, 128, 256, 512, 1024]
    assert table["model.hidden_size"].dtype.kind == "i"


def seven_of_eight(tmp_path: Path, same_seeds: bool = True) -> pd.DataFrame:
    """Arm a beats arm b in 7 of 8 seeds; b's seeds are 100.. when not ``same_seeds``."""
    a = [1.0, 1.2, 0.8, 2.0, 1.5, 0.9, 1.1, 3.0]
    b = [2.0, 2.5, 1.0, 4.0, 3.0, 1.8, 1.6, 1.5]  # the last pair: a worse
    for seed in range(8):
        seed_b = seed if same_seeds else 100 + seed
        write_job(tmp_path, 2 * seed, ["cell=a", f"seed={seed}"], "ok", a[seed] * 1e-4, 1e-4)
        write_job(tmp_path, 2 * seed + 1, ["cell=b", f"seed={seed_b}"], "ok", b[seed] * 1e-4, 1e-4)
    nets, _ = nets_and_keys(tmp_path)
    return nets


A8 = np.array([1.0, 1.2, 0.8, 2.0, 1.5, 0.9, 1.1, 3.0])
B8 = np.array([2.0, 2.5, 1.0, 4.0, 3.0, 1.8, 1.6, 1.5])


def test_paired_effect_is_a_t_interval_over_seeds_and_an_exact_win_rate(tmp_path):
    result = groups.paired(seven_of_eight(tmp_path), "cell", "a", "b")
    assert result["paired"] is True and result["n_pairs"] == 8 and result["a_better"] == 7
    logs = np.log(A8 / B8)
    half = sps.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs))
    assert result["ratio"] == pytest.approx(np.exp(logs.mean()))
    assert (result["ratio_ci_low"], result["ratio_ci_high"]) == pytest.approx(
        (np.exp(logs.mean() - half), np.exp(logs.mean() + half))
    )
    se = logs.std(ddof=1) / np.sqrt(len(logs))
    assert result["p"] == pytest.approx(2 * sps.t.sf(abs(logs.mean()) / se, len(logs) - 1))
    assert result["median_ratio"] == pytest.approx(np.median(A8 / B8))
    # 7 wins in 8 seeds: Clopper-Pearson from the beta quantiles
    assert (result["seed_wins"], result["seed_losses"]) == (7, 1)
    assert result["win_rate"] == 0.875
    assert result["win_ci_low"] == pytest.approx(sps.beta.ppf(0.025, 7, 2))
    assert result["win_ci_high"] == pytest.approx(sps.beta.ppf(0.975, 8, 1))


def test_without_shared_seeds_the_comparison_is_unpaired(tmp_path):
    result = groups.paired(seven_of_eight(tmp_path, same_seeds=False), "cell", "a", "b")
    assert result["paired"] is False and result["n_pairs"] == 0
    assert (result["n_a"], result["n_b"]) == (8, 8)
    expected = np.exp(np.log(A8).mean() - np.log(B8).mean())
    assert result["ratio"] == pytest.approx(expected)
    assert result["ratio_ci_low"] < expected < result["ratio_ci_high"]
    # ties (2.0 and 1.5 appear in both arms) count half: neither network is better
    wins = (A8[:, None] < B8[None, :]) + 0.5 * (A8[:, None] == B8[None, :])
    assert result["p_improvement"] == pytest.approx(np.mean(wins))


def test_effects_compare_each_value_with_the_first_in_sweep_order(tmp_path):
    for num, (act, seed) in enumerate((a, s) for a in ("tanh", "relu", "gelu") for s in range(2)):
        test = {"tanh": 2e-4, "relu": 1e-4, "gelu": 4e-4}[act] * (1 + seed)
        write_job(tmp_path, num, [f"act={act}", f"seed={seed}"], "ok", test, test)
    nets, keys = nets_and_keys(tmp_path)
    found = groups.effects(nets, keys)
    assert [(e["a"], e["b"]) for e in found] == [("relu", "tanh"), ("gelu", "tanh")]
    assert [e["ratio"] for e in found] == pytest.approx([0.5, 2.0])


def test_summary_md_ranks_configurations_never_seeds_nor_ranges(tmp_path):
    """Jobs that differ only in seed: one configuration, never "best configuration: seed=4"."""
    for seed in range(5):
        write_job(tmp_path, seed, [f"seed={seed}"], "ok", 1e-4 * (5 - seed), 1e-4 * (5 - seed))
    sweep.summarize(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    best = md.split("## What the sweep shows\n\n")[1].splitlines()[0]
    assert best.startswith("One configuration (the jobs differ only in seed), 5 networks")
    assert "seed=" not in best
    assert len(pd.read_csv(tmp_path / groups.GROUPS_NAME)) == 1


def test_summary_md_states_each_effect_with_its_interval(tmp_path):
    seven_of_eight(tmp_path)
    write_job(tmp_path, 16, ["cell=b", "seed=8"], "diverged")
    sweep.summarize(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    best = next(line for line in md.splitlines() if line.startswith("Best configuration"))
    assert "`cell=a`" in best and "seed=" not in best
    sentence = next(line for line in md.splitlines() if line.startswith("- `cell=b` vs `a`"))
    assert "(geometric mean ratio over 8 seeds): b higher (Holm-adjusted p = " in sentence
    assert "b lower in 1 of 8 pairs, win rate over seeds 1/8 = 0.12 [95% CI 0.0032, 0.53]" in (
        sentence
    )
    assert "diverged: 1 of 9 (b), 0 of 8 (a)" in sentence
    assert " to " not in md.split("## Jobs")[0]  # no binned ranges
    assert "| b | 9 | 8 | 1/9 (11%) |" in md  # the configurations table shows the diverged rate
    table = pd.read_csv(tmp_path / groups.GROUPS_NAME)
    assert list(table["cell"]) == ["a", "b"] and list(table["diverged"]) == [0, 1]


def test_a_searched_factor_is_neither_binned_nor_one_comparison_per_value(tmp_path):
    for num in range(9):
        lr = 10 ** (-4 + num / 3)
        write_job(tmp_path, num, [f"model.lr={lr}", "model.hidden_size=32"], "ok", lr, lr)
    write_job(tmp_path, 9, ["model.lr=0.5", "model.hidden_size=64"], "diverged")
    nets, keys = nets_and_keys(tmp_path)
    assert groups.is_continuous(nets, "model.lr")
    (lr_effect, size_effect) = groups.effects(nets, keys)
    assert lr_effect["continuous"] and lr_effect["rho"] == pytest.approx(1.0)
    assert (size_effect["a"], size_effect["b"]) == (64, 32)
    sweep.summarize(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "`model.lr` (searched, 9 finished networks): Spearman rank correlation" in md
    assert " to " not in md.split("## Jobs")[0]
    assert "| 0 | 0.0001 | 32 | ok |" in md  # long searched values shortened in the jobs table


def test_mean_interval_is_none_for_one_value_and_a_point_for_equal_values():
    assert stats.mean_interval([1.0]) == (None, None)
    assert stats.mean_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert stats.mean_interval(x) == pytest.approx((2.5 - half, 2.5 + half))
