"""The config schema and the checks that run before anything is written or trained.

Types come from the structured-config schema below (registered in Hydra's ConfigStore as
``schema`` and listed first in conf/config.yaml's defaults), so a wrong type or a misspelled
key fails while Hydra composes. Ranges and cross-field limits are checked by :func:`validate`,
which the :class:`ValidateConfig` Hydra callback runs before a run or sweep creates its
directory. This module imports neither torch nor Lightning, so a bad command line fails at once.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

# Allowed values; tests/test_config.py checks they match the code that implements them.
CELLS = ("scratch", "concat", "torch")
NONLINEARITIES = ("tanh", "relu")
READOUTS = ("linear", "concat")
READOUT_ACTIVATIONS = ("identity", "tanh")
LOSS_MODES = ("last", "every")
SCHEDULERS = ("cosine", "none")
SPLIT_NAMES = ("train", "val", "test")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "xla")
MAX_SEED = 2**32 - 1  # Lightning's seed_everything silently picks a random seed above this


@dataclass
class DataConfig:
    """conf/data/*.yaml: ``[sin, cos]`` windows (see rnnlab.data.SinCosDataModule)."""

    n_points: int = MISSING
    x_end: float = MISSING
    seq_len: int = MISSING
    noise_std: float = MISSING
    splits: list[float] = MISSING
    batch_size: int = MISSING
    shuffle: bool = MISSING


@dataclass
class ModelConfig:
    """conf/model/*.yaml: the keyword arguments of rnnlab.model.Forecaster."""

    cell: str = MISSING
    hidden_size: int = MISSING
    num_layers: int = MISSING
    nonlinearity: str = MISSING
    readout: str = MISSING
    readout_activation: str = MISSING
    loss: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    scheduler: str = MISSING
    compile: bool = MISSING


@dataclass
class LoggerConfig:
    """conf/logger/tensorboard.yaml: what rnnlab writes to TensorBoard beyond Lightning."""

    figures: bool = MISSING
    histograms: bool = MISSING
    figures_every_n_epochs: int = MISSING
    rollout_steps: Optional[int] = None  # noqa: UP045  (OmegaConf does not read `int | None`)


@dataclass
class Config:
    """The whole task config. ``trainer`` holds ``lightning.Trainer`` keyword arguments and
    is open to ``+trainer.KEY=VALUE``; ``logger`` holds the TensorBoard options."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: dict[str, Any] = field(default_factory=dict)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = MISSING
    threads: int = MISSING
    resume: Optional[str] = None  # noqa: UP045  (OmegaConf does not read `str | None`)


ConfigStore.instance().store(name="schema", node=Config)


class ConfigError(ValueError):
    """A config a run cannot use. Its message is the single line the user sees."""


def _show(value: Any) -> str:
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_show(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"  # as the user typed it on the command line
    return "null" if value is None else str(value)


def invalid(key: str, value: Any, expected: str) -> ConfigError:
    """The one-line error: the key, the bad value and what is allowed."""
    return ConfigError(f"{key}={_show(value)} is not allowed; expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= low


def _one_of(*allowed: Any) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, bool | str | type(None)) and v in allowed


def _check(key: str, value: Any, ok: Callable[[Any], bool], expected: str) -> None:
    if not ok(value):
        raise invalid(key, value, expected)


def _choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    _check(key, value, lambda v: v in allowed, "one of: " + ", ".join(allowed))


def split_sizes(n_points: int, splits: Sequence[float]) -> list[int]:
    """Points per split, exactly as rnnlab.data.split_bounds cuts them (train gets the rest)."""
    sizes = [int(n_points * f) for f in splits]
    sizes[0] += n_points - sum(sizes)
    return sizes


def _min_points(seq_len: int, splits: Sequence[float]) -> int:
    """The smallest ``n_points`` that leaves every split more than ``seq_len`` points."""
    n = max(math.ceil((seq_len + 1) / f) for f in splits)
    while min(split_sizes(n, splits)) <= seq_len:
        n += 1
    return n


def _validate_data(data: DictConfig) -> None:
    _check("data.x_end", data.x_end, lambda v: _is_number(v) and v > 0, "a number > 0")
    _check("data.noise_std", data.noise_std, lambda v: _is_number(v) and v >= 0, "a number >= 0")
    _check("data.batch_size", data.batch_size, _int_at_least(1), "an integer >= 1")
    splits = list(data.splits)
    fractions_ok = len(splits) == 3 and all(_is_number(f) and f > 0 for f in splits)
    if not (fractions_ok and math.isclose(sum(splits), 1.0, abs_tol=1e-6)):
        total = f" (these sum to {sum(splits):g})" if fractions_ok else ""
        raise invalid(
            "data.splits", splits, f"three fractions > 0 (train, val, test) that sum to 1{total}"
        )
    _check("data.seq_len", data.seq_len, _int_at_least(1), "an integer >= 1")
    _check("data.n_points", data.n_points, _int_at_least(1), "an integer >= 1")
    sizes = split_sizes(data.n_points, splits)
    smallest = min(range(3), key=lambda i: sizes[i])
    where = f"the smallest split, {SPLIT_NAMES[smallest]}, gets {sizes[smallest]} points"
    if sizes[smallest] < 2:
        need = _min_points(data.seq_len, splits)
        raise invalid(
            "data.n_points",
            data.n_points,
            f"at least {need} for data.seq_len={data.seq_len} (every split needs more points "
            f"than seq_len; {where})",
        )
    if data.seq_len >= sizes[smallest]:
        raise invalid(
            "data.seq_len",
            data.seq_len,
            f"an integer from 1 to {sizes[smallest] - 1} (every split needs more points than "
            f"seq_len; {where} of data.n_points={data.n_points}), or data.n_points >= "
            f"{_min_points(data.seq_len, splits)}",
        )


def _validate_model(model: DictConfig) -> None:
    _choice("model.cell", model.cell, CELLS)
    _check("model.hidden_size", model.hidden_size, _int_at_least(1), "an integer >= 1")
    _check("model.num_layers", model.num_layers, _int_at_least(1), "an integer >= 1")
    _choice("model.nonlinearity", model.nonlinearity, NONLINEARITIES)
    _choice("model.readout", model.readout, READOUTS)
    _choice("model.readout_activation", model.readout_activation, READOUT_ACTIVATIONS)
    _choice("model.loss", model.loss, LOSS_MODES)
    _check("model.lr", model.lr, lambda v: _is_number(v) and v > 0, "a number > 0")
    _check(
        "model.weight_decay",
        model.weight_decay,
        lambda v: _is_number(v) and v >= 0,
        "a number >= 0",
    )
    _choice("model.scheduler", model.scheduler, SCHEDULERS)


def _devices_ok(value: Any) -> bool:
    if isinstance(value, ListConfig | list):
        return len(value) > 0 and all(_is_int(v) and v >= 0 for v in value)
    return value == "auto" or (_is_int(value) and (value >= 1 or value == -1))


#: Checks for the Trainer arguments conf/trainer/ sets; others go to Lightning unchecked.
TRAINER_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_epochs": (_int_at_least(1), "an integer >= 1"),
    "min_epochs": (lambda v: v is None or _int_at_least(0)(v), "null or an integer >= 0"),
    "devices": (_devices_ok, "an integer >= 1, -1 (all), auto, or a list of device indices"),
    "num_nodes": (_int_at_least(1), "an integer >= 1"),
    "accelerator": (lambda v: v in ACCELERATORS, "one of: " + ", ".join(ACCELERATORS)),
    "gradient_clip_val": (lambda v: v is None or (_is_number(v) and v >= 0), "null or >= 0"),
    "deterministic": (_one_of(True, False, "warn"), "true, false or warn"),
    "num_sanity_val_steps": (_int_at_least(-1), "an integer >= -1"),
    "log_every_n_steps": (_int_at_least(1), "an integer >= 1"),
    "enable_progress_bar": (_one_of(True, False, "auto"), "true, false or auto"),
    "enable_model_summary": (_one_of(True, False), "true or false"),
    "check_val_every_n_epoch": (_int_at_least(1), "an integer >= 1"),
}


def _validate_trainer(trainer: DictConfig) -> None:
    for key, value in trainer.items():
        if key in TRAINER_CHECKS:
            ok, expected = TRAINER_CHECKS[key]
            _check(f"trainer.{key}", value, ok, expected)
    unknown = set(trainer) - set(TRAINER_CHECKS) - {"strategy"}
    if unknown:  # only then is Lightning's (slow) import worth it
        import inspect

        import lightning

        allowed = set(inspect.signature(lightning.Trainer.__init__).parameters) - {"self"}
        for key in sorted(unknown - allowed):
            raise ConfigError(
                f"trainer.{key}={_show(trainer[key])}: lightning.Trainer has no argument {key}; "
                f"{did_you_mean(key, sorted(allowed))}(see lightning.Trainer's documentation)"
            )


def runs_several_processes(trainer: DictConfig) -> bool:
    """Whether Lightning would start more than one process for these Trainer arguments."""
    devices = trainer.get("devices", 1)
    several = isinstance(devices, ListConfig | list) and len(devices) > 1
    several = several or devices in ("auto", -1) or (_is_int(devices) and devices > 1)
    return several or trainer.get("num_nodes", 1) != 1


def _hydra_node(cfg: DictConfig) -> DictConfig | None:
    """The ``hydra`` node: in the config Hydra callbacks get, or Hydra's global one in a job."""
    if "hydra" in cfg:
        return cfg.hydra
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _check_not_ddp_in_sweep(cfg: DictConfig) -> None:
    """Lightning's DDP re-runs the script for each extra process; inside ``-m`` that re-runs the
    sweep. The SLURM launcher starts one task per device itself, so it is the exception."""
    from hydra.types import RunMode

    hydra = _hydra_node(cfg)
    if hydra is None or hydra.mode != RunMode.MULTIRUN:
        return
    if str(hydra.launcher.get("_target_", "")).endswith("SlurmLauncher"):
        return
    if runs_several_processes(cfg.trainer):
        raise ConfigError(
            f"trainer.devices={_show(cfg.trainer.get('devices'))} (more than one process) is "
            "not supported inside a -m sweep: Lightning's DDP re-runs the script, which re-runs "
            "the sweep. Use one device per job and run jobs in parallel "
            "(hydra/launcher=joblib), or DDP inside each job of a SLURM sweep (hydra/launcher="
            "slurm hydra.launcher.tasks_per_node=N hydra.launcher.gpus_per_node=N trainer=ddp "
            "trainer.devices=N), or trainer=ddp in a single run"
        )


def _validate_logger(logger: DictConfig) -> None:
    every = logger.figures_every_n_epochs
    _check("logger.figures_every_n_epochs", every, _int_at_least(0), "an integer >= 0")
    steps = logger.rollout_steps
    _check(
        "logger.rollout_steps", steps, lambda v: v is None or _int_at_least(1)(v), "null or >= 1"
    )


def _check_known_keys(cfg: DictConfig) -> None:
    """Keys added with ``+`` to a closed section would only be ignored, or crash the model."""
    for section in CLOSED_SECTIONS:
        allowed = schema_keys(section)
        for key in cfg[section]:
            if key not in allowed:
                given = f"{section}.{key}={_show(cfg[section][key])}"
                raise ConfigError(no_such_key(given, f"{section}.{key}", allowed))


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value a run cannot use."""
    _check_known_keys(cfg)
    _validate_data(cfg.data)
    _validate_model(cfg.model)
    _validate_trainer(cfg.trainer)
    _validate_logger(cfg.logger)
    _check("seed", cfg.seed, lambda v: _is_int(v) and 0 <= v <= MAX_SEED, f"0 to {MAX_SEED}")
    _check("threads", cfg.threads, _int_at_least(1), "an integer >= 1")
    _check_not_ddp_in_sweep(cfg)


def _schema_node(path: str) -> Any:
    """The schema dataclass at ``path`` ("" for the top level, "model", ...); None if the path
    leads to an open dict (``trainer``) or to no section."""
    node: Any = Config
    for part in filter(None, path.split(".")):
        found = {f.name: f for f in fields(node)}.get(part) if is_dataclass(node) else None
        node = found.default_factory if found else None
    return node if is_dataclass(node) else None


def schema_keys(path: str) -> list[str]:
    """Keys the schema allows at ``path`` ("" for the top level, "model", "data", "logger")."""
    return [f.name for f in fields(_schema_node(path))]


#: Sections whose keys the schema fixes (``trainer`` stays open to any Trainer argument).
CLOSED_SECTIONS = tuple(name for name in schema_keys("") if _schema_node(name) is not None)


def no_such_key(given: str, key: str, allowed: Sequence[str]) -> str:
    """The one line for a key the config does not have: ``given`` as the user wrote it, a guess
    from ``allowed``, and how to add it where the section is open."""
    parent, _, name = key.rpartition(".")
    listed = f"allowed keys: {', '.join(allowed)}" if allowed else ""
    if parent not in CLOSED_SECTIONS:
        listed = f"{listed}; " if listed else ""
        listed += f"add a new key with +{key}=..."
    return f"{given}: there is no key {key}; {did_you_mean(name, allowed, parent)}({listed})"


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def expected_type(key: str) -> str | None:
    """What the schema expects at ``key`` ("data.seq_len", "data.splits[0]"), in words."""
    section, _, name = key.rpartition(".")
    name, _, index = name.partition("[")
    schema = _schema_node(section)
    types = {f.name: str(f.type) for f in fields(schema)} if schema else {}
    hint = types.get(name, "")
    if index and hint.startswith("list["):
        hint = hint[5:-1]  # an element of the list
    return _TYPE_WORDS.get(hint)


def did_you_mean(key: str, choices: Sequence[str], parent: str = "") -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    prefix = f"{parent}." if parent else ""
    return f"did you mean {prefix}{close[0]}? " if close else ""


def sweep_job_overrides(cfg: DictConfig) -> Iterator[list[str]]:
    """Each job's overrides in a basic-sweeper multirun, as Hydra's BasicSweeper expands them
    (``hydra.sweeper.params`` first, then the command line)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = cfg.hydra.sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += list(cfg.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    for batch in BasicSweeper.split_arguments(parsed, None):
        yield from batch


class InvalidConfig(SystemExit):
    """A :class:`ConfigError` leaving a Hydra callback. Hydra turns an ``Exception`` raised in a
    callback into a warning and goes on; a ``SystemExit`` stops it. rnnlab.cli prints it."""


class ValidateConfig(Callback):
    """Hydra callback: validates a run, or every job of a sweep, before Hydra creates any
    directory, so a bad value neither trains nor writes anything."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
        except ConfigError as err:
            raise InvalidConfig(str(err)) from err

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
            if "BasicSweeper" in str(config.hydra.sweeper.get("_target_", "")):
                # Other sweepers choose values as they go; each job validates in its task.
                from hydra.core.global_hydra import GlobalHydra

                loader = GlobalHydra.instance().config_loader()
                for overrides in sweep_job_overrides(config):
                    validate(loader.load_sweep_config(config, overrides))
        except ConfigError as err:
            raise InvalidConfig(str(err)) from err
