"""Config schema and validation, in-process on configs composed by real Hydra (fast).

The same inputs go through the real command line in tests/test_config_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rnnlab.config import choices, schema
from rnnlab.config.checks import validate
from rnnlab.config.cli import error_line
from rnnlab.config.errors import ConfigError
from rnnlab.data import tasks as data
from rnnlab.models import cells
from rnnlab.models import forecaster as model

#: Bad inputs a user would hit: the override, and what its
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
    "model=gpt": "concat, gru, irnn, lstm, scratch, torch",
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
    "model.cell=gpt": "scratch, concat, torch, gru, lstm",
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
    "model.num_layers=1000000": "a network that fits in memory: it would have about 2.11e+09",
    "model.init=xavier": "torch, native, identity, orthogonal",
    "data=mnist": "adding, adding_short, csv, sincos, sincos_noisy, sunspots",
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
        # a batch holds at most the training split: a huge batch_size is one batch, not memory
        ("data.batch_size=1000000000000",),
        ("data=adding", "data.batch_size=1000000000000"),
    ],
)
def test_good_configs_pass(compose_cfg, overrides):
    validate(compose_cfg(*overrides))


def test_longest_window_matches_what_the_datamodule_builds():
    """The limit the validator states is the one SinCosDataModule really has."""
    cases = [(1000, (0.8, 0.1, 0.1)), (333, (0.5, 0.3, 0.2)), (50, (0.8, 0.1, 0.1))]
    for n_points, splits in cases:
        assert choices.split_sizes(n_points, splits) == [
            end - start for start, end in choices.split_bounds(n_points, splits)
        ]
        longest = min(choices.split_sizes(n_points, splits)) - 1
        dm = data.SinCosDataModule(seq_len=longest, n_points=n_points, splits=splits)
        dm.setup()
        assert min(len(x) for x, _ in dm.windows.values()) == 1
        too_long = data.SinCosDataModule(seq_len=longest + 1, n_points=n_points, splits=splits)
        with pytest.raises(ValueError):
            too_long.setup()


def test_allowed_values_are_the_ones_the_code_implements():
    """Every name in rnnlab.config.choices builds what it says, and nothing else is accepted."""
    for name, cls in cells.CELLS.items():
        assert type(cells.build_cell(name, 2, 4)) is cls
        assert cls.__name__.lower().startswith(name)
    for name in choices.NONLINEARITIES:
        assert cells.ScratchRNN(2, 4, nonlinearity=name).act is getattr(torch, name)
    for name, readout in zip(choices.READOUTS, ("LinearReadout", "ConcatReadout"), strict=True):
        assert type(model.Forecaster(cell="scratch", readout=name).readout).__name__ == readout
    for name in choices.READOUT_ACTIVATIONS:
        act = model.Forecaster(cell="scratch", readout_activation=name).readout.act
        assert type(act).__name__.lower() == name
    for key, bad in [
        ("cell", "gpt"),
        ("nonlinearity", "sigmoid"),
        ("readout", "mlp"),
        ("readout_activation", "relu"),
        ("loss", "first"),
        ("scheduler", "step"),
    ]:
        with pytest.raises(ConfigError, match=f"model.{key}={bad} is not allowed"):
            model.Forecaster(**{"cell": "scratch", key: bad})


def test_each_map_of_choices_has_exactly_the_allowed_names():
    """Each ``{name: what it builds}`` map where a choice is built, against its tuple in
    rnnlab.config.choices (the one that rnnlab.config.checks validates)."""
    assert tuple(cells.CELLS) == choices.CELLS
    assert tuple(cells.ACTIVATIONS) == choices.NONLINEARITIES
    assert tuple(cells.INITS) == choices.INITS
    assert tuple(data.DATAMODULES) == choices.DATASETS
    assert tuple(schema.DATA_SCHEMAS) == choices.DATASETS
    assert tuple(model.READOUTS) == choices.READOUTS
    assert tuple(model.READOUT_ACTIVATIONS) == choices.READOUT_ACTIVATIONS


def test_a_name_outside_a_map_is_the_one_line_error():
    with pytest.raises(ConfigError, match=r"^model.cell=gpt is not allowed; expected one of: "):
        cells.build_cell("gpt", 2, 4)
    with pytest.raises(ConfigError, match=r"^model.init=xavier is not allowed; expected one of"):
        cells.initialize(cells.ScratchRNN(2, 4), "xavier", torch.Generator())
    with pytest.raises(ConfigError, match=r"^data=\[1\] is not allowed; expected one of: sinc"):
        schema.data_schema([1])  # unhashable: the same line


def test_each_set_of_choices_is_written_once_in_src():
    """No module but rnnlab/choices.py spells out a set of allowed values."""
    tables = [v for k, v in vars(choices).items() if k.isupper() and isinstance(v, tuple)]
    src = Path(choices.__file__).parent
    for path in src.rglob("*.py"):
        if path.name == "choices.py":
            continue
        text = path.read_text()
        for table in tables:
            spelled = ", ".join(f'"{v}"' for v in table)
            assert spelled not in text, f"{path.name} spells {table}: use rnnlab.config.choices"


def test_each_default_is_written_once_in_the_schema(compose_cfg):
    """The Forecaster's and the DataModules' keyword defaults are the schema's, and the default
    config composes to them: conf/ sets only what an option changes (the cell)."""
    import inspect

    for built, section, task in (
        (model.Forecaster, "model", "sincos"),
        (data.SinCosDataModule, "data", "sincos"),
        (data.AddingDataModule, "data", "adding"),
    ):
        defaults = schema.defaults_of(section, task)
        keywords = inspect.signature(built).parameters
        assert {k: keywords[k].default for k in defaults if k in keywords} == {
            k: v for k, v in defaults.items() if k in keywords
        }
    assert inspect.signature(model.Forecaster).parameters["cell"].default is inspect.Parameter.empty
    assert "cell" not in schema.defaults_of("model")  # model=<cell> sets it
    cfg = compose_cfg()
    for section in ("model", "logger", ""):
        node = cfg[section] if section else cfg
        assert {k: node[k] for k in schema.defaults_of(section)} == schema.defaults_of(section)
    assert list(cfg.data.splits) == list(schema.defaults_of("data")["splits"])


def test_schema_covers_every_key_of_every_option(compose_cfg):
    """A key added to a yaml but not to the schema fails here, not in a user's run."""
    for group, options in {"model": ("scratch", "concat", "torch"), "data": ("sincos",)}.items():
        for option in options:
            cfg = compose_cfg(f"{group}={option}")
            assert sorted(cfg[group]) == sorted(schema.keys(group))
    assert OmegaConf.get_type(compose_cfg().model) is schema.ModelConfig


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("data=adding", "model.loss=every"), "model.loss=every is not allowed; expected last"),
        (("data=adding", "data.seq_len=1"), "data.seq_len=1 is not allowed; expected an integer"),
        (("data=adding", "data.n_val=0"), "data.n_val=0 is not allowed"),
        (("data=adding", "+data.n_points=5"), "there is no key data.n_points"),
    ],
)
def test_adding_problem_checks(compose_cfg, overrides, message):
    try:
        validate(compose_cfg(*overrides))
    except Exception as err:
        assert message in error_line(err, list(overrides))
    else:
        pytest.fail(f"{overrides} was accepted")


def test_adding_problem_config_passes(compose_cfg):
    validate(compose_cfg("data=adding", "data.seq_len=100", "model.init=identity"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_gpu_on_a_machine_without_one_is_refused_up_front(compose_cfg):
    line = error_for(compose_cfg, "trainer.accelerator=gpu")
    assert "trainer.accelerator=gpu is not allowed" in line and "no CUDA GPU" in line


def test_ddp_inside_a_sweep_is_refused_with_the_supported_ways(compose_cfg):
    from hydra.types import RunMode

    cfg = compose_cfg("trainer=ddp", hydra=True)
    cfg.hydra.mode = RunMode.MULTIRUN
    with pytest.raises(ConfigError, match=r"hydra/launcher=joblib.*hydra/launcher=slurm"):
        validate(cfg)
    cfg.trainer.devices = 1  # one device per job is fine
    validate(cfg)
