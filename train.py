"""Train one configuration, or a sweep with -m: python train.py --help lists every option."""

import hydra
from omegaconf import DictConfig

from rnnlab.config import cli, hydra_setup

# Before Hydra composes conf/: the schema it lists first, and the resolvers it uses.
hydra_setup.register()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    # Imported here: torch and Lightning take seconds, and a bad config fails before them.
    from rnnlab.training.experiment import hydra_job

    return cli.in_job(hydra_job)(cfg)  # errors the user caused leave the job as one line too


if __name__ == "__main__":
    cli.run(main)  # resume=<run dir>, and bad input as one line with exit status 2
