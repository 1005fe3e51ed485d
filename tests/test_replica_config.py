"""``replicas=R``, the networks one job trains together: its range, its seeds and its memory, on
configs composed by real Hydra (fast, nothing trains). The same refusals on the real command
line are in tests/test_config_cli.py."""

from __future__ import annotations

import pytest
from hydra.types import RunMode

from rnnlab.config import checks, schema
from rnnlab.config.checks import MAX_REPLICAS, MAX_SEED, check_distinct_seeds, validate
from rnnlab.config.cli import error_line
from rnnlab.config.errors import ConfigError
from rnnlab.config.hydra_callbacks import InvalidConfig, ValidateConfig

GiB = 2**30


def error_for(compose_cfg, *overrides: str) -> str:
    """The line the command line would print for ``overrides`` (a composition error included)."""
    try:
        validate(compose_cfg(*overrides))
    except Exception as err:
        line = error_line(err, list(overrides))
        assert line is not None, f"{overrides}: {err!r} is not reported as a config error"
        assert "\n" not in line
        return line
    pytest.fail(f"{overrides} was accepted")




def test_replicas_is_a_documented_top_level_key_defaulting_to_one(compose_cfg):
    assert compose_cfg().replicas == 1
    assert "seed .. seed+replicas-1" in schema.help_of("")["replicas"]
    assert list(schema.keys("")).index("replicas") == list(schema.keys("")).index("seed") + 1


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("replicas=0", f"replicas=0 is not allowed; expected 1 to {MAX_REPLICAS}"),
        ("replicas=-1", f"replicas=-1 is not allowed; expected 1 to {MAX_REPLICAS}"),
        ("replicas=5000", f"replicas=5000 is not allowed; expected 1 to {MAX_REPLICAS}"),
        ("replicas=1.5", "replicas=1.5 is not allowed; expected an integer"),  # Hydra's type check
        ("replicas=abc", "replicas=abc is not allowed; expected an integer"),
    ],
)
def test_replicas_out_of_range_is_one_line_naming_it(compose_cfg, override, expected):
    assert error_for(compose_cfg, override) == expected


@pytest.mark.parametrize("replicas", [1, 2, 64, MAX_REPLICAS])
def test_replicas_in_range_pass(compose_cfg, replicas):
    validate(compose_cfg(f"replicas={replicas}"))


def test_the_highest_seed_must_still_be_a_seed(compose_cfg):
    line = error_for(compose_cfg, f"seed={MAX_SEED}", "replicas=2")
    assert line.startswith("replicas=2 is not allowed; expected at most 1 with seed=4294967295")
    assert "the highest seed" in line and "4294967296" in line
    validate(compose_cfg(f"seed={MAX_SEED - 1}", "replicas=2"))  # seeds ..94 and ..95


def test_memory_check_counts_every_replica_and_names_replicas(compose_cfg, monkeypatch):
    monkeypatch.setattr(checks, "_memory_bytes", lambda: 16 * GiB)
    validate(compose_cfg("model.hidden_size=4000"))  # one network: about 0.24 GiB
    line = error_for(compose_cfg, "model.hidden_size=4000", f"replicas={MAX_REPLICAS}")
    assert line.startswith(
        f"replicas={MAX_REPLICAS} is not allowed; expected at most 65, the networks"
    )
    assert "networks that fit in memory" in line and "model.hidden_size=4000" in line
    assert "this machine has 16 GiB" in line


def test_a_network_too_large_alone_keeps_its_own_message(compose_cfg, monkeypatch):
    monkeypatch.setattr(checks, "_memory_bytes", lambda: 16 * GiB)
    for replicas in (1, 8):
        line = error_for(compose_cfg, "model.num_layers=1000000", f"replicas={replicas}")
        assert line.startswith(
            "model.hidden_size=32, model.num_layers=1000000 is not allowed; "
            "expected a network that fits in memory: it would have about 2.11e+09"
        )


@pytest.mark.slow  # composes three tasks' configs (about a second)
def test_each_replicas_own_data_counts_towards_memory(compose_cfg, monkeypatch):
    adding = compose_cfg("data=adding").data  # 12000 sequences of 50 steps, 3 values a step
    assert checks.replica_data_bytes(adding) == 4 * 12000 * 50 * 3
    assert checks.replica_data_bytes(compose_cfg().data) == 0  # one noiseless series for all
    noisy = compose_cfg("data.noise_std=0.1").data
    assert checks.replica_data_bytes(noisy) == 4 * 1000 * 4 * 4
    monkeypatch.setattr(checks, "_memory_bytes", lambda: 10 * 2**20)  # 7.2 MB data per replica
    validate(compose_cfg("data=adding"))
    assert error_for(compose_cfg, "data=adding", "replicas=2").startswith(
        "replicas=2 is not allowed; expected at most 1, the networks that fit in memory"
    )


def test_overlapping_seeds_in_a_sweep_are_refused_with_seeds_stepping_by_replicas(compose_cfg):
    jobs = [compose_cfg(f"seed={s}", "replicas=5") for s in (0, 1)]
    with pytest.raises(ConfigError) as err:
        check_distinct_seeds(jobs)
    assert str(err.value) == (
        "seed=0,1 with replicas=5 trains seeds 1..4 twice; use seed=0,5 (seeds step by "
        "replicas) or replicas=1"
    )
    # -m model.lr=0.1,0.01 seed=3,4,5 replicas=2: each learning rate's jobs on their own
    jobs = []
    for base in (compose_cfg("replicas=2", f"model.lr={lr}") for lr in (0.1, 0.01)):
        for seed in (3, 4, 5):
            jobs.append(base.copy())
            jobs[-1].seed = seed
    with pytest.raises(ConfigError) as err:
        check_distinct_seeds(jobs)
    assert str(err.value).startswith(
        "seed=3,4,5 with replicas=2 trains seed 4 twice; use seed=3,5,7 (seeds step by replicas)"
    )


@pytest.mark.parametrize(
    "sweep",
    [
        [("seed=0", "replicas=5"), ("seed=5", "replicas=5")],
        [("model.nonlinearity=tanh", "replicas=3"), ("model.nonlinearity=relu", "replicas=3")],
        [("seed=0", "replicas=1"), ("seed=0", "replicas=2")],  # different jobs, not the same twice
        [("seed=0", "data.seq_len=4", "replicas=8"), ("seed=0", "data.seq_len=8", "replicas=8")],
    ],
)
@pytest.mark.slow  # composes every job of a sweep: the fast suite keeps one case
def test_sweeps_that_train_each_seed_once_pass(sweep, compose_cfg):
    check_distinct_seeds([compose_cfg(*job) for job in sweep])


@pytest.mark.slow  # composes every job of a sweep: the fast suite keeps one case
@pytest.mark.parametrize("same", ["logger.figures=false", "threads=2", "resume=outputs/some-run"])
def test_keys_without_effect_on_results_do_not_make_jobs_different(same, compose_cfg):
    with pytest.raises(ConfigError, match=r"^seed=0,0 trains seed 0 twice .*use distinct seeds"):
        check_distinct_seeds([compose_cfg("seed=0"), compose_cfg("seed=0", same)])


@pytest.mark.slow  # composes every job of a sweep: the fast suite keeps one case
def test_the_sweep_hook_refuses_overlapping_seeds_after_checking_every_job(compose_cfg):
    with compose_cfg.initialized():
        cfg = compose_cfg(hydra=True)
        cfg.hydra.mode = RunMode.MULTIRUN

        def on_multirun_start(*task: str) -> None:  # as for python train.py -m <task>
            cfg.hydra.overrides.task = list(task)
            ValidateConfig().on_multirun_start(cfg)

        with pytest.raises(InvalidConfig, match=r"^seed=0,1 with replicas=5 .* use seed=0,5 "):
            on_multirun_start("seed=0,1", "replicas=5")
        with pytest.raises(InvalidConfig, match=r"^model.hidden_size=0 is not allowed"):
            on_multirun_start("seed=0,1", "replicas=5", "model.hidden_size=8,0")  # values first
        on_multirun_start("seed=0,5", "replicas=5")
