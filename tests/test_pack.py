"""Packs: differently configured networks trained as one (rnnlab.models.pack), each against
its own run: the stacked Adam against torch.optim.Adam row by row, per-network activations,
and a PackForecaster trained by the real Trainer against each network's own Forecaster run
(its learning rate, weight decay, initialisation, activation, loss mode and clipping), also
when one of them diverges."""

from __future__ import annotations

import pytest
import torch

from rnnlab.config import choices
from rnnlab.data.tasks import ReplicaDataModule, SinCosDataModule
from rnnlab.models.cells import ACTIVATIONS, row_activation
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.pack import PackForecaster, StackedAdam, StackedSGD
from rnnlab.training.fused import pack_key, plan
from tests.test_replicas import DATA, PoisonReplica, trainer

BASE = dict(cell="scratch", hidden_size=8, input_size=2)


#: Each stacked optimizer, the torch optimizer each of its rows must equal, and per-row
#: keyword arguments: learning rates, weight decays (zero and not) and SGD's momentum (zero
#: and not) that differ between rows.
STACKED = {
    "adam": (
        StackedAdam,
        torch.optim.Adam,
        dict(lr=[0.1, 0.01, 0.003], weight_decay=[0, 1e-3, 0.1]),
    ),
    "sgd": (
        StackedSGD,
        torch.optim.SGD,
        dict(lr=[0.1, 0.01, 0.1], momentum=[0.9, 0.0, 0.5], weight_decay=[0.0, 1e-3, 0.1]),
    ),
}


@pytest.mark.parametrize("scheduler", ["none", "cosine"])
@pytest.mark.parametrize("optimizer", STACKED)
def test_the_stacked_optimizer_takes_each_rows_own_step(optimizer, scheduler):
    stacked_cls, torch_cls, rows_kwargs = STACKED[optimizer]
    gen = torch.Generator().manual_seed(0)
    stacked = torch.nn.Parameter(torch.randn(3, 5, 4, generator=gen))
    rows = [torch.nn.Parameter(stacked.detach()[r].clone()) for r in range(3)]
    optimizers = [
        torch_cls([p], **{k: v[r] for k, v in rows_kwargs.items()}, foreach=True)
        for r, p in enumerate(rows)
    ]
    fused = stacked_cls([stacked], **rows_kwargs)
    schedules = []
    if scheduler == "cosine":
        schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5) for o in optimizers]
        schedules.append(torch.optim.lr_scheduler.CosineAnnealingLR(fused, T_max=5))
    for step in range(25):
        grad = torch.randn(3, 5, 4, generator=gen) * 10 ** (step % 3)  # scales Adam ignores
        stacked.grad = grad.clone()
        fused.step()
        for r, (p, opt) in enumerate(zip(rows, optimizers, strict=True)):
            p.grad = grad[r].clone()
            opt.step()
        if step % 5 == 4:
            for schedule in schedules:
                schedule.step()
    for r, p in enumerate(rows):
        assert torch.equal(stacked.detach()[r], p.detach()), r  # bit for bit
    assert not torch.equal(stacked.detach()[0], stacked.detach()[1])
    rates = [o.param_groups[0]["lr"] for o in optimizers]
    assert fused.rates().tolist() == pytest.approx(rates, rel=1e-15)


@pytest.mark.parametrize("order", [["tanh", "tanh", "relu"], ["relu", "tanh", "relu", "tanh"]])
def test_mixed_activations_act_on_each_row_with_its_own(order):
    z = torch.randn(len(order), 3, 4)
    out = row_activation(order)(z)
    for r, name in enumerate(order):
        torch.testing.assert_close(out[r], ACTIVATIONS[name](z[r]), rtol=0, atol=0)
    assert row_activation(["relu", "relu"]) is torch.relu  # one activation: no splitting


#: Four networks of one pack, differing in everything a pack's networks may differ in.
NETWORKS = [
    dict(seed=0, clip=None, lr=0.01, weight_decay=0.0, nonlinearity="tanh", init="torch"),
    dict(seed=1, clip=0.05, lr=0.03, weight_decay=1e-3, nonlinearity="tanh", init="identity"),
    dict(seed=2, clip=None, lr=0.003, weight_decay=0.0, nonlinearity="relu", init="native"),
    dict(seed=3, clip=0.05, lr=0.01, weight_decay=0.0, nonlinearity="relu", init="torch"),
]


def _alone(net: dict, callbacks=()) -> Forecaster:
    """The network's own run: seed_everything(seed) builds the Forecaster, its data of that
    seed, the Trainer clipping with its own value."""
    torch.manual_seed(net["seed"])
    kwargs = {"loss": "last"} | {k: v for k, v in net.items() if k not in ("seed", "clip")}
    model = Forecaster(**BASE, **kwargs)
    dm = SinCosDataModule(**DATA, seed=net["seed"])
    trainer(callbacks, gradient_clip_val=net["clip"]).fit(model, datamodule=dm)
    return model


def _pack(networks: list[dict], callbacks=()) -> PackForecaster:
    pack = PackForecaster([{**BASE, "loss": "last", **n} for n in networks])
    dm = ReplicaDataModule([SinCosDataModule(**DATA, seed=n["seed"]) for n in networks])
    trainer(callbacks).fit(pack, datamodule=dm)
    return pack


#: The same networks under SGD, with momentum (zero and not) and SGD's larger rates.
SGD_NETWORKS = [
    {**n, "optimizer": "sgd", "lr": lr, "momentum": m}
    for n, lr, m in zip(NETWORKS, (0.1, 0.3, 0.03, 0.1), (0.9, 0.0, 0.5, 0.9), strict=True)
]


@pytest.mark.parametrize("loss", ["last", "mixed", "sgd"])
def test_each_network_of_a_pack_trains_as_in_its_own_run(loss):
    networks = [
        {**n, "loss": ("every" if r % 2 else "last") if loss == "mixed" else "last"}
        for r, n in enumerate(SGD_NETWORKS if loss == "sgd" else NETWORKS)
    ]
    pack = _pack(networks)
    assert pack.mixed_loss == (loss == "mixed")
    assert pack.learning_rate_tag() == ("lr-SGD" if loss == "sgd" else "lr-Adam")
    for r, net in enumerate(networks):
        alone = _alone(net)
        for name, param in alone.named_parameters():
            torch.testing.assert_close(pack.net.param(name)[r], param, rtol=2e-5, atol=1e-6)
        for key in ("val/mse", "val/mae", "val/mse_best"):
            got, want = pack.val_values[key][r].item(), alone.val_values[key].item()
            assert got == pytest.approx(want, rel=1e-5), (r, key)


def test_a_diverged_network_is_frozen_and_its_pack_finishes_as_alone():
    pack = _pack(NETWORKS, [PoisonReplica(2, step=5)])
    assert pack.alive.tolist() == [True, True, False, True]
    assert pack.diverged_step.tolist()[2] == 5 and pack.diverged_what[2] == "loss"
    for r in (0, 3):
        alone = _alone(NETWORKS[r])
        for name, param in alone.named_parameters():
            torch.testing.assert_close(pack.net.param(name)[r], param, rtol=2e-5, atol=1e-6)


def test_packs_join_jobs_that_differ_only_in_what_a_pack_lets_differ(compose_cfg):
    fusable = [
        "seed=5",
        "model.lr=0.1",
        "model.weight_decay=0.01",
        "model.init=identity",
        "model.nonlinearity=relu",
        "model.loss=every",
        "trainer.gradient_clip_val=1",
        "replicas=4",
        "model.momentum=0.5",
    ]
    assert {o.split("=")[0] for o in fusable} == {*choices.FUSABLE, "replicas"}
    sgd = "model.optimizer=sgd"  # the optimizer a momentum is allowed with
    base = pack_key(compose_cfg(sgd))
    for override in fusable:
        assert pack_key(compose_cfg(sgd, override)) == base, override
    assert pack_key(compose_cfg()) != base  # Adam's networks and SGD's: two packs
    for override in (
        "model=concat",
        "model.hidden_size=16",
        "data.seq_len=8",
        "trainer.max_epochs=2",
    ):
        assert pack_key(compose_cfg(override)) != base, override
    configs = [compose_cfg(f"seed={s}", "replicas=3") for s in (0, 3, 6)]
    configs.append(compose_cfg("data.seq_len=8"))
    assert plan(configs, max_networks=6) == [[0, 1], [2], [3]]
    assert plan(configs, max_networks=2) == [[0], [1], [2], [3]]  # a job is never split


def test_packs_are_cut_so_that_every_worker_has_work(compose_cfg):
    """One pack-key of 8 jobs (a study that fuses whole, as study=clipping): with 2 workers it
    is cut into parts of whole jobs, in order, each at most a quarter of the work; a longer
    sequence is more work and goes first; one worker keeps the pack whole."""
    from rnnlab.training.fused import balance

    configs = [compose_cfg(f"seed={10 * s}", "replicas=2") for s in range(8)]
    assert plan(configs, max_networks=1024) == [list(range(8))]
    cut = plan(configs, max_networks=1024, n_jobs=2)
    assert cut == [[0, 1], [2, 3], [4, 5], [6, 7]]
    longer = [*configs, compose_cfg("seed=99", "replicas=2", "data.seq_len=64")]
    assert plan(longer, max_networks=1024, n_jobs=2)[0] == [8]  # 16x the work per network
    # whatever the cut, every job is in exactly one pack
    packs = balance([[0, 1, 2], [3], [4, 5, 6, 7, 8]], [1, 2, 3, 4, 5, 6, 7, 8, 9], 3)
    assert sorted(i for pack in packs for i in pack) == list(range(9))
    assert [sum(i + 1 for i in p) for p in packs] == sorted(
        (sum(i + 1 for i in p) for p in packs), reverse=True
    )
