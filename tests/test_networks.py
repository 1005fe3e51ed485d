"""One interface for every kind of module (rnnlab.models.network.NetworkModule): the job
driver and the callbacks read a Forecaster and a ReplicaForecaster the same way, and each
replica's view is what its own Forecaster gives."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.bench.loop import EmptyStep
from rnnlab.data.tasks import ReplicaDataModule, SinCosDataModule
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.network import NetworkModule, Networks
from rnnlab.models.replicas import ReplicaForecaster
from rnnlab.observe import diagnostics
from rnnlab.observe.rollout import forecast_test_split, forecasts

SMALL = dict(cell="scratch", hidden_size=8, lr=0.01, num_layers=2)
DATA = dict(n_points=300, seq_len=4, batch_size=16)
MEMBERS = set(vars(NetworkModule)["__annotations__"]) | {
    name for name in vars(NetworkModule) if not name.startswith("_")
}
#: What rnnlab's callbacks read (EmptyStep, the benchmark's module, runs under them too).
CALLBACKS_READ = {"alive", "epoch_train_loss", "grad_norms", "hidden", "networks"}


def fitted(model: L.LightningModule, dm: L.LightningDataModule) -> L.LightningModule:
    L.Trainer(
        max_epochs=2,
        num_sanity_val_steps=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(model, datamodule=dm)
    return model


@pytest.mark.parametrize(
    "make",
    [lambda: Forecaster(**SMALL), lambda: ReplicaForecaster(replicas=3, **SMALL)],
    ids=["Forecaster", "ReplicaForecaster"],
)
def test_each_module_has_every_member(make):
    model = make()
    for name in MEMBERS:
        assert hasattr(model, name), name
    n = getattr(model.hparams, "replicas", 1)
    assert model.alive.shape == (n,) and model.alive.all()
    assert isinstance(model.networks(), Networks)
    assert len(model.network_ends(tested=False)) == n


def test_the_benchmarks_module_has_what_the_callbacks_read():
    model = EmptyStep(Forecaster(cell="scratch", hidden_size=4))
    for name in CALLBACKS_READ:
        assert hasattr(model, name), name


def test_each_replicas_view_is_its_own_forecasters():
    """Predictions, forecasts and diagnostics of the stacked networks, row by row, against
    each replica as an ordinary Forecaster on its own data."""
    members = [SinCosDataModule(**DATA, noise_std=0.05, seed=s) for s in range(3)]
    model = fitted(ReplicaForecaster(replicas=3, seed=0, **SMALL), ReplicaDataModule(members))
    dm = ReplicaDataModule(members)
    dm.setup()
    x, y = next(iter(dm.val_dataloader()))
    for tested in (False, True):
        networks = model.networks(tested=tested)
        found = diagnostics.diagnose(networks, (x, y))
        stacked = forecasts(networks.predict, dm, steps=7)
        assert len(found) == len(stacked) == 3
        for r, member in enumerate(members):
            alone = model.replica(r, best=tested)
            own = diagnostics.diagnose(alone.networks(), (x[r], y[r]))
            assert found[r].keys() == own[0].keys()
            for name, value in own[0].items():
                np.testing.assert_allclose(found[r][name], value, rtol=1e-4, atol=1e-9)
            fc = forecast_test_split(alone, member, steps=7)
            torch.testing.assert_close(stacked[r].rollout, fc.rollout, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(stacked[r].one_step, fc.one_step, rtol=1e-4, atol=1e-6)
            assert torch.equal(stacked[r].truth, fc.truth)


def test_tested_weights_are_each_replicas_best_where_asked():
    members = [SinCosDataModule(**DATA, seed=s) for s in range(2)]
    model = fitted(ReplicaForecaster(replicas=2, seed=0, **SMALL), ReplicaDataModule(members))
    mixed = model.networks(tested=torch.tensor([True, False])).predict
    name = "readout.linear.weight"
    assert torch.equal(mixed.param(name)[0], model.best.param(name)[0])
    assert torch.equal(mixed.param(name)[1], model.net.param(name)[1])
    assert model.networks(tested=True).predict is model.best
    assert model.networks().predict is model.net


def test_a_forecasters_ends_are_its_last_validation_and_its_test():
    dm = SinCosDataModule(**DATA, seed=0)
    model = fitted(Forecaster(**SMALL), dm)
    (end,) = model.network_ends(tested=False)
    assert not end.tested and end.diverged is None
    assert set(end.values) >= {"val/mse", "val/mse_best", "val/loss"}
    assert "test/mse" not in end.values


SOURCES = Path(rnnlab.__file__).parent


@pytest.mark.parametrize(
    "path", sorted((SOURCES / "training").glob("*.py")) + sorted((SOURCES / "observe").glob("*.py"))
)
def test_no_driver_or_callback_asks_which_kind_of_module_it_has(path):
    text = path.read_text()
    for pattern in (
        r"isinstance\([^)]*(pl_module|model|lightning_module)",
        r"(getattr|hasattr)\((pl_module|model|trainer\.lightning_module)",
        r"for c in trainer\.callbacks",
    ):
        assert not re.search(pattern, text), (path.name, pattern)
    # the one place the config picks the kind: build_model
    assert text.count("ReplicaForecaster(") <= (1 if path.name == "experiment.py" else 0)
