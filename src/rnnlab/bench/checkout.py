"""The checkout whose conf/ the bench runs, and the configs composed from it. Torch-free, so
that the command line checks every override it was given before a section imports torch."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from rnnlab.config import hydra_setup
from rnnlab.config.checks import validate


def checkout() -> Path:
    """The rnnlab checkout whose conf/ (and train.py) the bench runs: the current directory if
    it has one, else the checkout this package was imported from (src/rnnlab/bench/ in it)."""
    package_checkout = Path(__file__).resolve().parents[3]
    for root in (Path.cwd(), package_checkout):
        if (root / "conf" / "config.yaml").is_file():
            return root
    raise SystemExit(
        f"rnnlab.bench: no conf/config.yaml in {Path.cwd()} or {package_checkout}; "
        "run it from an rnnlab checkout"
    )


def compose(overrides: list[str]) -> DictConfig:
    """The config train.py would run, composed from the checkout's conf/ and checked as
    train.py checks it."""
    conf = checkout() / "conf"
    hydra_setup.register()  # as train.py does before Hydra composes conf/
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides)
    validate(cfg)
    return cfg
