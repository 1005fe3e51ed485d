"""Range and cross-field checks of a composed config: :func:`validate` refuses the first value a
run cannot use with a one-line :class:`~rnnlab.config.errors.ConfigError`.

Types and key names are the schema's (rnnlab.config.schema), checked by Hydra while it composes. The
Hydra callback rnnlab.config.hydra_callbacks.ValidateConfig runs :func:`validate` once per run, or
once per sweep for all its jobs, before anything is written. Torch-free: a bad command line
fails in about a second.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rnnlab.config import choices, schema
from rnnlab.config.errors import ConfigError, did_you_mean, invalid, no_such_key, show
from rnnlab.config.series import constant_column, series_of

MAX_SEED = 2**32 - 1  # Lightning's seed_everything silently picks a random seed above this
#: The most networks one job trains together (``replicas``): far more than a sweep over seeds
#: needs, and few enough that a typo (replicas=100000) fails here, not in the memory check.
MAX_REPLICAS = 4096
#: Bytes per parameter while training with Adam: the weight, its gradient and two moments.
TRAIN_BYTES_PER_PARAM = 4 * 4
#: The tasks whose data is a series read from a file (rnnlab.config.series).
SERIES_TASKS = ("csv", "sunspots")


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


def _min_points(seq_len: int, splits: Sequence[float]) -> int:
    """The smallest ``n_points`` that leaves every split more than ``seq_len`` points."""
    n = max(math.ceil((seq_len + 1) / f) for f in splits)
    while min(choices.split_sizes(n, splits)) <= seq_len:
        n += 1
    return n


def _validate_data(data: DictConfig) -> None:
    choices.check_choice("data.name", data.name, choices.DATASETS)
    _check("data.batch_size", data.batch_size, _int_at_least(1), "an integer >= 1")
    if data.name == "adding":
        _check("data.seq_len", data.seq_len, _int_at_least(2), "an integer >= 2")
        for key in ("n_train", "n_val", "n_test"):
            _check(f"data.{key}", data[key], _int_at_least(1), "an integer >= 1")
        return
    if data.name in SERIES_TASKS:
        _validate_series(data)
        return
    _validate_sincos(data)


def _validate_splits(data: DictConfig) -> list[float]:
    """``data.splits`` (three fractions > 0 that sum to 1) and ``data.seq_len`` (>= 1)."""
    splits = list(data.splits)
    fractions_ok = len(splits) == 3 and all(_is_number(f) and f > 0 for f in splits)
    if not (fractions_ok and math.isclose(sum(splits), 1.0, abs_tol=1e-6)):
        total = f" (these sum to {sum(splits):g})" if fractions_ok else ""
        raise invalid(
            "data.splits", splits, f"three fractions > 0 (train, val, test) that sum to 1{total}"
        )
    _check("data.seq_len", data.seq_len, _int_at_least(1), "an integer >= 1")
    return splits


def _validate_series(data: DictConfig) -> None:
    """A CSV file's or the sunspots' series (rnnlab.config.series refuses a file it cannot
    read): long enough for ``data.seq_len`` in every split, and no channel constant over the
    train split, whose standard deviation scales it."""
    splits = _validate_splits(data)
    found = series_of(data)
    rows = len(found.values)
    sizes = choices.split_sizes(rows, splits)
    smallest = min(range(3), key=lambda i: sizes[i])
    if data.seq_len >= sizes[smallest]:
        need = _min_points(data.seq_len, splits)
        ways = [f"data.seq_len={sizes[smallest] - 1} or less"] if sizes[smallest] > 1 else []
        if data.name == "csv":
            ways.append(f"a file of at least {need} rows")
        raise ConfigError(
            f"{found.source}: {rows} rows are too few for data.seq_len={data.seq_len} and "
            f"data.splits={show(splits)}: every split needs more rows than seq_len, and the "
            f"smallest, {choices.SPLIT_NAMES[smallest]}, gets {sizes[smallest]}; use "
            + (", or ".join(ways) or "other data.splits")
        )
    start, end = choices.split_bounds(rows, splits)[0]
    constant = constant_column(found, start, end)
    if constant is not None:
        raise ConfigError(
            f"{found.source}: column {constant!r} is constant over the train split (rows "
            f"{start + 1}..{end} in time order): it has no spread to standardise by; leave it "
            "out with data.columns=[...]"
        )


def _validate_sincos(data: DictConfig) -> None:
    _check("data.x_end", data.x_end, lambda v: _is_number(v) and v > 0, "a number > 0")
    _check("data.noise_std", data.noise_std, lambda v: _is_number(v) and v >= 0, "a number >= 0")
    splits = _validate_splits(data)
    _check("data.n_points", data.n_points, _int_at_least(1), "an integer >= 1")
    sizes = choices.split_sizes(data.n_points, splits)
    smallest = min(range(3), key=lambda i: sizes[i])
    where = f"the smallest split, {choices.SPLIT_NAMES[smallest]}, gets {sizes[smallest]} points"
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


def _validate_model(model: DictConfig, data: DictConfig) -> None:
    choices.check_choice("model.cell", model.cell, choices.CELLS)
    choices.check_choice("model.init", model.init, choices.INITS)
    _check("model.hidden_size", model.hidden_size, _int_at_least(1), "an integer >= 1")
    _check("model.num_layers", model.num_layers, _int_at_least(1), "an integer >= 1")
    choices.check_choice("model.nonlinearity", model.nonlinearity, choices.NONLINEARITIES)
    choices.check_choice("model.readout", model.readout, choices.READOUTS)
    choices.check_choice(
        "model.readout_activation", model.readout_activation, choices.READOUT_ACTIVATIONS
    )
    choices.check_cell_keys(model.cell, model.nonlinearity, model.init)
    choices.check_choice("model.loss", model.loss, choices.LOSS_MODES)
    if data.name == "adding" and model.loss != "last":
        raise invalid(
            "model.loss", model.loss, "last with data=adding (one target per sequence, at its end)"
        )
    _check("model.lr", model.lr, lambda v: _is_number(v) and v > 0, "a number > 0")
    _check(
        "model.weight_decay",
        model.weight_decay,
        lambda v: _is_number(v) and v >= 0,
        "a number >= 0",
    )
    choices.check_choice("model.scheduler", model.scheduler, choices.SCHEDULERS)
    _validate_optimizer(model)


def _validate_optimizer(model: DictConfig) -> None:
    """``model.optimizer``, and ``model.momentum``: SGD's, 0 <= m < 1 (at 1 the buffer sums
    every gradient and never forgets); Adam has its own (betas), so a momentum with Adam would
    be silently ignored."""
    choices.check_choice("model.optimizer", model.optimizer, choices.OPTIMIZERS)
    momentum = model.momentum
    _check(
        "model.momentum", momentum, lambda v: _is_number(v) and 0 <= v < 1, "a number 0 <= m < 1"
    )
    if model.optimizer == "adam" and momentum != 0:
        raise invalid(
            "model.momentum",
            momentum,
            "0 with model.optimizer=adam (momentum is SGD's; Adam has its own moments), or "
            "model.optimizer=sgd",
        )


def estimated_parameters(input_size: int, hidden_size: int, num_layers: int, gates: int = 1) -> int:
    """Parameters of a cell and its linear readout (nn.RNN's count: two biases per layer; a
    gated cell has ``gates`` times the cell's, ``choices.GATED_CELLS``)."""
    first = gates * hidden_size * (input_size + hidden_size + 2)
    rest = (num_layers - 1) * gates * hidden_size * (2 * hidden_size + 2)
    return first + rest + input_size * (hidden_size + 1)


def _gates(model: DictConfig) -> int:
    return choices.GATED_CELLS.get(model.cell, 1)


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def replica_data_bytes(data: DictConfig) -> int:
    """Bytes of data each replica holds on its own (float32), which the others do not share:
    the adding problem draws each replica's sequences from its own seed, (n_train + n_val +
    n_test) * seq_len * 3 values (2 input channels and the target); a noisy sincos series is
    each replica's own, held as windows, about n_points * seq_len * 4 values ([sin, cos] in and
    out); the noiseless series is the same for every replica, so counts nothing here."""
    if data.name == "adding":
        return 4 * (data.n_train + data.n_val + data.n_test) * data.seq_len * 3
    if data.name in SERIES_TASKS:  # one file's series, the same for every replica
        return 0
    if data.noise_std > 0:
        return 4 * data.n_points * data.seq_len * 4
    return 0


def _channels(data: DictConfig) -> int:
    """The task's input channels: a series' columns, else the synthetic tasks' two."""
    return len(series_of(data).columns) if data.name in SERIES_TASKS else 2


def training_examples(data: DictConfig) -> int:
    """How many windows (or adding sequences) a network trains on per epoch."""
    if data.name == "adding":
        return int(data.n_train)
    points = len(series_of(data).values) if data.name in SERIES_TASKS else data.n_points
    return choices.split_sizes(points, data.splits)[0] - data.seq_len


def training_work(cfg: DictConfig) -> float:
    """About how much arithmetic one network of ``cfg`` does in training, in units that only
    compare configs: epochs x examples x steps x hidden units x layers x gates."""
    model, data = cfg.model, cfg.data
    per_step = model.hidden_size * model.num_layers * _gates(model)
    return float(cfg.trainer.max_epochs * training_examples(data) * data.seq_len * per_step)


def network_bytes(cfg: DictConfig) -> int:
    """About how many bytes one network of ``cfg`` needs while it trains: its weights,
    gradients and Adam's moments, the hidden states autograd keeps for a batch (which holds
    at most the whole training split), and its own data. A job of ``replicas`` networks, or a
    pack of fused jobs (rnnlab.training.fused), needs that many times as much."""
    model, data = cfg.model, cfg.data
    params = estimated_parameters(
        _channels(data), model.hidden_size, model.num_layers, _gates(model)
    )
    examples = training_examples(data)
    batch = min(data.batch_size, max(examples, 1))
    # a gated cell keeps each gate's activations for backward, about one state per gate
    states = batch * data.seq_len * model.hidden_size * model.num_layers * _gates(model)
    return params * TRAIN_BYTES_PER_PARAM + 3 * 4 * states + replica_data_bytes(data)


def networks_that_fit(cfg: DictConfig, share: float = 1.0) -> int | None:
    """How many networks of ``cfg`` fit in ``share`` of this machine's memory while they train
    (:func:`network_bytes` each); None where the memory cannot be read."""
    memory = _memory_bytes()
    return None if memory is None else int(memory * share) // network_bytes(cfg)


def _check_size(cfg: DictConfig) -> None:
    """Refuse a network, or ``replicas`` of them, that would not fit in this machine's memory
    while training, before minutes go into building it."""
    model = cfg.model
    params = estimated_parameters(
        _channels(cfg.data), model.hidden_size, model.num_layers, _gates(model)
    )
    one = network_bytes(cfg)
    need = one * cfg.replicas  # each replica has its own parameters, states and data
    memory = _memory_bytes()
    if memory is None or need <= memory:
        return
    size = f"model.hidden_size={model.hidden_size}, model.num_layers={model.num_layers}"
    if one <= memory:  # one fits: it is the number of replicas that does not
        raise invalid(
            "replicas",
            cfg.replicas,
            f"at most {memory // one}, the networks that fit in memory: {cfg.replicas} networks of "
            f"{size} would have about {params * cfg.replicas:.3g} parameters and need about "
            f"{need / 2**30:.3g} GiB to train, and this machine has {memory / 2**30:.3g} GiB",
        )
    raise ConfigError(
        f"{size} is not allowed; expected a network that fits in memory: it would have "
        f"about {params:.3g} parameters and need about {one / 2**30:.3g} GiB to train, "
        f"and this machine has {memory / 2**30:.3g} GiB"
    )


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
    "accelerator": (
        lambda v: v in choices.ACCELERATORS,
        "one of: " + ", ".join(choices.ACCELERATORS),
    ),
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
                f"trainer.{key}={show(trainer[key])}: lightning.Trainer has no argument {key}; "
                f"{did_you_mean(key, sorted(allowed))}(see lightning.Trainer's documentation)"
            )


def _check_accelerator_present(trainer: DictConfig) -> None:
    """A GPU asked for on a machine without one fails here, before a run directory exists,
    not after Lightning's seconds of start-up. Only then is torch imported."""
    if trainer.get("accelerator") not in ("gpu", "cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise invalid(
            "trainer.accelerator",
            trainer.accelerator,
            "cpu or auto on this machine: torch finds no CUDA GPU here "
            f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} "
            "CUDA)",
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
            f"trainer.devices={show(cfg.trainer.get('devices'))} (more than one process) is "
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
    for section in schema.CLOSED_SECTIONS:
        allowed = schema.keys(section, cfg.data.name)
        for key in cfg[section]:
            if key not in allowed:
                given = f"{section}.{key}={show(cfg[section][key])}"
                raise ConfigError(no_such_key(given, f"{section}.{key}", allowed, closed=True))


def _check_replicas(replicas: Any, seed: int) -> None:
    """``replicas``: 1 to :data:`MAX_REPLICAS`, and its highest seed, seed + replicas - 1,
    still one Lightning can seed with (at most :data:`MAX_SEED`)."""
    ok = _int_at_least(1)
    _check("replicas", replicas, lambda v: ok(v) and v <= MAX_REPLICAS, f"1 to {MAX_REPLICAS}")
    highest = seed + replicas - 1
    if highest > MAX_SEED:
        raise invalid(
            "replicas",
            replicas,
            f"at most {MAX_SEED - seed + 1} with seed={seed}: the highest seed, seed+replicas-1 "
            f"= {highest}, would be above {MAX_SEED}",
        )


def _seed_range(first: int, last: int) -> str:
    return f"seed {first}" if first == last else f"seeds {first}..{last}"


def _without_seed(cfg: DictConfig) -> str:
    """A hashable form of a job's config without ``seed`` and the keys without effect on
    results (:data:`rnnlab.config.choices.NO_EFFECT`; JSON: a tenth of the time of YAML, which
    matters for a sweep of hundreds of jobs)."""
    kept = {
        k: OmegaConf.to_container(cfg[k], resolve=False) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in cfg
        if k != "seed" and choices.has_effect(k)
    }
    return json.dumps(kept, sort_keys=True, default=str)


def check_distinct_seeds(configs: Iterable[DictConfig]) -> None:
    """Refuse a sweep two of whose jobs would train the same network: configs (validated) equal
    but for ``seed`` (and keys without effect on results) whose seeds, ``seed ..
    seed+replicas-1``, overlap. The line suggests the sweep's seeds stepping by ``replicas``.
    O(jobs): jobs are grouped by their config without seed, and each is read once (a generator
    will do)."""
    typed = (k for k in choices.NO_EFFECT if k != "hydra")  # hydra.*: Hydra's own settings
    ignored = ", ".join(f"{k}.*" if k in schema.CLOSED_SECTIONS else k for k in typed)
    groups: dict[str, tuple[int, list[int]]] = {}  # config without seed: (replicas, seeds)
    for cfg in configs:
        groups.setdefault(_without_seed(cfg), (cfg.replicas, []))[1].append(cfg.seed)
    for replicas, seeds in groups.values():
        ordered = sorted(seeds)
        for low, high in itertools.pairwise(ordered):
            if high - low >= replicas:
                continue
            given = "seed=" + ",".join(map(str, seeds))
            start = max(0, min(ordered[0], MAX_SEED + 1 - len(seeds) * replicas))
            steps = ",".join(str(start + i * replicas) for i in range(len(seeds)))
            twice = _seed_range(high, low + replicas - 1)
            if replicas == 1:
                raise ConfigError(
                    f"{given} trains {twice} twice (the jobs differ only in seed, or in keys "
                    f"with no effect on results: {ignored}); use distinct seeds, e.g. "
                    f"seed={steps}"
                )
            fewer = " or replicas=1" if len(set(seeds)) == len(seeds) else ""
            raise ConfigError(
                f"{given} with replicas={replicas} trains {twice} twice; use seed={steps} "
                f"(seeds step by replicas){fewer}"
            )


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value a run cannot use."""
    _check_known_keys(cfg)
    _validate_data(cfg.data)
    _validate_model(cfg.model, cfg.data)
    _validate_trainer(cfg.trainer)
    _validate_logger(cfg.logger)
    _check("seed", cfg.seed, lambda v: _is_int(v) and 0 <= v <= MAX_SEED, f"0 to {MAX_SEED}")
    _check_replicas(cfg.replicas, cfg.seed)
    _check("threads", cfg.threads, _int_at_least(1), "an integer >= 1")
    _check_machine_limits(cfg)
    _check_size(cfg)
    _check_not_ddp_in_sweep(cfg)
    _check_accelerator_present(cfg.trainer)


#: The largest float32, the type of the data, the weights and the optimiser's arithmetic.
FLOAT32_MAX = 3.4028234663852886e38
#: Adam's first step is lr / (1 - beta1) = 10 lr, which torch must hold as a float32.
ADAM_FIRST_STEP = 10
#: The largest normal draw torch makes is below 9 (Box-Muller over its uniform draws), so
#: noise_std * 10 bounds every noise value.
NOISE_DRAW_MAX = 10
#: Bytes per point of a sin/cos series: [sin, cos] in float32 (its windows are views of it).
SERIES_BYTES_PER_POINT = 4 * 2


def _at_most(key: str, value: Any, limit: float, low: str, why: str) -> None:
    if _is_number(value) and value > limit:
        raise invalid(key, value, f"a number {low} and at most {limit:.2g} ({why})")


def _check_float32_range(cfg: DictConfig) -> None:
    """Values that float32 cannot hold, or that make the data or Adam's step overflow to inf,
    crash deep in a run (the linear baseline's least squares, Adam's update) instead of
    diverging: refuse them. Smaller huge values train and are reported as diverged."""
    data, model = cfg.data, cfg.model
    if data.name == "sincos":
        _at_most("data.x_end", data.x_end, FLOAT32_MAX, "> 0", "the largest float32")
        _at_most(
            "data.noise_std",
            data.noise_std,
            FLOAT32_MAX / NOISE_DRAW_MAX,
            ">= 0",
            "larger noise overflows the float32 series to inf",
        )
    lr_max = FLOAT32_MAX / ADAM_FIRST_STEP
    _at_most("model.lr", model.lr, lr_max, "> 0", "Adam's first step, 10 x lr, is a float32")
    _at_most("model.weight_decay", model.weight_decay, FLOAT32_MAX, ">= 0", "the largest float32")


def _check_data_fits(cfg: DictConfig) -> None:
    """One network's data alone larger than this machine's memory: the line names the data
    key that makes it so, before _check_size counts data and network together."""
    memory = _memory_bytes()
    data = cfg.data
    if memory is None or data.name in SERIES_TASKS:  # a file's series: already read whole
        return
    if data.name == "adding":
        sizes = {k: data[k] for k in ("n_train", "n_val", "n_test")}
        need = replica_data_bytes(data)  # one network's sequences, as _check_size counts them
        key = max(sizes, key=lambda k: sizes[k])
        what = (
            f"{sum(sizes.values())} sequences (data.n_train + data.n_val + data.n_test) of "
            f"{data.seq_len} steps"
        )
        key, value = f"data.{key}", sizes[key]
    else:
        need = SERIES_BYTES_PER_POINT * data.n_points
        key, value, what = "data.n_points", data.n_points, f"a series of {data.n_points} points"
    if need > memory:
        raise invalid(
            key,
            value,
            f"data that fit in memory: {what} would need about {need / 2**30:.3g} GiB, and "
            f"this machine has {memory / 2**30:.3g} GiB",
        )


def _check_machine_limits(cfg: DictConfig) -> None:
    """What the types and the memory of the machine cannot hold (after the ranges above)."""
    _check_float32_range(cfg)
    _check_data_fits(cfg)


def check_output_dir(path: Any, key: str) -> None:
    """Refuse a run or sweep directory that cannot be created or written (a file in the way, a
    read-only disk, /proc), naming it and ``key`` to choose another, before anything runs. It is
    created here, as Hydra would create it next: trying is the only test that /proc passes."""
    folder = os.path.abspath(str(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        blocking = _file_in_the_way(folder)
        why = f"{blocking} is a file" if blocking else err.strerror or type(err).__name__
        raise ConfigError(
            f"{key}={path}: cannot create the directory: {why}; choose another with {key}=DIR"
        ) from err
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{key}={path}: cannot write in the directory (permission denied); choose another "
            f"with {key}=DIR"
        )


def _file_in_the_way(folder: str) -> str | None:
    """The file where ``folder`` or one of the folders above it should be, if any."""
    path = folder
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return None if os.path.isdir(path) else path
