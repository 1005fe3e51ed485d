"""A finished run's forecasts in the data's own units (``python -m rnnlab.predict``).

The run's tested weights (the checkpoint its test scored: ``best.ckpt``, or for replicas
``last.ckpt``, which holds each replica's best) forecast the run's test split, built again from
its config, or every window of a new CSV file standardised with the run's own ``data_scale``.
The forecasts are rnnlab.observe.rollout's, the ones ``test/rollout_mse`` and the run's figures
are made of: each point's one-step forecast from the true window before it, and the rollout
fed back from the first window. They are written back in the data's units
(``x = mean + std * z``) as ``one_step.csv`` and ``rollout.csv`` (one row per point: the time,
the truth, each network's forecast and, for several, their median and band, the lowest to the
highest), with the figures of rnnlab.observe.figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from rnnlab import metrics as M
from rnnlab.config.choices import SPLIT_NAMES
from rnnlab.config.series import SCALE_KEY, Scale, Series, read_csv, series_of
from rnnlab.data.tasks import WindowDataModule, make_windows
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.replicas import ReplicaForecaster
from rnnlab.observe import figures
from rnnlab.observe.rollout import Forecasts, forecasts
from rnnlab.training.experiment import build_datamodule, replicas_of, seeds_of


class NewSeries(WindowDataModule):
    """A new series for a trained run: all of it is the "test" split, standardised with the
    run's scale; for ``replicas`` networks each gets the same windows."""

    forecasting = True

    def __init__(self, found: Series, scale: Scale, seq_len: int, replicas: int) -> None:
        super().__init__()
        self.channel_names, self.scale = found.columns, scale
        self.series = torch.from_numpy(scale.standardise(found.values)).float()
        self.bounds = [(0, 0), (0, 0), (0, len(self.series))]
        inputs, targets = make_windows(self.series, seq_len)
        if replicas > 1:
            inputs = inputs.expand(replicas, *inputs.shape)
            targets = targets.expand(replicas, *targets.shape)
        self.windows = {"test": (inputs, targets)}

    def record(self) -> dict[str, Any]:
        return {SCALE_KEY: self.scale.as_dict()}


def load_networks(record: dict[str, Any], checkpoint: Path) -> torch.nn.Module:
    """The run's tested networks as one module whose ``forward(x, last_only)`` forecasts:
    a Forecaster, or a ReplicaForecaster's best weights of each replica that finished."""
    cfg = OmegaConf.create(record["config"])
    if replicas_of(cfg) == 1:
        module = Forecaster.load_from_checkpoint(checkpoint, map_location="cpu")
        return module.networks().predict.eval()
    module = ReplicaForecaster.load_from_checkpoint(checkpoint, map_location="cpu")
    finished = torch.tensor([rec["status"] == "ok" for rec in record["replicas"]])
    return module.networks(tested=finished).predict.eval()


def _data(record: dict[str, Any], csv: Path | None) -> tuple[Any, Series | None]:
    """The DataModule to forecast and the series it was read from (None: sin/cos)."""
    cfg = OmegaConf.create(record["config"])
    saved = record.get(SCALE_KEY)
    if csv is None:
        dm = build_datamodule(cfg)
        dm.setup("test")
        found = series_of(cfg.data) if saved is not None else None
        return dm, found
    scale = Scale.from_dict(saved)
    found = read_csv(csv, scale.columns, cfg.data.get("time_column"), f"--csv {csv}")
    return NewSeries(found, scale, cfg.data.seq_len, replicas_of(cfg)), found


def in_units(fc: Forecasts, scale: Scale | None, found: Series | None) -> Forecasts:
    """``fc`` in the data's own units (sin/cos have no scale: they are): the forecasts
    ``x = mean + std * z``, the truth and the context the file's own values."""
    if scale is None or found is None:
        return fc
    back = {name: torch.from_numpy(scale.to_units(getattr(fc, name).numpy())) for name in
            ("one_step", "rollout")}
    truth = torch.from_numpy(found.values[fc.index.numpy()])
    context = torch.from_numpy(found.values[fc.context_index.numpy()])
    persistence = context[-1].expand(len(fc.persistence), -1)
    return dataclasses.replace(
        fc, **back, truth=truth, context=context, persistence=persistence, units=""
    )


def _times(found: Series | None, index: torch.Tensor) -> list[Any]:
    if found is None or found.time is None:
        return index.tolist()
    return [found.time[i] for i in index.tolist()]


def forecast_table(
    fcs: Sequence[Forecasts], seeds: Sequence[int], what: str, found: Series | None
) -> pd.DataFrame:
    """One row per point: ``t`` (its series index), ``time`` (the file's time column, when it
    has one), then for each channel its ``truth`` (each network's, ``<c>_truth_seed<s>``, where
    their data differ), each network's forecast (``<c>_seed<s>``)
    and, for several networks, their ``median``, ``low`` and ``high`` (the band: the lowest
    to the highest); ``what`` is ``one_step`` or ``rollout`` (which adds ``horizon`` and the
    ``persistence`` forecast)."""
    first = fcs[0]
    n = len(getattr(first, what))
    index = first.index[:n]
    table: dict[str, Any] = {"t": index.numpy()}
    if found is not None and found.time is not None:
        table["time"] = _times(found, index)
    if what == "rollout":
        table["horizon"] = np.arange(1, n + 1)
    # one truth, unless the networks' data differ (the noise of noisy sin/cos is each seed's)
    shared = all(torch.equal(fc.truth, first.truth) for fc in fcs)
    for c, name in enumerate(first.names):
        if shared:
            table[f"{name}_truth"] = first.truth[:n, c].numpy()
        else:
            for seed, fc in zip(seeds, fcs, strict=True):
                table[f"{name}_truth_seed{seed}"] = fc.truth[:n, c].numpy()
        # the forecasts as float32, the model's precision (written with float32's digits);
        # the truth keeps the file's
        rows = torch.stack([getattr(fc, what)[:, c] for fc in fcs]).float()  # (networks, n)
        for seed, row in zip(seeds, rows, strict=True):
            table[f"{name}_seed{seed}"] = row.numpy()
        if len(fcs) > 1:
            table[f"{name}_median"] = np.median(rows.numpy(), axis=0)  # even R: the midpoint
            table[f"{name}_low"] = rows.amin(0).numpy()
            table[f"{name}_high"] = rows.amax(0).numpy()
        if what == "rollout" and shared:
            table[f"{name}_persistence"] = first.persistence[:, c].numpy()
        elif what == "rollout":
            for seed, fc in zip(seeds, fcs, strict=True):
                table[f"{name}_persistence_seed{seed}"] = fc.persistence[:, c].numpy()
    return pd.DataFrame(table)


def write_forecasts(
    record: dict[str, Any], checkpoint: Path, out: Path, csv: Path | None, steps: int | None
) -> list[str]:
    """Write the run's forecasts into ``out``; returns the lines to print: the files, and each
    network's mean squared errors in the data's units."""
    torch.set_num_threads(1)
    cfg = OmegaConf.create(record["config"])
    predict = load_networks(record, checkpoint)
    dm, found = _data(record, csv)
    saved = record.get(SCALE_KEY)
    scale = Scale.from_dict(saved) if saved is not None else None
    seeds = seeds_of(cfg)
    finished = [rec["status"] == "ok" for rec in record.get("replicas", [record])]
    fcs = [in_units(fc, scale, found) for fc in forecasts(predict, dm, steps)]
    fcs = [fc for fc, ok in zip(fcs, finished, strict=True) if ok]
    seeds = [s for s, ok in zip(seeds, finished, strict=True) if ok]
    paths = []
    for what in ("one_step", "rollout"):
        path = out / f"{what}.csv"
        forecast_table(fcs, seeds, what, found).to_csv(path, index=False)
        paths.append(path)
    of = f"--csv {csv.name}" if csv is not None else SPLIT_NAMES[-1] + " split"
    model = SimpleNamespace(hparams=cfg.model)  # what run_label reads of a module
    label = f"{figures.run_label(model)}: forecasts of the {of}"
    for name, fig in figures.forecast_figures(fcs, label).items():
        path = out / f"{name}.png"
        path.write_bytes(figures.to_png(fig))
        paths.append(path)
    lines = [str(p) for p in paths]
    units = "the data's units"
    for seed, fc in zip(seeds, fcs, strict=True):
        one = ((fc.one_step - fc.truth) ** 2).mean(0).tolist()
        roll = fc.rollout_errors.mean().item()
        per = ", ".join(f"{n} {v:.4g}" for n, v in zip(fc.names, one, strict=True))
        lines.append(
            f"seed {seed}: one-step MSE in {units}: {per}; rollout MSE ({len(fc.rollout)} "
            f"steps, mean over channels) {roll:.4g}"
        )
    if csv is None:
        lines.append(
            f"(the run's {M.TEST_MSE} is the one-step MSE over channels in standardised units: "
            "each channel's MSE divided by its std squared)"
            if scale is not None
            else f"(the run's {M.TEST_MSE} is the one-step MSE, averaged over channels)"
        )
    return lines

