"""Readable run directory names.

TensorBoard names a run by its path under ``--logdir``, so a single run's directory carries its
command-line overrides (``outputs/<date>/<time>_model=concat,model.nonlinearity=relu/``), as a
sweep job's already does. The resolver adds the ``_`` only when there are overrides.
"""

from __future__ import annotations

from omegaconf import OmegaConf

RESOLVER = "rnnlab.suffix"


def suffix(value: str, sep: str = "_") -> str:
    """``_<value>``, or nothing for an empty value (a run without overrides)."""
    return f"{sep}{value}" if value else ""


def register_resolvers() -> None:
    """Make ``${rnnlab.suffix:...}`` available to conf/config.yaml (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, suffix)
