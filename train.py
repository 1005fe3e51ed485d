"""Train one configuration (or a sweep with -m). See conf/ for every option."""

import hydra
from omegaconf import DictConfig

from rnnlab.experiment import train


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()
