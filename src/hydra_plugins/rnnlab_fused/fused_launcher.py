"""``hydra/launcher=fused``: a sweep's jobs trained as a few packs of batched networks
(rnnlab.training.fused), each job's directory as if it had run alone.

The launcher prepares every job as Hydra's basic launcher runs one (its directory, ``.hydra/``,
``train.log`` and Hydra's callbacks), with a task that only checks it; then it trains the jobs
that have not finished as packs (rnnlab.training.fused.plan): one after another in this
process, ``n_jobs`` side by side in worker processes forked from it (so they start with its
imports), or one submitit job per pack (``executor=submitit``: SLURM, or
submitit's ``local`` executor). Each job's return value is what the sweeper minimises, as
``train.py`` returns it, so Optuna fuses each batch of trials.
"""

# No ``from __future__ import annotations``: Hydra loads plugins outside sys.modules, where
# dataclasses cannot resolve string annotations.
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class SubmititConf:
    """``executor=submitit``: one submitit job per pack, on one device."""

    cluster: str = "slurm"  # slurm, or local (submitit's local executor: a process per pack)
    folder: str = "${hydra.sweep.dir}/.submitit/%j"  # submitit's logs and pickles
    timeout_min: int = 60  # each pack's time limit
    partition: str | None = None  # SLURM partition (null: the cluster's default)
    gpus_per_node: int = 0  # 1: each pack on a GPU of its own
    cpus_per_task: int = 2
    mem_gb: int = 16
    additional_parameters: Dict[str, Any] = field(default_factory=dict)  # other sbatch options


@dataclass
class FusedLauncherConf:
    """``hydra/launcher=fused``'s options (``hydra.launcher.<key>=...``)."""

    _target_: str = "hydra_plugins.rnnlab_fused.fused_launcher.FusedLauncher"
    max_networks: int = 1024  # networks per pack at most (memory caps it too)
    n_jobs: int = 1  # packs trained side by side, each in a worker process
    executor: str = "local"  # local: this machine; submitit: one submitit job per pack
    submitit: SubmititConf = field(default_factory=SubmititConf)


ConfigStore.instance().store(
    group="hydra/launcher", name="fused", node=FusedLauncherConf, provider="rnnlab"
)

EXECUTORS = ("local", "submitit")


class FusedLauncher(Launcher):
    def __init__(
        self,
        max_networks: int = 1024,
        n_jobs: int = 1,
        executor: str = "local",
        submitit: Optional[DictConfig] = None,
    ) -> None:
        self.max_networks, self.n_jobs, self.executor = max_networks, n_jobs, executor
        self.submitit = submitit
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Any, initial_job_idx: int) -> List[JobReturn]:
        from rnnlab.training import fused

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        fused.check_launcher_options(self.max_networks, self.n_jobs, self.executor, EXECUTORS)
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        returns, todo, planned = [], [], []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            loader = self.hydra_context.config_loader
            config = loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config):
                config.hydra.job.id = idx
                config.hydra.job.num = idx
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=fused.prepare_job,
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            returns.append(ret)
            if isinstance(ret.cfg, DictConfig):  # prepared (finished before too), not refused
                planned.append(ret.cfg)
            if ret.return_value is None:  # to train; else finished before, or refused
                run_dir = Path(str(config.hydra.runtime.output_dir))
                todo.append((ret, fused.PackJob(ret.cfg, config, run_dir)))
        submitit = OmegaConf.to_container(self.submitit, resolve=True) if self.submitit else {}
        fused.launch_packs(
            todo, sweep_dir, self.max_networks, self.n_jobs, self.executor, submitit, planned
        )
        return returns
