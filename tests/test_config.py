"""Config schema and validation, in-process on configs composed by real Hydra (fast).

The same inputs go through the real command line in tests/test_config_cli.py.
"""

from __future__ import annotations

import pytest
from conftest import CONF
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rnnlab import cells, config, data, model
from rnnlab.cli import error_line
from rnnlab.config import ConfigError, validate

#: Every bad input issue 6 lists, then others a user would hit: the override, and what its
#: one-line error must contain besides the override itself (what is allowed).
BAD_INPUTS = {
    "data.seq_len=0": ">= 1",
    "data.seq_len=-3": ">= 1",
    "data.seq_len=5000": "from 1 to 99",
    "data.seq_len=abc": "an integer",
    "model.hidden_size=0": ">= 1",
    "model.num_layers=0": ">= 1",
    "model.nonlinearity=sigmoid": "tanh, relu",
    "model.loss=first": "last, every",
    "model=lstm": "concat, scratch, torch",
    "model.lr=-1": "> 0",
    "data.batch_size=0": ">= 1",
    "data.splits=[0.9,0.2,0.1]": "sum to 1 (these sum to 1.2)",
    "data.n_points=3": "at least 50",
    "data.noise_std=-1": ">= 0",
    "model.hiden_size=8": "did you mean model.hidden_size?",
    "trainer.max_epochs=0": ">= 1",
    # others a user would hit
    "trainer.max_epoch=3": "did you mean trainer.max_epochs?",
    "+trainer.max_epoch=3": "did you mean max_epochs?",
    "trainer.max_epochs=abc": ">= 1",
    "trainer.devices=0": "auto",
    "trainer.accelerator=gpus": "cpu, gpu",
    "trainer.gradient_clip_val=-1": ">= 0",
    "trainer.deterministic=maybe": "true, false or warn",
    "data.splits=[0.5,0.5]": "three fractions",
    "data.splits=[0.9,0.1,0.0]": "three fractions > 0",
    "data.x_end=0": "> 0",
    "data.shuffle=maybe": "true or false",
    "data.n_points=30": "or data.n_points >= 50",
    "model.lr=abc": "a number",
    "model.lr=inf": "> 0",
    "model.weight_decay=-0.1": ">= 0",
    "model.readout=mlp": "linear, concat",
    "model.readout_activation=relu": "identity, tanh",
    "model.scheduler=step": "cosine, none",
    "model.cell=lstm": "scratch, concat, torch",
    "seed=-1": "0 to 4294967295",
    "seed=4294967296": "0 to 4294967295",
    "threads=0": ">= 1",
    "trainer=fast": "ddp, default",
    "logger.histograms=maybe": "true or false",
    "logger.figures=maybe": "true or false",
    "logger.figures_every_n_epochs=-1": ">= 0",
    "logger.rollout_steps=0": "null or >= 1",
    "logger.histogram=true": "did you mean logger.histograms?",
    "+model.dropout=0.1": "there is no key model.dropout",
    "+data.stride=2": "allowed keys:",
    "+logger.histogram=true": "did you mean logger.histograms?",
}
ISSUE_BAD_INPUTS = list(BAD_INPUTS)[:16]


def error_for(compose_cfg, override: str) -> str:
    """The line the command line would print for ``override``."""
    try:
        validate(compose_cfg(override))
    except Exception as err:
        line = error_line(err, [override])
        assert line is not None, f"{override}: {err!r} is not reported as a config error"
        return line
    pytest.fail(f"{override} was accepted")


@pytest.mark.parametrize("override", BAD_INPUTS)
def test_bad_input_gives_one_line_naming_key_value_and_allowed(compose_cfg, override):
    line = error_for(compose_cfg, override)
    assert "\n" not in line
    key, _, value = override.lstrip("+").partition("=")
    assert f"{key}={value}" in line, line
    assert BAD_INPUTS[override] in line, line


@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("model=concat",),
        ("model=torch", "model.nonlinearity=relu", "model.loss=every", "model.num_layers=2"),
        ("trainer=ddp",),
        ("data.seq_len=99",),  # the longest window the 100-point val split holds
        ("data.n_points=50",),  # the fewest points that hold seq_len=4 windows in every split
        ("seed=0",),
        ("+trainer.limit_val_batches=2",),  # any Trainer argument can be added
    ],
)
def test_good_configs_pass(compose_cfg, overrides):
    validate(compose_cfg(*overrides))


def test_longest_window_matches_what_the_datamodule_builds():
    """The limit the validator states is the one SinCosDataModule really has."""
    cases = [(1000, (0.8, 0.1, 0.1)), (333, (0.5, 0.3, 0.2)), (50, (0.8, 0.1, 0.1))]
    for n_points, splits in cases:
        assert config.split_sizes(n_points, splits) == [
            end - start for start, end in data.split_bounds(n_points, splits)
        ]
        longest = min(config.split_sizes(n_points, splits)) - 1
        dm = data.SinCosDataModule(seq_len=longest, n_points=n_points, splits=splits)
        dm.setup()
        assert min(len(x) for x, _ in dm.windows.values()) == 1
        too_long = data.SinCosDataModule(seq_len=longest + 1, n_points=n_points, splits=splits)
        with pytest.raises(ValueError):
            too_long.setup()


def test_allowed_values_are_the_ones_the_code_implements():
    assert set(config.CELLS) == set(cells.CELLS)
    assert set(config.NONLINEARITIES) == set(cells.NONLINEARITIES)
    assert set(config.LOSS_MODES) == set(model.LOSS_MODES)
    assert set(config.READOUTS) == set(model.READOUTS)
    assert set(config.READOUT_ACTIVATIONS) == set(model.READOUT_ACTIVATIONS)


def test_schema_covers_every_key_of_every_option(compose_cfg):
    """A key added to a yaml but not to the schema fails here, not in a user's run."""
    for group, options in {"model": ("scratch", "concat", "torch"), "data": ("sincos",)}.items():
        for option in options:
            cfg = compose_cfg(f"{group}={option}")
            assert sorted(cfg[group]) == sorted(config.schema_keys(group))
    assert OmegaConf.get_type(compose_cfg().model) is config.ModelConfig


def test_ddp_inside_a_sweep_is_refused_with_the_supported_ways():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        from hydra.types import RunMode

        cfg = compose("config", overrides=["trainer=ddp"], return_hydra_config=True)
    cfg.hydra.mode = RunMode.MULTIRUN
    with pytest.raises(ConfigError, match=r"hydra/launcher=joblib.*hydra/launcher=slurm"):
        validate(cfg)
    cfg.trainer.devices = 1  # one device per job is fine
    validate(cfg)
