"""Every set of allowed values, and the split arithmetic: the one place each is written.

Torch-free, so the config checks (rnnlab.config.checks) refuse a bad value in about a second, before
torch is imported; the cells, the model, the data and the figures look their choices up here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from rnnlab.config.errors import invalid

CELLS = ("scratch", "concat", "torch")  # rnnlab.models.cells: ScratchRNN, ConcatRNN, TorchRNN
NONLINEARITIES = ("tanh", "relu")  # torch.tanh, torch.relu
READOUTS = ("linear", "concat")  # rnnlab.models.forecaster: LinearReadout, ConcatReadout
READOUT_ACTIVATIONS = ("identity", "tanh")  # nn.Identity, nn.Tanh
INITS = ("torch", "native", "identity", "orthogonal")  # rnnlab.models.cells.initialize
LOSS_MODES = ("last", "every")  # the final step of the window only, or every step
SCHEDULERS = ("cosine", "none")  # CosineAnnealingLR over trainer.max_epochs, or a constant lr
SPLIT_NAMES = ("train", "val", "test")  # in time order
DATASETS = ("sincos", "adding")  # rnnlab.data.tasks: SinCosDataModule, AddingDataModule
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "xla")  # lightning.Trainer's

T = TypeVar("T")


def check_choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    """Raise the one-line :class:`~rnnlab.config.errors.ConfigError` unless ``value`` is allowed."""
    if not isinstance(value, str) or value not in allowed:
        raise invalid(key, value, "one of: " + ", ".join(allowed))


def pick(key: str, value: str, allowed: Sequence[str], options: Sequence[T]) -> T:
    """The option for ``value``, where ``options`` line up with ``allowed``; one error for all."""
    check_choice(key, value, allowed)
    if len(options) != len(allowed):
        raise TypeError(f"{key}: {len(options)} options for {len(allowed)} choices")
    return options[list(allowed).index(value)]


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
