"""Divergence, checkpoints, resume arguments and reproducibility, in-process on tiny real runs
(a real Trainer on 200 points for 2 epochs each). The end-to-end versions, with real signals
and processes, are in tests/test_resume.py."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import trained_run
from lightning.pytorch.callbacks import Callback

from rnnlab.config.errors import ConfigError
from rnnlab.config.resume import check_hparams, expand_resume, last_checkpoint
from rnnlab.models.forecaster import Diverged
from rnnlab.training import experiment

TINY = (
    "data.n_points=200",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "logger.figures=false",  # 0.8 s a run; tests/test_figures.py and test_tensorboard.py draw them
)
COMPARED = ("val/mse_best", "val/mse", "test/mse", "test/mae", "test/rollout_mse")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, compose_cfg):
    """A finished run directory like train.py leaves (with Hydra's .hydra/ record)."""
    run_dir = tmp_path_factory.mktemp("tiny")
    return trained_run(run_dir, compose_cfg(*TINY), TINY), run_dir


def test_checkpoints_hold_plain_values_and_load_weights_only(tiny_run):
    result, run_dir = tiny_run
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert ckpt["hyper_parameters"]["cell"] == "scratch"
        assert "val_mse_best.min_value" in ckpt["state_dict"]  # resumes keep the best so far
    assert result["status"] == "ok"


@pytest.mark.parametrize(
    "change", [{"cell": "concat"}, {"hidden_size": 8}, {"nonlinearity": "relu"}]
)
def test_checkpoint_of_another_model_is_a_one_line_error(tiny_run, change):
    _, run_dir = tiny_run
    path = last_checkpoint(run_dir)
    saved = torch.load(path, weights_only=True)["hyper_parameters"]
    with pytest.raises(ConfigError) as caught:
        check_hparams(saved, {**saved, **change}, path)
    ((key, value),) = change.items()
    assert f"model.{key}={value}" in str(caught.value) and "\n" not in str(caught.value)


def test_resume_replays_the_runs_overrides_and_new_ones_win(tiny_run):
    _, run_dir = tiny_run
    argv = expand_resume([f"resume={run_dir}", "trainer.max_epochs=5"])
    assert argv[: len(TINY) - 1] == [o for o in TINY if not o.startswith("trainer.max_epochs")]
    assert argv.index("trainer.max_epochs=5") > argv.index(f'resume="{run_dir}"')
    assert f'hydra.run.dir="{run_dir}"' in argv and "hydra.output_subdir=null" in argv
    relaunched = [*argv, f'hydra.run.dir="{run_dir}"', "hydra.job.name=train_ddp_process_1"]
    assert expand_resume(relaunched) == relaunched  # Lightning's DDP re-launch: unchanged


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resume={run}", "model.hidden_size=8"], "cannot change model.hidden_size=8"),
        (["resume={run}", "seed=1"], "cannot change seed=1"),
        (["-m", "resume={run}"], "expected a sweep directory .*resume one run without -m"),
        (["resume={sweep}"], "is a sweep directory; resume the sweep with -m"),
        (["resume={run}/checkpoints"], "expected a run directory"),
        (["resume={empty}"], "no checkpoint to resume from"),
    ],
)
def test_resume_refuses_what_it_cannot_do(tiny_run, tmp_path, argv, message):
    _, run_dir = tiny_run
    empty = tmp_path / "killed_in_epoch_0"
    (empty / ".hydra").mkdir(parents=True)
    (empty / ".hydra" / "overrides.yaml").write_text("[]\n")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(ConfigError, match=message):
        expand_resume([a.format(run=run_dir, empty=empty, sweep=sweep) for a in argv])


class PoisonWeightsAt(Callback):
    """Fault injection: the last update of ``epoch`` leaves NaN weights, as an overflowing
    update would; the loss check in training_step would only see it a step later."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last = batch_idx == trainer.num_training_batches - 1
        if trainer.current_epoch == self.epoch and last:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(math.nan)


def test_non_finite_model_is_never_checkpointed(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "trainer.max_epochs=3")
    dm, model = experiment.build_datamodule(cfg), experiment.build_model(cfg)
    trainer = experiment.build_trainer(cfg, tmp_path)
    trainer.callbacks.append(PoisonWeightsAt(epoch=1))
    with pytest.raises(Diverged) as caught:
        trainer.fit(model, datamodule=dm)
    assert caught.value.epoch == 1
    kept = torch.load(last_checkpoint(tmp_path), weights_only=True)
    assert kept["epoch"] == 0  # the last finite one
    assert all(torch.isfinite(t).all() for t in kept["state_dict"].values())


def test_divergence_is_reported_not_crashed(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY, "model.lr=1e30", "model.nonlinearity=relu")
    result = experiment.train_and_test(cfg, tmp_path)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == result["status"] == "diverged"
    assert (written["diverged_epoch"], written["diverged_step"]) == (0, 1)
    assert all(written[k] is None for k in COMPARED)  # no NaN passed off as a metric


def test_same_seed_same_metrics_seed_zero_honoured_other_seed_differs(compose_cfg, tmp_path):
    runs = {
        name: experiment.train_and_test(compose_cfg(*TINY, f"seed={seed}"), tmp_path / name)
        for name, seed in (("zero_a", 0), ("zero_b", 0), ("one", 1))
    }
    assert all(runs["zero_a"][k] == runs["zero_b"][k] for k in COMPARED)
    assert all(runs["zero_a"][k] != runs["one"][k] for k in COMPARED)
    assert runs["zero_a"]["config"]["seed"] == 0


def test_checkpoints_keep_distinct_callback_states(tiny_run):
    """Both checkpoint callbacks' states are saved under their own keys (one key for both would
    make a resumed run forget which checkpoint is best)."""
    _, run_dir = tiny_run
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    states = [s for key, s in ckpt["callbacks"].items() if key.startswith("ModelCheckpoint")]
    assert len(states) == 2
    best = next(s for s in states if s["monitor"] == "val/mse")
    assert best["best_model_path"].endswith("best.ckpt")
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 2 * 5  # end of the second epoch
