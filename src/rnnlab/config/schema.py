"""The config schema: every key, its type, its default and what it means, in one place.

Registered in Hydra's ConfigStore (:func:`register`): ``schema``, listed first in
conf/config.yaml's defaults, so a wrong type or a misspelled key fails while Hydra composes;
each task's schema as the option ``data=<task>`` and the logger's as ``logger=tensorboard``.
conf/ holds only what an option changes (conf/model/concat.yaml: its cell and readout;
conf/data/sincos_noisy.yaml: the noise). The ``help`` of each field and its default are what
``python train.py --help`` prints. Torch-free.
"""

from __future__ import annotations

from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from rnnlab.config import choices


def key(help: str, default: Any = MISSING) -> Any:
    """A schema field: its meaning (``metadata["help"]``) and its default, written together.
    Without a default (MISSING) an option of conf/ sets the value (``model.cell``)."""
    return field(default=default, metadata={"help": help})


def _one_of(allowed: tuple[str, ...]) -> str:
    return " | ".join(allowed)


@dataclass
class SinCosDataConfig:
    """``data=sincos``: ``[sin(x), cos(x)]`` on ``x = linspace(0, x_end, n_points)``; predict the
    next point from ``seq_len`` points (rnnlab.data.tasks.SinCosDataModule)."""

    name: str = key("the task, set by data=...: predict the next [sin, cos] point", "sincos")
    n_points: int = key("points of the series, x = linspace(0, x_end, n_points)", 1000)
    x_end: float = key("end of the x range", 100.0)
    seq_len: int = key("window length L: predict point t+1 from points t-L+1..t", 4)
    noise_std: float = key("std of Gaussian noise added to the series (0: none)", 0.0)
    splits: list[float] = key(  # noqa: RUF009  (a tuple: one default, never shared and changed)
        "train/val/test fractions, in time order; no window crosses one", (0.8, 0.1, 0.1)
    )
    batch_size: int = key("windows per training batch", 32)
    shuffle: bool = key("shuffle the training windows every epoch", True)


@dataclass
class AddingDataConfig:
    """``data=adding``: the adding problem (Hochreiter & Schmidhuber 1997;
    rnnlab.data.tasks.AddingDataModule). Two input channels, a value from U(0, 1) and a marker
    at two positions (one in each half, as Le et al. 2015 place them); the target is the sum of
    the two marked values, scored at the last step. Predicting the mean, 1, scores 1/6."""

    name: str = key("the task, set by data=...: the sum of the two marked values", "adding")
    seq_len: int = key("sequence length, and so how far apart the two marked values can be", 50)
    n_train: int = key("training sequences (a fixed set drawn from seed)", 10000)
    n_val: int = key("validation sequences", 1000)
    n_test: int = key("test sequences", 1000)
    batch_size: int = key("sequences per training batch", 32)
    shuffle: bool = key("shuffle the training sequences every epoch", True)


@dataclass
class CsvDataConfig:
    """``data=csv``: a user's series from a CSV file with a header line
    (rnnlab.data.tasks.CsvDataModule): predict the next row from ``seq_len`` rows. Each
    channel is standardised with the train split's mean and std, which the run stores
    (metrics.json's ``data_scale``): its MSE and MAE are in those standardised units,
    ``python -m rnnlab.predict`` writes forecasts in the file's own."""

    name: str = key("the task, set by data=...: predict the next row of a CSV file", "csv")
    path: Optional[str] = key(  # noqa: UP045  (OmegaConf does not read `str | None`)
        "the CSV file (a header line, one row per time step)", None
    )
    columns: Optional[list[str]] = key(  # noqa: UP045, RUF009  (a default of None)
        "the channels to model, e.g. [a,b] (null: every column of numbers)", None
    )
    time_column: Optional[str] = key(  # noqa: UP045
        "a column of times (numbers or dates) to sort the rows by; not a channel (null: the "
        "file's order)",
        None,
    )
    seq_len: int = key("window length L: predict row t+1 from rows t-L+1..t", 4)
    splits: list[float] = key(  # noqa: RUF009
        "train/val/test fractions, in time order; no window crosses one", (0.8, 0.1, 0.1)
    )
    batch_size: int = key("windows per training batch", 32)
    shuffle: bool = key("shuffle the training windows every epoch", True)


@dataclass
class SunspotsDataConfig:
    """``data=sunspots``: the yearly sunspot numbers 1700-2008 that statsmodels ships in its
    package (rnnlab.data.tasks.SunspotsDataModule), a real, noisy series with a cycle of about
    11 years; standardised as ``data=csv``."""

    name: str = key("the task, set by data=...: next year's sunspot number", "sunspots")
    seq_len: int = key("window length L: predict year t+1 from years t-L+1..t", 10)
    splits: list[float] = key(  # noqa: RUF009
        "train/val/test fractions, in time order; no window crosses one", (0.7, 0.15, 0.15)
    )
    batch_size: int = key("windows per training batch", 32)
    shuffle: bool = key("shuffle the training windows every epoch", True)


#: The schema of each of ``choices.DATASETS`` (``data.name``).
DATA_SCHEMAS: dict[str, type] = {
    "sincos": SinCosDataConfig,
    "adding": AddingDataConfig,
    "csv": CsvDataConfig,
    "sunspots": SunspotsDataConfig,
}


def data_schema(name: str) -> type:
    """The schema of the task ``data.name`` (``sincos``, ``adding``, ...)."""
    return choices.lookup("data", name, DATA_SCHEMAS)


@dataclass
class ModelConfig:
    """``model=<cell>``: the keyword arguments of rnnlab.models.forecaster.Forecaster, whose
    defaults are these. conf/model/<cell>.yaml sets the cell and what differs for it."""

    cell: str = key(f"the recurrent cell: {_one_of(choices.CELLS)} (set by model=...)")
    init: str = key(
        f"initial weights: {_one_of(choices.INITS)}; torch: nn.RNN's U(+-1/sqrt(H)) for every "
        "cell; native: each cell's own layers' defaults; identity: IRNN; orthogonal W_hh (each "
        f"gate's block); gru, lstm: {_one_of(choices.GATED_INITS)}",
        "torch",
    )
    hidden_size: int = key("hidden units per layer", 32)
    num_layers: int = key("stacked recurrent layers", 1)
    nonlinearity: str = key(
        f"the cell's activation: {_one_of(choices.NONLINEARITIES)} (gru, lstm: tanh, fixed)", "tanh"
    )
    readout: str = key(
        f"{_one_of(choices.READOUTS)}: W h_t, or the concat cell's act(W [h_(t-1), x_t])",
        "linear",
    )
    readout_activation: str = key(
        f"activation of the readout: {_one_of(choices.READOUT_ACTIVATIONS)}", "identity"
    )
    loss: str = key(
        f"{_one_of(choices.LOSS_MODES)}: loss on the final step, or on every step", "last"
    )
    optimizer: str = key(
        f"{_one_of(choices.OPTIMIZERS)}: torch.optim.Adam, or torch.optim.SGD, whose step scales "
        "with the gradient (so clipping bounds it); a constant lr: model.scheduler=none",
        "adam",
    )
    lr: float = key("the optimizer's learning rate", 0.01)
    momentum: float = key(
        "SGD's momentum m, 0 <= m < 1: buf = m buf + g, p -= lr buf (0: plain SGD; adam: 0)", 0.0
    )
    weight_decay: float = key("the optimizer's weight decay: L2, wd p added to the gradient", 0.0)
    scheduler: str = key(f"learning-rate schedule: {_one_of(choices.SCHEDULERS)}", "cosine")
    compile: bool = key(
        "torch.compile the time step of the Python-loop cells (slower on CPU)", False
    )


@dataclass
class LoggerConfig:
    """``logger=tensorboard``: what rnnlab writes beyond Lightning. TensorBoard events go to
    <job dir>/tb/, figures also to <job dir>/figures/*.png."""

    figures: bool = key("draw the figures after testing (false: about 0.5 s less per job)", True)
    histograms: bool = key("weight and gradient histograms every epoch", False)
    figures_every_n_epochs: int = key(
        "also draw the forecast figures every N epochs (0: never)", 0
    )
    rollout_steps: Optional[int] = key(  # noqa: UP045  (OmegaConf does not read `int | None`)
        "steps of the rollout figure (null: the whole test split)", None
    )


@dataclass
class Config:
    """The whole task config."""

    # typed by the chosen task's schema (DATA_SCHEMAS), the option data=<task>
    data: Any = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "lightning.Trainer arguments (conf/trainer/); add: +trainer.KEY=VALUE"},
    )
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = key("seeds Python, NumPy, torch and the data order", 0)
    replicas: int = key(
        "networks trained together in this job, seeds seed .. seed+replicas-1 (one batched "
        "network)",
        1,
    )
    threads: int = key("torch threads per job (one is fastest for models this small)", 1)
    resume: Optional[str] = key(  # noqa: UP045  (OmegaConf does not read `str | None`)
        "resume=<run dir>: continue a stopped run from its last checkpoint", None
    )


def register() -> None:
    """Put the schema in Hydra's ConfigStore as ``schema``, each task's as the option
    ``data=<task>`` and the logger's as ``logger=tensorboard`` (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="schema", node=Config)
    for name, node in DATA_SCHEMAS.items():
        store.store(group="data", name=name, node=node)
    store.store(group="logger", name="tensorboard", node=LoggerConfig)


def _node(path: str, dataset: str = choices.DATASETS[0]) -> Any:
    """The schema dataclass at ``path`` ("" for the top level, "model", "data" of ``dataset``,
    ...); None where the path leads to an open dict (``trainer``) or to no section."""
    if path == "data":
        return data_schema(dataset)
    node: Any = Config
    for part in filter(None, path.split(".")):
        found = {f.name: f for f in fields(node)}.get(part) if is_dataclass(node) else None
        node = found.default_factory if found else None
    return node if is_dataclass(node) else None


def keys(path: str, dataset: str = choices.DATASETS[0]) -> list[str]:
    """Keys the schema allows at ``path`` ("" for the top level, "model", "data" of ``dataset``,
    "logger")."""
    return [f.name for f in fields(_node(path, dataset))]


def help_of(path: str, dataset: str = choices.DATASETS[0]) -> dict[str, str]:
    """``{key: meaning}`` of the section at ``path``."""
    return {f.name: f.metadata.get("help", "") for f in fields(_node(path, dataset))}


def defaults_of(path: str, dataset: str = choices.DATASETS[0]) -> dict[str, Any]:
    """``{key: default}`` of the section at ``path``, for the keys that have one."""
    return {
        f.name: f.default
        for f in fields(_node(path, dataset))
        if f.default is not NO_DEFAULT and f.default != MISSING
    }


#: Sections whose keys the schema fixes (``trainer`` stays open to any Trainer argument).
CLOSED_SECTIONS = tuple(name for name in keys("") if _node(name) is not None)

_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def expected_type(dotted: str) -> str | None:
    """What the schema expects at ``dotted`` ("data.seq_len", "data.splits[0]"), in words."""
    section, _, name = dotted.rpartition(".")
    name, _, index = name.partition("[")
    schemas = tuple(DATA_SCHEMAS.values()) if section == "data" else (_node(section),)
    types = {f.name: str(f.type) for s in reversed(schemas) if s for f in fields(s)}
    hint = types.get(name, "")
    if index and hint.startswith("list["):
        hint = hint[5:-1]  # an element of the list
    return _TYPE_WORDS.get(hint)
