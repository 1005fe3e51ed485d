"""Train one configuration (or a sweep with -m). See conf/ for every option."""

import hydra
from omegaconf import DictConfig

from rnnlab.cli import run_cli  # also registers the config schema (rnnlab.config)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    # Imported here: torch and Lightning take seconds, and a bad config fails before them.
    from rnnlab.experiment import hydra_job

    return hydra_job(cfg)


if __name__ == "__main__":
    run_cli(main)
