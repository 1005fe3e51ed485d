"""Each private or undocumented detail rnnlab relies on (rnnlab.internals) still works.

These fail loudly when an upgrade of Lightning, Hydra or torch changes one, instead of letting
a speed-up silently stop working or a check silently stop checking.
"""

from __future__ import annotations

import collections

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter

from rnnlab import internals
from rnnlab.training.experiment import build_trainer

TINY = ("data.n_points=200", "trainer.max_epochs=1", "trainer.enable_progress_bar=false")


@pytest.fixture
def counted_fit(compose_cfg, tmp_path, monkeypatch):
    """A real one-epoch fit through rnnlab's Trainer, counting the hook-name sets and the
    profiler calls Lightning makes; returns the counts and the number of steps."""
    from rnnlab.training.experiment import build_datamodule, build_model

    counts = collections.Counter()
    cheap = internals.CheapHookName.__setattr__

    def set_counting(self, name, value):
        counts[name] += 1
        cheap(self, name, value)

    monkeypatch.setattr(internals.CheapHookName, "__setattr__", set_counting)
    cfg = compose_cfg(*TINY)
    trainer = build_trainer(cfg, tmp_path)
    profile = type(trainer.profiler).profile

    def profile_counting(self, name):
        counts["profile"] += 1
        return profile(self, name)

    monkeypatch.setattr(type(trainer.profiler), "profile", profile_counting)
    trainer.fit(build_model(cfg), datamodule=build_datamodule(cfg))
    return counts, trainer


def test_lightning_still_sets_the_hook_name_attribute_on_every_step(counted_fit):
    counts, trainer = counted_fit
    per_step = counts[internals.HOOK_NAME_ATTRIBUTE] / trainer.global_step
    assert per_step > 10, f"Lightning no longer sets {internals.HOOK_NAME_ATTRIBUTE}: drop it"


def test_lightning_still_profiles_every_hook_through_the_trainers_profiler(counted_fit):
    counts, trainer = counted_fit
    assert type(trainer.profiler).__name__ == "NoProfiler"
    assert counts["profile"] / trainer.global_step > 10


def test_file_writer_writes_summaries_tensorboard_reads(tmp_path):
    writer = SummaryWriter(tmp_path)
    value = Summary.Value(tag="x", simple_value=1.5)
    internals.file_writer(writer).add_summary(Summary(value=[value]), 3)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("x")] == [(3, 1.5)]


def test_basic_sweep_expansion_and_job_composition_match_hydra(compose_cfg):
    with compose_cfg.initialized():
        cfg = compose_cfg("sweep=quick", hydra=True)
        jobs = list(internals.sweep_job_overrides(cfg))
        assert len(jobs) == 3 * 2  # conf/sweep/quick.yaml: 3 cells x 2 sequence lengths
        assert {tuple(sorted(j)) for j in jobs} == {
            tuple(sorted([f"model={m}", f"data.seq_len={n}", "sweep=quick"]))
            for m in ("scratch", "concat", "torch")
            for n in (4, 8)
        }
        torch_8 = next(j for j in jobs if {"model=torch", "data.seq_len=8"} <= set(j))
        job = internals.load_job_config(cfg, torch_8)
        assert (job.model.cell, job.data.seq_len, job.trainer.max_epochs) == ("torch", 8, 3)
        assert {"joblib", "slurm", "submitit_local"} <= set(
            internals.group_options("hydra/launcher")
        )


def test_each_job_is_composed_once_and_each_caller_gets_its_own_copy(compose_cfg):
    from hydra.core.global_hydra import GlobalHydra

    with compose_cfg.initialized():
        cfg = compose_cfg("sweep=quick", hydra=True)
        first = next(internals.sweep_job_overrides(cfg))
        alone = internals.load_job_config(cfg, first)
        internals.compose_each_job_once(cfg)
        loader = GlobalHydra.instance().config_loader()
        a = internals.load_job_config(cfg, first)
        b = loader.load_sweep_config(cfg, list(first))  # as Hydra's sweeper and launcher call it
        assert len(loader.rnnlab_composed) == 1  # composed once
        # unresolved: ${now:...} in the run directory's name differs each time it resolves
        same = [OmegaConf.to_container(c, resolve=False) for c in (a, b, alone)]
        assert same[0] == same[1] == same[2] and a is not b
        a.data.seq_len = 99  # a caller's changes stay its own
        assert loader.load_sweep_config(cfg, list(first)).data.seq_len == alone.data.seq_len
        # the sweep's directory, ${now:...}, resolved after the first composition: the job's too
        sweep_dir = str(cfg.hydra.sweep.dir)
        assert str(loader.load_sweep_config(cfg, list(first)).hydra.sweep.dir) == sweep_dir
        other = compose_cfg("sweep=quick", hydra=True)  # another sweep's config is not kept
        assert loader.load_sweep_config(other, list(first)).data == alone.data
        assert len(loader.rnnlab_composed) == 1


def test_lightning_config_error_is_recognised_once_lightning_is_imported():
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    assert internals.is_lightning_config_error(MisconfigurationException("no gpu"))
    assert not internals.is_lightning_config_error(ValueError("no gpu"))


def test_lightning_csv_writer_still_asks_before_deleting_an_earlier_file(tmp_path):
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class Keeps(internals.KeepsEarlierCSV, ExperimentWriter):
        def kept_earlier_rows(self) -> bool:
            self.asked = True
            return True

    earlier = tmp_path / ExperimentWriter.NAME_METRICS_FILE
    earlier.write_text("epoch,step\n0,9\n")
    assert Keeps(str(tmp_path)).asked and earlier.is_file()
    with pytest.warns(UserWarning, match="exists and is not empty"):
        ExperimentWriter(str(tmp_path))  # what the mixin stands in for: the file is deleted
    assert not earlier.exists()


def test_lightning_csv_logger_still_saves_the_writer_rnnlab_gives_it(tmp_path):
    from rnnlab.observe.csv_log import CSV_FILE, EpochCSVLogger

    logger = EpochCSVLogger(tmp_path)
    logger.epoch = 0
    logger.log_metrics({"a": 1.0}, step=3)
    logger.log_metrics({"b": 2.0}, step=4)  # the same epoch: the same row
    assert type(logger.experiment).__name__ == "_EpochRows"
    logger.finalize("success")  # Lightning's: saves through the writer it holds
    assert (tmp_path / CSV_FILE).read_text().splitlines() == ["epoch,step,a,b", "0,4,1.0,2.0"]
