"""conf/study/*.yaml: every preset study composes with the real Hydra, and every one of its jobs
passes the checks a sweep runs before it starts (rnnlab.config.hydra_callbacks.ValidateConfig)."""

import math
import re

import pytest
from conftest import CONF

from rnnlab import internals
from rnnlab.config.checks import check_distinct_seeds, validate

STUDIES = sorted(p.stem for p in (CONF / "study").glob("*.yaml"))


def test_the_five_studies_are_there():
    assert STUDIES == ["activation", "clipping", "loss", "memory", "readout"]


def header_jobs(name: str) -> int:
    """The job count the preset's header comment states (``= N jobs``)."""
    found = re.search(r"= (\d+) jobs", (CONF / "study" / f"{name}.yaml").read_text())
    assert found, f"conf/study/{name}.yaml: no '= N jobs' in its header"
    return int(found.group(1))


def job_overrides(compose_cfg, name: str):
    """The study's composed config and its jobs' override lists, as Hydra's sweeper expands them."""
    cfg = compose_cfg(f"study={name}", hydra=True)
    return cfg, list(internals.sweep_job_overrides(cfg))


@pytest.mark.parametrize("name", STUDIES)
def test_study_composes_with_its_stated_job_count_and_an_lr_grid(name, compose_cfg):
    cfg = compose_cfg(f"study={name}")
    validate(cfg)
    assert cfg.replicas >= 5
    cfg, jobs = job_overrides(compose_cfg, name)
    params = cfg.hydra.sweeper.params
    assert "model.lr" in params and len(str(params["model.lr"]).split(",")) >= 2
    expected = math.prod(len(str(v).split(",")) for v in params.values())
    assert len(jobs) == expected == header_jobs(name)


@pytest.mark.slow  # composing every job: about 50 s for the five
@pytest.mark.parametrize("name", STUDIES)
def test_every_job_of_a_study_validates(name, compose_cfg):
    cfg, jobs = job_overrides(compose_cfg, name)
    expected = len(jobs)
    with compose_cfg.initialized():
        configs = [internals.load_job_config(cfg, overrides) for overrides in jobs]
    for job in configs:
        validate(job)
        assert job.replicas >= 5
    check_distinct_seeds(configs)  # as ValidateConfig does: no seed trained twice
    # each job differs from the others: the sweep's values all reach the job's config
    assert len({str(job.model) + str(job.data) + str(job.trainer) for job in configs}) == expected


@pytest.mark.parametrize("name", STUDIES)
def test_the_report_publishes_every_network_of_the_study(name, compose_cfg):
    """docs/report/<study>_networks.csv: one row per network of the study's jobs (jobs x
    replicas), each with its seed, status and test error unless it diverged."""
    import pandas as pd

    path = CONF.parent / "docs" / "report" / f"{name}_networks.csv"
    nets = pd.read_csv(path)
    replicas = compose_cfg(f"study={name}").replicas
    assert len(nets) == header_jobs(name) * replicas
    assert sorted(nets["seed"].unique()) == list(range(replicas))
    finished = nets[nets["status"] == "ok"]
    assert finished["test/mse"].notna().all() and len(finished) > len(nets) / 2
