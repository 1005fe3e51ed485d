"""Replicas: the batched engine against the cells, and a ReplicaForecaster trained by the real
Trainer against each replica's own run (clipping, divergence, data)."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from rnnlab.config import choices
from rnnlab.data.tasks import ReplicaDataModule, SinCosDataModule
from rnnlab.models.forecaster import Diverged, Forecaster
from rnnlab.models.replica_net import ReplicaNet
from rnnlab.models.replicas import ReplicaForecaster

#: init=native: the starting weights the tolerances below were measured with
SMALL = dict(cell="scratch", init="native", hidden_size=8, lr=0.01)
DATA = dict(n_points=300, seq_len=4, batch_size=16)


def forecasters(n: int, seed: int = 0, **kwargs) -> list[Forecaster]:
    """What runs of seeds ``seed .. seed+n-1`` start from (seed_everything seeds torch so)."""
    out = []
    for r in range(n):
        torch.manual_seed(seed + r)
        out.append(Forecaster(**kwargs))
    return out


@pytest.mark.parametrize("readout", choices.READOUTS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("nonlinearity", choices.NONLINEARITIES)
@pytest.mark.parametrize("cell", choices.VANILLA_CELLS)
def test_each_replica_gives_its_cells_outputs_and_gradients(cell, nonlinearity, layers, readout):
    kwargs = dict(cell=cell, nonlinearity=nonlinearity, num_layers=layers, readout=readout)
    nets = forecasters(3, **{**SMALL, **kwargs})
    stacked = ReplicaNet(nets)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 5, 6, 2, generator=gen), torch.randn(3, 5, 6, 2, generator=gen)
    for last_only in (False, True):
        out = stacked(x, last_only=last_only)
        stacked.zero_grad()
        ((out - y[:, :, -out.shape[2] :]) ** 2).mean((1, 2, 3)).sum().backward()
        for r, net in enumerate(nets):
            net.zero_grad()
            alone = net(x[r], last_only=last_only)
            ((alone - y[r][:, -alone.shape[1] :]) ** 2).mean().backward()
            torch.testing.assert_close(out[r], alone, rtol=1e-5, atol=1e-6)
            for name, param in net.named_parameters():
                torch.testing.assert_close(
                    stacked.param(name).grad[r], param.grad, rtol=1e-4, atol=1e-6
                )


def test_replica_is_an_ordinary_forecaster_of_its_seed():
    model = ReplicaForecaster(replicas=3, seed=7, **SMALL)
    x = torch.randn(3, 4, 5, 2)
    for r in range(3):
        alone = model.replica(r, best=False)
        assert type(alone) is Forecaster
        torch.testing.assert_close(alone(x[r]), model(x)[r], rtol=1e-5, atol=1e-6)
        # the weights a run of seed 7 + r starts from
        (start,) = forecasters(1, seed=7 + r, **SMALL)
        for name, param in start.named_parameters():
            assert torch.equal(alone.get_parameter(name), param)


def test_each_replica_trains_on_its_own_seeds_batches():
    members = [SinCosDataModule(**DATA, noise_std=0.1, seed=s) for s in (3, 4)]
    dm = ReplicaDataModule(members)
    dm.setup()
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(2)
    batches = list(loader)
    for r, seed in enumerate((3, 4)):
        alone = SinCosDataModule(**DATA, noise_std=0.1, seed=seed)
        alone.setup()
        own = alone.train_dataloader()
        own.sampler.set_epoch(2)
        for (x, y), (x_r, y_r) in zip(batches, own, strict=True):
            assert torch.equal(x[r], x_r) and torch.equal(y[r], y_r)
    # noise-free replicas share one series: a view, not R copies
    shared = ReplicaDataModule([SinCosDataModule(**DATA, seed=s) for s in (0, 1)])
    shared.setup()
    assert shared.windows["train"][0].stride(0) == 0


def trainer(callbacks=(), **kwargs) -> L.Trainer:
    kwargs = dict(max_epochs=2, num_sanity_val_steps=0, deterministic=True) | kwargs
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **kwargs,
    )


class Grads(L.Callback):
    """The gradients of the first step after clipping (still there at the batch's end)."""

    def __init__(self) -> None:
        self.grads: dict[str, torch.Tensor] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.grads:
            self.grads = {
                n: p.grad.clone() for n, p in pl_module.named_parameters() if p.grad is not None
            }


SCALE = 30.0  # replica 1's readout weights: its gradient norm far above the clip, replica 0's below


def first_grads(model, dm, clip: float | None) -> dict[str, torch.Tensor]:
    grads = Grads()
    trainer([grads], max_steps=1, gradient_clip_val=clip, limit_val_batches=0).fit(model, dm)
    return grads.grads


def norm(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads.values()]))


def test_each_replica_is_clipped_by_its_own_gradient_norm():
    def alone(r: int) -> Forecaster:
        (model,) = forecasters(1, seed=r, **SMALL)
        if r == 1:
            with torch.no_grad():
                model.readout.linear.weight *= SCALE
        return model

    data = [SinCosDataModule(**DATA, seed=s) for s in (0, 1)]
    unclipped = [norm(first_grads(alone(r), data[r], None)) for r in (0, 1)]
    assert unclipped[1] > 10 * unclipped[0]
    clip = math.sqrt(unclipped[0] * unclipped[1])  # between the two: replica 1's alone is clipped

    model = ReplicaForecaster(replicas=2, seed=0, **SMALL)
    with torch.no_grad():
        model.net.param("readout.linear.weight")[1] *= SCALE
    together = first_grads(model, ReplicaDataModule(data), clip)
    for r in (0, 1):
        own = first_grads(alone(r), SinCosDataModule(**DATA, seed=r), clip)
        for name, grad in own.items():
            key = "net.stacked." + name.replace(".", "/")
            torch.testing.assert_close(together[key][r], grad, rtol=1e-5, atol=1e-8)
        expected = unclipped[0] if r == 0 else clip  # replica 0 untouched, replica 1 clipped
        assert norm(own).item() == pytest.approx(float(expected), rel=1e-4)


class PoisonReplica(L.Callback):
    """Makes replica ``r``'s recurrent weights NaN before training step ``step``."""

    def __init__(self, r: int, step: int) -> None:
        self.r, self.step = r, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                for r in [self.r] if isinstance(self.r, int) else self.r:
                    pl_module.net.param("cell.layers.0.hh.weight")[r].fill_(math.nan)


def test_a_diverged_replica_is_frozen_and_the_others_finish_as_alone():
    members = [SinCosDataModule(**DATA, seed=s) for s in range(3)]
    model = ReplicaForecaster(replicas=3, seed=0, **SMALL)
    trainer([PoisonReplica(1, step=5)]).fit(model, datamodule=ReplicaDataModule(members))
    assert model.alive.tolist() == [True, False, True]
    assert model.diverged_step.tolist()[1] == 5 and model.diverged_epoch.tolist()[1] == 0
    assert model.diverged_what[1] == "loss"
    assert torch.isnan(model.net.param("cell.layers.0.hh.weight")[1]).all()  # frozen as it died
    for r in (0, 2):
        alone = forecasters(1, seed=r, **SMALL)[0]
        trainer().fit(alone, datamodule=SinCosDataModule(**DATA, seed=r))
        for name, param in alone.named_parameters():
            torch.testing.assert_close(model.net.param(name)[r], param, rtol=1e-5, atol=1e-7)
        assert model.best_val_mse[r].item() == pytest.approx(
            alone.val_mse_best.compute().item(), rel=1e-5
        )


def test_the_job_diverges_when_every_replica_has():
    model = ReplicaForecaster(replicas=2, seed=0, **SMALL)
    members = [SinCosDataModule(**DATA, seed=s) for s in range(2)]
    with pytest.raises(Diverged, match="every replica"):
        trainer([PoisonReplica([0, 1], step=3)]).fit(model, datamodule=ReplicaDataModule(members))
    assert not model.alive.any()


def test_replica_diagnostics_mean_when_no_replica_has_a_value():
    """A replicas job all of whose replicas diverged (study=clipping, lr 1, no clipping) has
    diagnostics no replica measured: their mean is null, not an IndexError that fails the job."""
    from rnnlab.training.record import mean_diagnostics

    per_replica = [{"a": None, "b": [1.0, None], "c": 2.0}, {"a": None, "b": [3.0, 4.0], "c": None}]
    assert mean_diagnostics(per_replica) == {"a": None, "b": [2.0, 4.0], "c": 2.0}
