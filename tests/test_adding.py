"""The adding problem (rnnlab.data.tasks.AddingDataModule)."""

import lightning as L
import pytest
import torch
from torch import nn

from rnnlab.data.tasks import AddingDataModule, SinCosDataModule, WindowDataModule

SPLITS = ("train", "val", "test")


def small(**kwargs) -> AddingDataModule:
    dm = AddingDataModule(**{"seq_len": 12, "n_train": 200, "n_val": 50, "n_test": 60, **kwargs})
    dm.setup()
    return dm


def test_shapes_and_class_attributes():
    dm = small()
    for split, n in zip(SPLITS, (200, 50, 60), strict=True):
        inputs, targets = dm.windows[split]
        assert inputs.shape == (n, 12, 2)
        assert targets.shape == (n, 12, 1)
        assert inputs.dtype == targets.dtype == torch.float32
    assert AddingDataModule.channels == 2
    assert AddingDataModule.output_size == 1
    assert AddingDataModule.forecasting is False
    assert SinCosDataModule.output_size == 2
    assert SinCosDataModule.forecasting is True
    assert issubclass(AddingDataModule, WindowDataModule)
    assert issubclass(SinCosDataModule, WindowDataModule)


@pytest.mark.parametrize("seq_len", [2, 3, 7, 12])
def test_two_markers_one_in_each_half_and_target_is_their_sum(seq_len):
    dm = small(seq_len=seq_len)
    half = seq_len // 2
    for split in SPLITS:
        inputs, targets = dm.windows[split]
        values, markers = inputs[..., 0], inputs[..., 1]
        assert ((values >= 0) & (values < 1)).all()
        assert set(markers.unique().tolist()) <= {0.0, 1.0}
        assert (markers[:, :half].sum(1) == 1).all()
        assert (markers[:, half:].sum(1) == 1).all()
        expected = (values * markers).sum(1)
        assert torch.allclose(targets[:, -1, 0], expected)
        # every step carries the same sum; only the last is scored
        assert torch.equal(targets, targets[:, -1:].expand_as(targets))


def test_marker_positions_cover_each_half():
    dm = small(seq_len=10, n_train=2000)
    markers = dm.windows["train"][0][..., 1]
    first = markers[:, :5].argmax(1)
    second = markers[:, 5:].argmax(1) + 5
    assert set(first.tolist()) == set(range(5))
    assert set(second.tolist()) == set(range(5, 10))


def test_mean_baseline_mse_is_one_sixth():
    dm = AddingDataModule()
    dm.setup()
    inputs, targets = dm.windows["test"]
    assert inputs.shape == (1000, 50, 2)
    assert len(dm.windows["train"][0]) == 10000 and len(dm.windows["val"][0]) == 1000
    mse = ((targets[:, -1, 0] - 1.0) ** 2).mean().item()
    assert abs(mse - 1 / 6) < 0.02


def test_sets_are_a_function_of_the_seed_and_splits_differ():
    a, b, c = small(seed=5), small(seed=5), small(seed=6)
    for split in SPLITS:
        assert torch.equal(a.windows[split][0], b.windows[split][0])
        assert torch.equal(a.windows[split][1], b.windows[split][1])
        assert not torch.equal(a.windows[split][0], c.windows[split][0])
    n = 50  # the smallest split: compare the first n sequences of each pair of splits
    firsts = [a.windows[s][0][:n] for s in SPLITS]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.equal(firsts[i], firsts[j])


def test_setup_is_idempotent():
    dm = small()
    before = {s: dm.windows[s] for s in SPLITS}
    dm.setup("fit")
    dm.setup("test")
    for s in SPLITS:
        assert dm.windows[s] is before[s]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"seq_len": 1}, "seq_len"),
        ({"seq_len": 0}, "seq_len"),
        ({"n_train": 0}, "n_train"),
        ({"n_val": 0}, "n_val"),
        ({"n_test": -3}, "n_test"),
        ({"batch_size": 0}, "batch_size"),
        ({"seq_len": 10.0}, "seq_len"),
    ],
)
def test_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AddingDataModule(**kwargs)


def test_loaders_give_whole_batches_and_shuffle_only_train_per_epoch():
    dm = small(seq_len=8, n_train=64, n_val=32, n_test=48, batch_size=16)
    for split, n in zip(SPLITS, (64, 32, 48), strict=True):
        loader = getattr(dm, f"{split}_dataloader")()
        batches = list(loader)
        assert len(batches) == len(loader) == n // 16
        for x, y in batches:
            assert x.shape == (16, 8, 2) and y.shape == (16, 8, 1)
        # every sequence served exactly once, inputs and targets together
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        inputs, targets = dm.windows[split]
        order = x[:, :, 0].sum(1).argsort()
        ref = inputs[:, :, 0].sum(1).argsort()
        assert torch.equal(x[order], inputs[ref]) and torch.equal(y[order], targets[ref])

    def epoch_order(split, epoch):
        loader = getattr(dm, f"{split}_dataloader")()
        loader.sampler.set_epoch(epoch)
        return torch.cat([x for x, _ in loader])

    assert not torch.equal(epoch_order("train", 0), epoch_order("train", 1))
    assert torch.equal(epoch_order("train", 1), epoch_order("train", 1))
    for split in ("val", "test"):
        assert torch.equal(epoch_order(split, 0), dm.windows[split][0])
        assert torch.equal(epoch_order(split, 3), dm.windows[split][0])


def test_shares_the_cpu_fast_path_with_sincos():
    assert AddingDataModule.transfer_batch_to_device is SinCosDataModule.transfer_batch_to_device
    dm = small()
    batch = next(iter(dm.train_dataloader()))
    same = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert all(a is b for a, b in zip(same, batch, strict=True))
    moved = dm.transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert all(t.device.type == "meta" for t in moved)


class LastStepRNN(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(2, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def _loss(self, batch):
        x, y = batch
        out, _ = self.rnn(x)
        return nn.functional.mse_loss(self.head(out[:, -1]), y[:, -1])

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_lightning_trainer_fits_and_tests_on_adding():
    torch.manual_seed(0)
    dm = AddingDataModule(seq_len=10, n_train=64, n_val=32, n_test=32, batch_size=16)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = LastStepRNN()
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 4  # 64 / 16 whole batches
    (result,) = trainer.test(model, datamodule=dm, verbose=False)
    assert set(result) == {"test_loss"}
    assert 0 <= result["test_loss"] < 10
