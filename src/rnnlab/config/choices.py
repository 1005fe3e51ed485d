"""Every set of allowed values, the sets of keys that share a role, and the split arithmetic:
the one place each is written.

Torch-free, so the config checks (rnnlab.config.checks) refuse a bad value in about a second,
before torch is imported. Where a choice is built, a ``{name: what it builds}`` map holds these
names (``rnnlab.models.cells.CELLS``; tests/test_config.py keeps each map's keys equal to its
tuple here), read with :func:`lookup`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from rnnlab.config.errors import invalid

VANILLA_CELLS = ("scratch", "concat", "torch")  # h_t = act(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)
#: The gated reference cells and their gates (blocks of W_ih and W_hh per layer, nn.GRU's r, z,
#: n and nn.LSTM's i, f, g, o): their activations are fixed (sigmoid gates, tanh candidates).
GATED_CELLS = {"gru": 3, "lstm": 4}
CELLS = (*VANILLA_CELLS, *GATED_CELLS)  # rnnlab.models.cells.CELLS: ScratchRNN, ..., LSTMRNN
NONLINEARITIES = ("tanh", "relu")  # rnnlab.models.cells.ACTIVATIONS: torch.tanh, torch.relu
READOUTS = ("linear", "concat")  # rnnlab.models.forecaster: LinearReadout, ConcatReadout
READOUT_ACTIVATIONS = ("identity", "tanh")  # nn.Identity, nn.Tanh
INITS = ("torch", "native", "identity", "orthogonal")  # rnnlab.models.cells.INITS
#: The inits that mean something for a gated cell: torch (nn.GRU's and nn.LSTM's own uniform
#: draw) and orthogonal (each gate's block of W_hh); native would repeat torch's draw, identity
#: is IRNN's, for a vanilla relu cell.
GATED_INITS = ("torch", "orthogonal")
LOSS_MODES = ("last", "every")  # the final step of the window only, or every step
OPTIMIZERS = ("adam", "sgd")  # rnnlab.models.forecaster.OPTIMIZERS: torch.optim.Adam, SGD
SCHEDULERS = ("cosine", "none")  # CosineAnnealingLR over trainer.max_epochs, or a constant lr
SPLIT_NAMES = ("train", "val", "test")  # in time order
DATASETS = ("sincos", "adding", "csv", "sunspots")  # data.tasks.DATAMODULES, schema.DATA_SCHEMAS
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "xla")  # lightning.Trainer's

#: Keys that choose a preset of other keys' values (conf/sweep/, conf/study/,
#: conf/hparams_search/): they describe no job, so no job's directory name or factors show them.
PRESETS = ("sweep", "study", "hparams_search")
#: Top-level keys with no effect on what a job trains or on its results (``hydra``: where and
#: how jobs run). Jobs that differ only in these and ``seed`` train the same networks: a sweep
#: may not give them one seed (rnnlab.config.checks), the analysis pools them into one
#: configuration (rnnlab.analysis.groups), a job's directory name leaves them out
#: (rnnlab.config.hydra_setup.unnamed_keys), and a resumed run may change them
#: (rnnlab.config.resume).
NO_EFFECT = ("hydra", "resume", "logger", "threads")
#: The keys in which the jobs of one pack of ``hydra/launcher=fused`` may differ: each network
#: of a pack has its own (rnnlab.models.pack.PackForecaster), and with them ``replicas``, how
#: many of its rows a job has. Jobs that differ in any other key with an effect on results
#: train in different packs (rnnlab.training.fused.pack_key).
FUSABLE = (
    "seed",
    "model.lr",
    "model.weight_decay",
    "model.momentum",
    "model.init",
    "model.nonlinearity",
    "model.loss",
    "trainer.gradient_clip_val",
)

T = TypeVar("T")


def check_choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    """Raise the one-line :class:`~rnnlab.config.errors.ConfigError` unless ``value`` is allowed."""
    if not isinstance(value, str) or value not in allowed:
        raise invalid(key, value, "one of: " + ", ".join(allowed))


def check_cell_keys(cell: str, nonlinearity: str | None = None, init: str | None = None) -> None:
    """Refuse a ``model.nonlinearity`` or ``model.init`` (None: not checked) that means nothing
    for ``model.cell``: a gated cell's activations are fixed, and it draws only
    :data:`GATED_INITS`."""
    if cell not in GATED_CELLS:
        return
    if nonlinearity is not None and nonlinearity != "tanh":
        raise invalid(
            "model.nonlinearity",
            nonlinearity,
            f"tanh with model.cell={cell} (its activations are fixed: sigmoid gates, tanh "
            "candidate)",
        )
    if init is not None and init not in GATED_INITS:
        raise invalid(
            "model.init", init, f"one of: {', '.join(GATED_INITS)} with model.cell={cell}"
        )


def lookup(key: str, value: Any, options: Mapping[str, T]) -> T:
    """``options[value]``, where ``options`` maps the allowed names to what they build (its keys
    are one of the tuples above); else the same one-line error as :func:`check_choice`, for
    Python callers (a run's config was checked once, by rnnlab.config.checks)."""
    try:
        return options[value]
    except (KeyError, TypeError):  # TypeError: an unhashable value, a list
        raise invalid(key, value, "one of: " + ", ".join(options)) from None


def has_effect(key: str) -> bool:
    """Whether a config key (``model.lr``, ``logger.figures``, ``threads``) can change results:
    it is not one of :data:`NO_EFFECT` nor below one."""
    return key.split(".", 1)[0] not in NO_EFFECT


def split_sizes(n_points: int, splits: Sequence[float]) -> list[int]:
    """Points per split (train, val, test); the rounding remainder goes to train."""
    sizes = [int(n_points * f) for f in splits]
    sizes[0] += n_points - sum(sizes)
    return sizes


def split_bounds(n_points: int, splits: Sequence[float]) -> list[tuple[int, int]]:
    """Contiguous ``[start, end)`` point ranges for train/val/test, in time order."""
    bounds, start = [], 0
    for size in split_sizes(n_points, splits):
        bounds.append((start, start + size))
        start += size
    return bounds
