"""The DataModules: ``[sin, cos]`` forecasting windows, the adding problem, and real series
(a user's CSV file, statsmodels' yearly sunspots).

All serve ``windows[split] = (inputs, targets)`` through the same batch-indexed loaders
(:class:`WindowDataset`, :class:`WindowBatches`) from the shared base :class:`WindowDataModule`.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Sampler

from rnnlab.config.choices import SPLIT_NAMES, split_bounds
from rnnlab.config.errors import ConfigError
from rnnlab.config.schema import (
    AddingDataConfig,
    Config,
    CsvDataConfig,
    SinCosDataConfig,
    SunspotsDataConfig,
)
from rnnlab.config.series import SCALE_KEY, Scale, Series, read_csv, sunspots


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


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of ``n`` windows in ``epoch`` for ``seed``, drawn from numpy's
    ``SeedSequence([seed, epoch])``: it does not depend on how many epochs ran before (exact
    resume), and different seeds' orders are independent (from ``seed + epoch``, seed s+1's
    order in epoch e would be seed s's in epoch e+1)."""
    return torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n))


class WindowBatches(Sampler[torch.Tensor]):
    """Yields whole batches of window indices, reshuffled per epoch (:func:`epoch_order`)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.epoch) if self.shuffle else torch.arange(self.n)
        yield from order.split(self.batch_size)


class WindowDataModule(L.LightningDataModule):
    """What every DataModule here shares: batch-indexed loaders over ``windows[split] =
    (inputs, targets)`` and the CPU fast path in :meth:`transfer_batch_to_device`.

    A subclass fills ``self.windows`` in ``setup()`` and sets ``batch_size``, ``shuffle`` and
    ``seed``; it also declares what the rest of the project reads off the class: ``channels``
    (the model's input size), ``output_size`` (its output size), ``forecasting`` (whether
    rollouts and forecast figures apply) and ``channel_names`` (how figures name the channels).
    A task whose sizes depend on its config (a CSV file's columns) says so in
    :meth:`model_sizes`.
    """

    channels: ClassVar[int]
    output_size: ClassVar[int]
    forecasting: ClassVar[bool]
    channel_names: tuple[str, ...] = ()

    @classmethod
    def model_sizes(cls, data: DictConfig) -> tuple[int, int]:
        """The model's input and output sizes for the task's config section ``data``."""
        return cls.channels, cls.output_size

    def record(self) -> dict[str, Any]:
        """What metrics.json keeps of the data beyond the config (a series' scale)."""
        return {}

    batch_size: int
    shuffle: bool
    seed: int
    windows: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def members(self) -> list[WindowDataModule]:
        """The DataModule of each network it serves, in order: itself (ReplicaDataModule serves
        one per replica)."""
        return [self]

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


class SinCosDataModule(WindowDataModule):
    """``[sin, cos]`` windows with time-ordered splits; no window crosses a split boundary."""

    channels = 2
    output_size = 2  # the model forecasts the next point: its output is its input space
    forecasting = True
    channel_names = ("sin", "cos")

    def __init__(
        self,
        seq_len: int = SinCosDataConfig.seq_len,
        n_points: int = SinCosDataConfig.n_points,
        x_end: float = SinCosDataConfig.x_end,
        noise_std: float = SinCosDataConfig.noise_std,
        splits: Sequence[float] = SinCosDataConfig.splits,
        batch_size: int = SinCosDataConfig.batch_size,
        shuffle: bool = SinCosDataConfig.shuffle,
        seed: int = Config.seed,
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


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def adding_problem(
    n: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` adding-problem sequences drawn from ``generator``: ``(inputs, targets)`` of shapes
    ``(n, seq_len, 2)`` and ``(n, seq_len, 1)``.

    Channel 0 is a value from U(0, 1), channel 1 a marker that is 1 at exactly two steps: one
    drawn uniformly from the first half (``0 .. seq_len//2 - 1``), one from the second
    (``seq_len//2 .. seq_len - 1``), as Le, Jaitly & Hinton (2015) place them. The target is the
    sum of the two marked values, written at every step; only the last step is scored.
    """
    half = seq_len // 2
    values = torch.rand(n, seq_len, generator=generator)
    first = torch.randint(0, half, (n, 1), generator=generator)
    second = torch.randint(half, seq_len, (n, 1), generator=generator)
    marked = torch.cat([first, second], dim=1)  # (n, 2)
    markers = torch.zeros(n, seq_len).scatter_(1, marked, 1.0)
    sums = values.gather(1, marked).sum(dim=1)  # (n,)
    inputs = torch.stack([values, markers], dim=2)
    targets = sums[:, None, None].expand(n, seq_len, 1).contiguous()
    return inputs, targets


class AddingDataModule(WindowDataModule):
    """The adding problem (Hochreiter & Schmidhuber 1997) with the markers placed as in Le,
    Jaitly & Hinton (2015): see :func:`adding_problem`.

    Fixed train/val/test sets of ``n_train``/``n_val``/``n_test`` sequences, drawn in that order
    from one ``torch.Generator`` seeded with ``seed``: the splits are independent draws, and each
    is a pure function of ``seed``, ``seq_len`` and the sizes. ``windows[split] = (inputs,
    targets)`` with inputs ``(N, seq_len, 2)`` (value, marker) and targets ``(N, seq_len, 1)``.
    Every step of a target holds the sum, but only the LAST step is scored: the model is trained
    with the last-step loss on this task. Predicting the mean, 1, scores an MSE of 1/6.

    Not a forecasting task (``forecasting = False``): rollouts and forecast figures do not apply.
    """

    channels = 2
    output_size = 1
    forecasting = False

    def __init__(
        self,
        seq_len: int = AddingDataConfig.seq_len,
        n_train: int = AddingDataConfig.n_train,
        n_val: int = AddingDataConfig.n_val,
        n_test: int = AddingDataConfig.n_test,
        batch_size: int = AddingDataConfig.batch_size,
        shuffle: bool = AddingDataConfig.shuffle,
        seed: int = Config.seed,
    ) -> None:
        super().__init__()
        _check_int("seq_len", seq_len, 2)
        for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            _check_int(name, value, 1)
        _check_int("batch_size", batch_size, 1)
        self.seq_len = seq_len
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.windows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Sequences per split (train, val, test)."""
        return self.n_train, self.n_val, self.n_test

    def setup(self, stage: str | None = None) -> None:
        if self.windows:
            return
        gen = torch.Generator().manual_seed(self.seed)
        for name, n in zip(SPLIT_NAMES, self.sizes, strict=True):
            self.windows[name] = adding_problem(n, self.seq_len, gen)


class ReplicaBatches(Sampler[torch.Tensor]):
    """Each replica's :class:`WindowBatches` side by side: yields ``(R, B)`` index batches whose
    row r is the batch a run of replica r's seed would draw."""

    def __init__(self, samplers: Sequence[WindowBatches]) -> None:
        self.samplers = list(samplers)

    def set_epoch(self, epoch: int) -> None:
        for sampler in self.samplers:
            sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.samplers[0])

    def __iter__(self):
        for rows in zip(*self.samplers, strict=True):
            yield torch.stack(rows)


class ReplicaWindows(WindowDataset):
    """``(R, N, L, C)`` windows, indexed by ``(R, B)`` batches: replica r's batch from its own
    windows."""

    def __len__(self) -> int:
        return self.inputs.shape[1]

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.arange(len(index)).unsqueeze(1)
        return self.inputs[rows, index], self.targets[rows, index]


def _stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(R, ...)``: a zero-copy view when every replica has the same data (noise-free sin/cos)."""
    first = tensors[0]
    if all(t is first or torch.equal(t, first) for t in tensors[1:]):
        return first.expand(len(tensors), *first.shape)
    return torch.stack(tensors)


class ReplicaDataModule(WindowDataModule):
    """The DataModules of the replicas' seeds (``members[r]``, of seed ``seed + r``), served
    together: each batch is ``(R, B, L, C)``, row r what a run of seed ``seed + r`` would train
    on at that step, from its own data (the adding problem's sequences and the noise of noisy
    sin/cos are drawn from the seed) in its own order."""

    def __init__(self, members: Sequence[WindowDataModule]) -> None:
        super().__init__()
        self._members = list(members)
        first = self.members[0]
        self.channels, self.output_size = first.channels, first.output_size
        self.forecasting, self.channel_names = first.forecasting, first.channel_names
        self.batch_size, self.shuffle, self.seed = first.batch_size, first.shuffle, first.seed
        self.windows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def members(self) -> list[WindowDataModule]:
        return self._members

    def state_dict(self) -> dict[str, Any]:
        return self.members[0].state_dict()  # a series is the same for every seed

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for member in self.members:
            member.load_state_dict(state_dict)

    def record(self) -> dict[str, Any]:
        return self.members[0].record()

    def setup(self, stage: str | None = None) -> None:
        if self.windows:
            return
        for member in self.members:
            member.setup(stage)
        for split in SPLIT_NAMES:
            parts = [member.windows[split] for member in self.members]
            self.windows[split] = (_stack([p[0] for p in parts]), _stack([p[1] for p in parts]))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = ReplicaWindows(*self.windows[split])
        samplers = [
            WindowBatches(len(dataset), self.batch_size, shuffle, member.seed)
            for member in self.members
        ]
        return DataLoader(dataset, sampler=ReplicaBatches(samplers), batch_size=None, num_workers=0)


class SeriesDataModule(WindowDataModule):
    """A series read by :meth:`read` (rnnlab.config.series, which the config checks ran
    already), standardised with its train split's :class:`Scale`, as windows with time-ordered
    splits; no window crosses a split boundary. The same data for every seed."""

    forecasting = True
    output_size: int  # the model forecasts the next row: its output is its input space

    def __init__(
        self,
        seq_len: int,
        splits: Sequence[float],
        batch_size: int,
        shuffle: bool,
        seed: int = Config.seed,
    ) -> None:
        super().__init__()
        self.seq_len, self.splits = seq_len, tuple(splits)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.source = self.read()
        self.channels = self.output_size = len(self.source.columns)
        self.channel_names = self.source.columns
        self.bounds = split_bounds(len(self.source.values), self.splits)
        self.scale = Scale.of(self.source, *self.bounds[0])
        self.series: torch.Tensor | None = None
        self.windows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def read(self) -> Series:
        raise NotImplementedError

    @classmethod
    def model_sizes(cls, data: DictConfig) -> tuple[int, int]:
        channels = len(cls.columns_of(data))
        return channels, channels

    @classmethod
    def columns_of(cls, data: DictConfig) -> tuple[str, ...]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.series is not None:
            return
        values = self.scale.standardise(self.source.values)
        self.series = torch.from_numpy(values).float()
        for name, (start, end) in zip(SPLIT_NAMES, self.bounds, strict=True):
            self.windows[name] = make_windows(self.series[start:end], self.seq_len)

    # -- what a run keeps of its data: in checkpoints, and in metrics.json ------------------
    def state_dict(self) -> dict[str, Any]:
        return {SCALE_KEY: self.scale.as_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A resumed run goes on with the data it started with: the file's train split must
        give the scale the checkpoint holds."""
        saved = state_dict.get(SCALE_KEY)
        if saved is not None and not Scale.from_dict(saved).same_as(self.scale):
            raise ConfigError(
                f"{self.source.source}: the data changed since the run's checkpoint (its train "
                f"split's mean or std per channel, {saved['mean']} and {saved['std']}, differ "
                "now); train a new run"
            )

    def record(self) -> dict[str, Any]:
        return {SCALE_KEY: self.scale.as_dict()}


class CsvDataModule(SeriesDataModule):
    """``data=csv``: the columns ``columns`` of the CSV file ``path`` (None: every column of
    numbers), its rows sorted by ``time_column`` when given."""

    def __init__(
        self,
        path: str | None = CsvDataConfig.path,
        columns: Sequence[str] | None = CsvDataConfig.columns,
        time_column: str | None = CsvDataConfig.time_column,
        seq_len: int = CsvDataConfig.seq_len,
        splits: Sequence[float] = CsvDataConfig.splits,
        batch_size: int = CsvDataConfig.batch_size,
        shuffle: bool = CsvDataConfig.shuffle,
        seed: int = Config.seed,
    ) -> None:
        self.path, self.columns, self.time_column = path, columns, time_column
        super().__init__(seq_len, splits, batch_size, shuffle, seed)

    def read(self) -> Series:
        return read_csv(self.path, self.columns, self.time_column)

    @classmethod
    def columns_of(cls, data: DictConfig) -> tuple[str, ...]:
        columns = list(data.columns) if data.columns is not None else None
        return read_csv(data.path, columns, data.time_column).columns


class SunspotsDataModule(SeriesDataModule):
    """``data=sunspots``: the yearly sunspot numbers statsmodels ships (rnnlab.config.series)."""

    def __init__(
        self,
        seq_len: int = SunspotsDataConfig.seq_len,
        splits: Sequence[float] = SunspotsDataConfig.splits,
        batch_size: int = SunspotsDataConfig.batch_size,
        shuffle: bool = SunspotsDataConfig.shuffle,
        seed: int = Config.seed,
    ) -> None:
        super().__init__(seq_len, splits, batch_size, shuffle, seed)

    def read(self) -> Series:
        return sunspots()

    @classmethod
    def columns_of(cls, data: DictConfig) -> tuple[str, ...]:
        return sunspots().columns


#: The DataModule of each of ``choices.DATASETS`` (``data.name``).
DATAMODULES: dict[str, type[WindowDataModule]] = {
    "sincos": SinCosDataModule,
    "adding": AddingDataModule,
    "csv": CsvDataModule,
    "sunspots": SunspotsDataModule,
}
