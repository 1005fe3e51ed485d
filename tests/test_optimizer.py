"""``model.optimizer=adam|sgd`` and SGD's ``model.momentum``: the one-line errors, an SGD run's
steps against a hand-written SGD loop over the same batches, and replicas under SGD against
their own runs (packs under SGD: tests/test_pack.py)."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from conftest import run_train
from test_config import error_for

from rnnlab.config import choices
from rnnlab.data.tasks import ReplicaDataModule, SinCosDataModule
from rnnlab.models import forecaster, pack
from rnnlab.models.replicas import ReplicaForecaster
from rnnlab.training.experiment import build_datamodule, build_model
from tests.test_replicas import DATA, SMALL, forecasters, trainer

#: SGD's overrides: momentum, a constant learning rate; deterministic, as the Trainer runs it.
SGD = ("model.optimizer=sgd", "model.momentum=0.9", "model.lr=0.1", "model.scheduler=none")
SMALL_RUN = ("data.n_points=300", "model.hidden_size=8", "trainer.deterministic=true")

#: A bad override, and what its one-line error must say is allowed.
BAD = {
    "model.optimizer=rmsprop": "expected one of: adam, sgd",
    "model.momentum=0.9": "expected 0 with model.optimizer=adam",
    "model.momentum=1": "expected a number 0 <= m < 1",
    "model.momentum=-0.5": "expected a number 0 <= m < 1",
    "model.momentum=abc": "a number",
}


@pytest.mark.parametrize("override", BAD)
def test_a_bad_optimizer_or_momentum_is_one_line_naming_key_value_and_allowed(
    compose_cfg, override
):
    line = error_for(compose_cfg, override)
    assert "\n" not in line and override in line and BAD[override] in line, line


def test_momentum_is_accepted_with_sgd(compose_cfg):
    from rnnlab.config.checks import validate

    validate(compose_cfg("model.optimizer=sgd", "model.momentum=0.9"))
    validate(compose_cfg("model.optimizer=adam", "model.momentum=0"))


@pytest.mark.slow
def test_momentum_with_adam_exits_2_with_one_line_on_the_command_line(tmp_path):
    proc = run_train("model.momentum=0.9", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == (
        "error: model.momentum=0.9 is not allowed; expected 0 with model.optimizer=adam "
        "(momentum is SGD's; Adam has its own moments), or model.optimizer=sgd"
    )
    assert not (tmp_path / "run").exists()


def test_each_optimizer_name_builds_its_optimizer():
    assert tuple(forecaster.OPTIMIZERS) == choices.OPTIMIZERS
    assert tuple(pack.STACKED_OPTIMIZERS) == choices.OPTIMIZERS
    params = [torch.nn.Parameter(torch.zeros(2))]
    for name, cls in zip(choices.OPTIMIZERS, (torch.optim.Adam, torch.optim.SGD), strict=True):
        model = forecaster.Forecaster(cell="scratch", optimizer=name)
        built = forecaster.optimizer_and_schedule(params, model.hparams, 1)["optimizer"]
        assert type(built) is cls
        assert pack.STACKED_OPTIMIZERS[name].stands_for == cls.__name__
    sgd = forecaster.Forecaster(cell="scratch", optimizer="sgd", momentum=0.5, weight_decay=0.1)
    group = forecaster.optimizer_and_schedule(params, sgd.hparams, 1)["optimizer"].param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["lr"]) == (0.5, 0.1, sgd.hparams.lr)


def test_an_sgd_runs_steps_are_a_hand_written_sgd_loops(compose_cfg):
    """The Forecaster of ``model.optimizer=sgd model.momentum=0.9`` trained by a real Trainer
    for a few steps, against the same start trained by buf = m buf + g; p -= lr buf over the
    same batches."""
    steps = 6
    cfg = compose_cfg(*SGD, *SMALL_RUN, "trainer.gradient_clip_val=null")
    L.seed_everything(cfg.seed, verbose=False)
    model, dm = build_model(cfg), build_datamodule(cfg)
    start = copy.deepcopy(model)
    trainer(max_epochs=1, max_steps=steps, limit_val_batches=0).fit(model, datamodule=dm)

    by_hand, m, lr = copy.deepcopy(start), cfg.model.momentum, cfg.model.lr
    loader = build_datamodule(cfg)
    loader.setup("fit")
    batches = loader.train_dataloader()
    batches.sampler.set_epoch(0)  # the first epoch's order, as the Trainer sets it
    params = [p for p in by_hand.parameters() if p.requires_grad]
    bufs = [torch.zeros_like(p) for p in params]
    for _, (x, y) in zip(range(steps), batches, strict=False):
        by_hand.zero_grad()
        by_hand.loss_fn(by_hand(x, last_only=True), y).backward()
        with torch.no_grad():
            for p, buf in zip(params, bufs, strict=True):
                buf.mul_(m).add_(p.grad)  # the first step: buf = g
                p -= lr * buf
    moved = 0.0
    for (name, got), want, first in zip(
        model.named_parameters(), by_hand.parameters(), start.parameters(), strict=True
    ):
        torch.testing.assert_close(got, want, msg=name)  # float32's rounding
        moved = max(moved, (want - first).abs().max().item())
    assert moved > 1e-2  # the steps moved the weights far beyond the tolerance


def test_each_replica_under_sgd_trains_as_its_own_run():
    """replicas=3 under SGD with momentum, weight decay and the cosine schedule: each replica's
    weights and validation values are those of its own run (SGD is elementwise over the
    stacked parameters, as Adam is)."""
    kwargs = {**SMALL, "optimizer": "sgd", "momentum": 0.9, "lr": 0.1, "weight_decay": 1e-3}
    model = ReplicaForecaster(replicas=3, seed=0, **kwargs)
    members = ReplicaDataModule([SinCosDataModule(**DATA, seed=s) for s in range(3)])
    trainer().fit(model, datamodule=members)
    assert type(trainer_optimizer(model)) is torch.optim.SGD
    for r in range(3):
        (alone,) = forecasters(1, seed=r, **kwargs)
        start = copy.deepcopy(alone)
        trainer().fit(alone, datamodule=SinCosDataModule(**DATA, seed=r))
        for (name, param), first in zip(alone.named_parameters(), start.parameters(), strict=True):
            torch.testing.assert_close(model.net.param(name)[r], param, rtol=1e-5, atol=1e-7)
            assert not torch.equal(param, first), name  # it trained
        assert model.best_val_mse[r].item() == pytest.approx(
            alone.val_mse_best.compute().item(), rel=1e-5
        )


def trainer_optimizer(model: L.LightningModule) -> torch.optim.Optimizer:
    return model.trainer.optimizers[0]
