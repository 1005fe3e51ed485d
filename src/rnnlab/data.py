"""Sin/cos sequence windows and the DataModule that serves them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from rnnlab.choices import SPLIT_NAMES, split_bounds


def make_windows(series: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(inputs, targets)`` views with ``inputs[i] = series[i:i+L]`` and
    ``targets[i] = series[i+1:i+L+1]``, each of shape ``(T-L, L, C)``.

    Views share the series' storage, so a million windows cost no copy.
    """
    if series.dim() != 2:
        raise ValueError(f"series must have shape (T, C), got {tuple(series.shape)}")
    if seq_len < 1 or seq_len >= series.shape[0]:
        raise ValueError(f"seq_len must be in [1, {series.shape[0] - 1}], got {seq_len}")
    windows = series.unfold(0, seq_len + 1, 1).transpose(1, 2)  # (T-L, L+1, C), a view
    return windows[:, :-1], windows[:, 1:]


def sincos_series(n_points: int, x_end: float) -> torch.Tensor:
    """``[sin(x), cos(x)]`` on ``x = linspace(0, x_end, n_points)``, as in the concat cell's
    source text."""
    x = torch.linspace(0.0, x_end, n_points)
    return torch.stack([torch.sin(x), torch.cos(x)], dim=1)


class WindowDataset(torch.utils.data.Dataset):
    """Windows indexed a whole batch at a time: one gather per batch instead of
    one ``__getitem__`` and a collate per sample (the main cost of a naive loader)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]


class WindowBatches(Sampler[torch.Tensor]):
    """Yields whole batches of window indices, reshuffled per epoch from ``seed + epoch``,
    so an epoch's order does not depend on how many epochs ran before (exact resume)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.arange(self.n)
        yield from order.split(self.batch_size)


class SinCosDataModule(L.LightningDataModule):
    """``[sin, cos]`` windows with time-ordered splits; no window crosses a split boundary."""

    channels = 2

    def __init__(
        self,
        seq_len: int = 4,
        n_points: int = 1000,
        x_end: float = 100.0,
        noise_std: float = 0.0,
        splits: Sequence[float] = (0.8, 0.1, 0.1),
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.seq_len, self.n_points, self.x_end = seq_len, n_points, x_end
        self.noise_std, self.splits = noise_std, tuple(splits)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.series: torch.Tensor | None = None
        self.bounds: list[tuple[int, int]] = []
        self.windows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.series is not None:
            return
        series = sincos_series(self.n_points, self.x_end)
        if self.noise_std > 0:
            gen = torch.Generator().manual_seed(self.seed)
            series = series + self.noise_std * torch.randn(series.shape, generator=gen)
        self.series = series
        self.bounds = split_bounds(self.n_points, self.splits)
        for name, (start, end) in zip(SPLIT_NAMES, self.bounds, strict=True):
            self.windows[name] = make_windows(series[start:end], self.seq_len)

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # The batches are CPU tensors: on CPU, Lightning's walk over the batch calling .to() on
        # each tensor changes nothing (39 against 18 us a step through the Trainer's hook).
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = WindowDataset(*self.windows[split])
        sampler = WindowBatches(len(dataset), self.batch_size, shuffle, self.seed)
        return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
