import torch

from rnnlab.data.tasks import SinCosDataModule, make_windows


def seed002_windows(data: torch.Tensor, seq_len: int):
    """The seed-002 list comprehension, as written there."""
    x = torch.stack([data[i : i + seq_len] for i in range(0, len(data) - seq_len)])
    y = torch.stack([data[i] for i in range(seq_len, len(data))])
    return x, y


def test_make_windows_matches_seed002_on_random_series():
    series = torch.randn(57, 3)
    for seq_len in (1, 4, 9, 56):
        inputs, targets = make_windows(series, seq_len)
        x, y = seed002_windows(series, seq_len)
        assert inputs.shape == targets.shape == (57 - seq_len, seq_len, 3)
        assert torch.equal(inputs, x)
        assert torch.equal(targets[:, -1], y)
        assert torch.equal(targets[:, :-1], inputs[:, 1:])


def test_make_windows_are_views():
    series = torch.randn(1000, 2)
    inputs, targets = make_windows(series, 64)
    assert inputs.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()
    assert targets.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()


def test_make_windows_rejects_bad_lengths():
    import pytest

    with pytest.raises(ValueError, match="seq_len"):
        make_windows(torch.zeros(5, 2), 5)
    with pytest.raises(ValueError, match="seq_len"):
        make_windows(torch.zeros(5, 2), 0)


def test_splits_are_time_ordered_and_never_leak():
    dm = SinCosDataModule(seq_len=8, n_points=500, splits=(0.6, 0.2, 0.2))
    dm.setup()
    assert dm.bounds == [(0, 300), (300, 400), (400, 500)]
    x = torch.linspace(0.0, dm.x_end, dm.n_points)
    for split, (start, end) in zip(("train", "val", "test"), dm.bounds, strict=True):
        inputs, targets = dm.windows[split]
        # every point a window touches, input or target, lies inside its own split
        first_in = torch.sin(x[start])
        last_target = torch.sin(x[end - 1])
        assert torch.isclose(inputs[0, 0, 0], first_in)
        assert torch.isclose(targets[-1, -1, 0], last_target)
        assert len(inputs) == (end - start) - dm.seq_len


def test_series_is_sin_cos_as_in_seed002():
    dm = SinCosDataModule()
    dm.setup()
    x = torch.linspace(0, 100, 1000)
    assert torch.allclose(dm.series, torch.stack([torch.sin(x), torch.cos(x)], 1))


def test_loaders_shuffle_only_train_and_are_deterministic():
    def first_batches(seed):
        dm = SinCosDataModule(batch_size=16, seed=seed)
        dm.setup()
        return [next(iter(getattr(dm, f"{s}_dataloader")()))[0] for s in ("train", "val", "test")]

    a, b, c = first_batches(0), first_batches(0), first_batches(1)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])  # train order depends on the seed
    dm = SinCosDataModule(batch_size=16)
    dm.setup()
    val_inputs, _ = dm.windows["val"]
    assert torch.equal(a[1], val_inputs[:16])  # val in time order
    train_inputs, _ = dm.windows["train"]
    assert not torch.equal(a[0], train_inputs[:16])


def test_every_window_served_once_per_epoch():
    dm = SinCosDataModule(batch_size=50)
    dm.setup()
    loader = dm.train_dataloader()
    seen = torch.cat([x for x, _ in loader])
    assert len(seen) == len(dm.windows["train"][0])
    sorted_seen = seen[:, 0, 0].sort().values
    assert torch.equal(sorted_seen, dm.windows["train"][0][:, 0, 0].sort().values)


def test_noise_is_seeded():
    a = SinCosDataModule(noise_std=0.1, seed=3)
    b = SinCosDataModule(noise_std=0.1, seed=3)
    c = SinCosDataModule(noise_std=0.1, seed=4)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.series, b.series)
    assert not torch.equal(a.series, c.series)
    clean = SinCosDataModule()
    clean.setup()
    assert 0.05 < (a.series - clean.series).std() < 0.15


def test_batches_stay_put_on_cpu_and_move_elsewhere():
    dm = SinCosDataModule()
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    same = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert all(a is b for a, b in zip(same, batch, strict=True))
    moved = dm.transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert all(t.device.type == "meta" for t in moved)


def test_sincos_is_a_forecasting_window_datamodule():
    from rnnlab.data.tasks import WindowDataModule

    assert issubclass(SinCosDataModule, WindowDataModule)
    assert SinCosDataModule.channels == SinCosDataModule.output_size == 2
    assert SinCosDataModule.forecasting is True
    dm = SinCosDataModule(batch_size=16)
    dm.setup()
    dm.setup()  # idempotent: the series is built once
    series = dm.series
    dm.setup("test")
    assert dm.series is series
