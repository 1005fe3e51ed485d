"""rnnlab's Hydra launcher ``hydra/launcher=fused`` (Hydra finds launchers under the
``hydra_plugins`` namespace package)."""
