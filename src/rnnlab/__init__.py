"""rnnlab: compare vanilla RNN variants with Lightning, Hydra and TensorBoard.

The public names below are imported on first use, so ``import rnnlab`` stays torch-free (a bad
command line is refused in about a second): ``rnnlab.ScratchRNN`` imports torch, ``import
rnnlab`` does not, and neither does ``rnnlab.train`` until a run trains. The notebook API
(rnnlab.api, docs/api.md): ``rnnlab.train(overrides, run_dir=None)`` returns a ``rnnlab.Run``;
``rnnlab.load_run(run_dir)``; ``rnnlab.load_sweep(sweep_dir)``; a config train.py refuses raises
``rnnlab.ConfigError`` with train.py's line.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_PUBLIC = {
    "ScratchRNN": "rnnlab.models.cells",
    "ConcatRNN": "rnnlab.models.cells",
    "TorchRNN": "rnnlab.models.cells",
    "GRURNN": "rnnlab.models.cells",
    "LSTMRNN": "rnnlab.models.cells",
    "Forecaster": "rnnlab.models.forecaster",
    "ReplicaForecaster": "rnnlab.models.replicas",
    "make_windows": "rnnlab.data.tasks",
    "SinCosDataModule": "rnnlab.data.tasks",
    "AddingDataModule": "rnnlab.data.tasks",
    "train": "rnnlab.api",
    "load_run": "rnnlab.api",
    "load_sweep": "rnnlab.api",
    "Run": "rnnlab.api",
    "ConfigError": "rnnlab.config.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
