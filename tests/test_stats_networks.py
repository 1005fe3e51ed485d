"""A claim of the published report recomputed from its ``networks.csv`` with code of its own
(pandas and the t distribution by hand, none of rnnlab.analysis): the readout study's
"identity readout activation against tanh" ratio and interval in docs/report.md. Also: a sweep's
summary writes networks.csv, and rnnlab.analysis.networks.networks_table reads the same rows."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from conftest import ROOT
from helpers import write_job
from scipy import stats as sps

from rnnlab import metrics as M
from rnnlab.analysis import summary
from rnnlab.analysis.networks import EXPLODED_MULTIPLE, NETWORKS_NAME, networks_table

REPORT = ROOT / "docs" / "report.md"
READOUT = ROOT / "docs" / "report" / "readout_networks.csv"
LR = "model.lr"


def two_digits(x: float) -> str:
    """As the report writes a ratio: two significant digits, whole numbers from 100."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:#.2g}".rstrip(".")


def reported_at_other_halfs_lr(nets: pd.DataFrame, arm: list[str]) -> pd.DataFrame:
    """Each network of each arm at the lr the other half of the seeds chose: lowest median
    validation error, a diverged network as +inf."""
    seeds = sorted(nets["seed"].unique())
    half = nets["seed"].map({s: i % 2 for i, s in enumerate(seeds)})
    score = nets[M.VAL_MSE_BEST].where(nets["status"] == "ok", np.inf)
    kept = []
    for _, rows in nets.groupby(arm):
        for h in (0, 1):
            other = rows[half[rows.index] != h]
            medians = score[other.index].groupby(other[LR]).median()
            lr = medians[medians == medians.min()].index.min()
            kept.append(rows[(half[rows.index] == h) & (rows[LR] == lr)])
    return pd.concat(kept)


def test_the_readout_claim_recomputed_from_networks_csv():
    nets = pd.read_csv(READOUT)
    factor, other = "model.readout_activation", "model.readout"
    chosen = reported_at_other_halfs_lr(nets, [other, factor])
    a = chosen[chosen[factor] == "identity"].set_index([other, "seed"])[M.TEST_MSE]
    b = chosen[chosen[factor] == "tanh"].set_index([other, "seed"])[M.TEST_MSE]
    per_seed = np.log(a / b).groupby(level="seed").mean()  # each seed: its readouts' mean
    n = len(per_seed)
    half = sps.t.ppf(0.975, n - 1) * per_seed.std(ddof=1) / np.sqrt(n)
    ratio, low, high = np.exp([per_seed.mean(), per_seed.mean() - half, per_seed.mean() + half])
    section = REPORT.read_text().split("## readout")[1].split("\n## ")[0]
    sentence = next(line for line in section.splitlines() if f"`{factor}=identity`" in line)
    expected = f"test MSE {two_digits(ratio)}x [95% CI {two_digits(low)}, {two_digits(high)}]"
    assert expected in sentence
    assert re.search(rf"geometric mean ratio over {n} seeds", sentence)


def test_a_sweep_writes_networks_csv_with_every_network(tmp_path):
    reps = [
        {"seed": 0, "test": 1e-4, "val": 1e-4},
        {"seed": 1, "test": 1e-4 * EXPLODED_MULTIPLE * 100, "val": 1.0},  # finite, exploded
        {"seed": 2, "status": "diverged"},
    ]
    for num, (model, records) in enumerate((("scratch", reps), ("torch", reps[:1]))):
        job = write_job(tmp_path, num, [f"model={model}", "replicas=3"], replicas=records)
        record = json.loads((job / M.METRICS_FILE).read_text())
        for rep in record["replicas"]:
            rep[M.PERSISTENCE_MSE] = 5e-3  # the naive baseline the explosion is measured by
        (job / M.METRICS_FILE).write_text(json.dumps(record))
    summary.summarize(tmp_path)
    written = pd.read_csv(tmp_path / NETWORKS_NAME)
    assert list(written.columns[:5]) == ["job", "seed", "status", "exploded", "model"]
    assert list(written["status"]) == ["ok", "diverged", "diverged", "ok"]
    assert list(written["exploded"]) == [False, True, False, False]
    assert set(M.FINAL_METRICS) <= set(written.columns)
    pd.testing.assert_frame_equal(
        written, networks_table(tmp_path).astype(written.dtypes.to_dict()), check_dtype=False
    )
