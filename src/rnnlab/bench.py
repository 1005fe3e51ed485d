"""``python -m rnnlab.bench``: how fast rnnlab trains, measured side by side in one process.

Sections (``--sections``; all by default):

- ``loop``: training samples/s of the project's own path (DataModule + Forecaster + the Trainer
  that train.py builds) against a plain PyTorch loop over the same model, data, batch size,
  optimizer, clipping and number of steps, for each cell at the default config;
- ``cells``: forward+backward time of ScratchRNN and ConcatRNN against TorchRNN (``nn.RNN``);
- ``data``: building the windows of 10^6 points at L=64 as views, against seed 002's list
  comprehension (extrapolated from a smaller series: it takes minutes at full size);
- ``compile``: ``model.compile=true`` (``torch.compile`` of one time step): compile time and
  speed-up over the eager cell;
- ``run``: wall time and peak RSS of whole processes: the bare import of torch + lightning +
  hydra, a default ``python train.py``, and a three-job sweep (per job).

Every comparison interleaves its repetitions (A, B, A, B, ...) and reports medians, so load
from other processes hits both sides alike: the ratios are the figures to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rnnlab import experiment, figures
from rnnlab.cells import ConcatRNN, ScratchRNN, TorchRNN, compiled_step
from rnnlab.data import make_windows, sincos_series
from rnnlab.experiment import (
    NoProfiler,
    build_datamodule,
    build_model,
    build_trainer,
    quiet_known_warnings,
)
from rnnlab.model import Forecaster

ROOT = Path(__file__).resolve().parents[2]  # the checkout: conf/ and train.py
SECTIONS = ("loop", "cells", "data", "compile", "job", "run")
CELL_NAMES = ("scratch", "concat", "torch")
DEFAULT_SIZES = ("32x4x32", "256x64x64", "64x512x64")  # BxLxH; the first is the default config
TARGETS = {
    "loop_ratio_min": 0.85,
    "cell_ratio_max": 1.1,
    "windows_ms_max": 50.0,
    "run_minus_import_s_max": 3.0,
    "job_overhead_s_max": 1.0,
}


# -- helpers ---------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved(fns: dict[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """Run ``fns`` in turn ``reps`` times (A, B, A, B, ...); each returns one measurement."""
    results: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            results[name].append(fn())
    return results


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[_fmt(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def machine_info(threads: int, device: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": threads,
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "platform": platform.platform(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


# -- loop: the project's training path against a plain PyTorch loop -------------------------
def compose(overrides: list[str]) -> DictConfig:
    """The config train.py would run, composed from the checkout's conf/."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import rnnlab.config  # noqa: F401  (registers the config schema)

    if not (ROOT / "conf").is_dir():
        raise SystemExit(f"rnnlab.bench runs from a checkout: no conf/ in {ROOT}")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


class TimedForecaster(Forecaster):
    """The project's Forecaster with a clock on hooks Lightning calls anyway (no per-step work):
    time in training steps, from each epoch's start to its validation (or its end)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_seconds = 0.0
        self.fit_seconds: float | None = None
        self.checkpoint_saves = 0
        self._epoch_start: float | None = None
        self._fit_start = 0.0

    def on_fit_start(self) -> None:
        self._fit_start = time.perf_counter()

    def on_fit_end(self) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_start

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.checkpoint_saves += 1

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        _sync(str(self.device))
        self._epoch_start = time.perf_counter()

    def _stop_clock(self) -> None:
        if self._epoch_start is not None:
            _sync(str(self.device))
            self.train_seconds += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def on_validation_start(self) -> None:
        self._stop_clock()

    def on_train_epoch_end(self) -> None:
        self._stop_clock()
        super().on_train_epoch_end()


def empty_loss(model: Forecaster) -> torch.Tensor:
    """A loss that costs next to nothing: what remains of a step is the loop around it."""
    return model.readout.linear.bias.sum() * 0.0


class EmptyStepForecaster(TimedForecaster):
    """Training steps without the model's work, to measure the Trainer's own cost per step."""

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        return empty_loss(self)


def _model(cfg: DictConfig, empty: bool = False) -> TimedForecaster:
    cls = EmptyStepForecaster if empty else TimedForecaster
    return cls(**build_model(cfg).hparams)


def bare_trainer(cfg: DictConfig) -> L.Trainer:
    """The least a Lightning project can run: the configured Trainer (epochs, device, clipping)
    with no logger, no checkpoints and no callbacks. What it costs beyond a plain loop is the
    floor of any project built on Lightning's Trainer, this one included."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    kwargs.update(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        profiler=NoProfiler(),
        callbacks=[],
    )
    return L.Trainer(**kwargs)


def project_fit(
    cfg: DictConfig, out_dir: Path, empty: bool, bare: bool = False
) -> tuple[float, int, float]:
    """Seconds in training steps, number of steps and seconds in ``fit`` of the project's path
    (``bare``: of the same model and data under :func:`bare_trainer`)."""
    L.seed_everything(cfg.seed, verbose=False)
    dm, model = build_datamodule(cfg), _model(cfg, empty)
    trainer = bare_trainer(cfg) if bare else build_trainer(cfg, out_dir)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    return model.train_seconds, trainer.global_step, time.perf_counter() - start


def plain_fit(cfg: DictConfig, device: str, empty: bool) -> tuple[float, int]:
    """The same model, data, optimizer, scheduler and clipping in a hand-written loop."""
    L.seed_everything(cfg.seed, verbose=False)
    dm, model = build_datamodule(cfg), _model(cfg).to(device)
    dm.setup("fit")
    epochs, clip = cfg.trainer.max_epochs, cfg.trainer.get("gradient_clip_val")
    # configure_optimizers reads trainer.max_epochs: give it a Trainer that never runs.
    model.trainer = L.Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    configured = model.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    scheduler = configured.get("lr_scheduler") if isinstance(configured, dict) else None
    model.trainer = None
    loader, steps = dm.train_dataloader(), 0
    last_only = model.hparams.loss == "last"  # as training_step: the readout where the loss is
    model.train()
    _sync(device)
    start = time.perf_counter()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = empty_loss(model) if empty else model.loss_fn(model(x, last_only), y)
            optimizer.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            steps += 1
        if scheduler is not None:
            scheduler.step()
    _sync(device)
    return time.perf_counter() - start, steps


def loop_row(
    cell: str, opts: argparse.Namespace, work: Path, empty: bool = False
) -> dict[str, Any]:
    accelerator = "gpu" if opts.device.startswith("cuda") else "cpu"
    cfg = compose(
        [
            f"model={cell}",
            f"trainer.max_epochs={opts.epochs}",
            f"trainer.accelerator={accelerator}",
            "trainer.enable_progress_bar=false",
            f"threads={opts.threads}",
            *opts.overrides,
        ]
    )
    runs = iter(range(10**6))
    steps: dict[str, int] = {}
    fit_s: dict[str, list[float]] = {"project": [], "bare": []}

    def lightning(name: str) -> Callable[[], float]:
        def fn() -> float:
            out_dir = work / f"loop_{cell}_{empty}_{next(runs)}"
            seconds, steps[name], fit = project_fit(cfg, out_dir, empty, bare=name == "bare")
            fit_s[name].append(fit)
            return seconds

        return fn

    def plain() -> float:
        seconds, steps["plain"] = plain_fit(cfg, opts.device, empty)
        return seconds

    fns = {"plain": plain, "project": lightning("project"), "bare": lightning("bare")}
    times = interleaved(fns, opts.reps)
    batch = cfg.data.batch_size
    outside = {
        name: [fit - steps_s for fit, steps_s in zip(fits, times[name], strict=True)]
        for name, fits in fit_s.items()
    }
    rate = {name: steps[name] * batch / median(t) for name, t in times.items()}
    plain_rate, project_rate = rate["plain"], rate["project"]
    return {
        "cell": "(empty step)" if empty else cell,
        "empty_step": empty,
        "batch_size": batch,
        "seq_len": cfg.data.seq_len,
        "hidden_size": cfg.model.hidden_size,
        "steps": steps["plain"],
        "plain_samples_per_s": plain_rate,
        "project_samples_per_s": project_rate,
        "plain_ms_per_step": 1e3 * batch / plain_rate,
        "project_ms_per_step": 1e3 * batch / project_rate,
        "ratio": project_rate / plain_rate,
        "bare_ms_per_step": 1e3 * batch / rate["bare"],
        "bare_ratio": rate["bare"] / plain_rate,
        # validation, checkpoints and epoch-end logging: fit time outside the training steps
        "epoch_overhead_ms": 1e3 * median(outside["project"]) / opts.epochs,
        "bare_epoch_overhead_ms": 1e3 * median(outside["bare"]) / opts.epochs,
        "plain_s": times["plain"],
        "project_s": times["project"],
        "bare_s": times["bare"],
        "fit_s": fit_s,
    }


def bench_loop(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    rows = [loop_row(cell, opts, work) for cell in CELL_NAMES]
    # The Trainer's own cost per step: the same loops around a step that does no model work.
    rows.append(loop_row("scratch", opts, work, empty=True))
    empty = rows[-1]
    overrides = f" with {' '.join(opts.overrides)}" if opts.overrides else ""
    return {
        "epochs": opts.epochs,
        "overrides": overrides,
        "rows": rows,
        "trainer_ms_per_step": empty["project_ms_per_step"] - empty["plain_ms_per_step"],
        "bare_trainer_ms_per_step": empty["bare_ms_per_step"] - empty["plain_ms_per_step"],
    }


# -- cells: forward+backward against nn.RNN --------------------------------------------------
def _fwd_bwd_seconds(cell: torch.nn.Module, x: torch.Tensor, iters: int, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        cell.zero_grad(set_to_none=True)
        out, _ = cell(x)
        out.sum().backward()
    _sync(device)
    return (time.perf_counter() - start) / iters


def _iterations(fn: Callable[[int, str], float], opts: argparse.Namespace) -> int:
    """Iterations per measurement so that one takes about ``opts.budget`` seconds."""
    once = fn(1, opts.device)
    return max(1, min(1000, int(opts.budget / max(once, 1e-6))))


def bench_cells(opts: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for size in opts.sizes:
        batch, seq_len, hidden = (int(v) for v in size.lower().split("x"))
        for nonlinearity in ("tanh", "relu"):
            torch.manual_seed(0)
            ref = torch.nn.RNN(2, hidden, nonlinearity=nonlinearity, batch_first=True)
            cells = {
                cls.__name__: cls.from_torch(ref).to(opts.device)
                for cls in (TorchRNN, ScratchRNN, ConcatRNN)
            }
            x = torch.randn(batch, seq_len, 2, device=opts.device)
            iters = _iterations(partial(_fwd_bwd_seconds, cells["TorchRNN"], x), opts)
            fns = {
                name: partial(_fwd_bwd_seconds, cell, x, iters, opts.device)
                for name, cell in cells.items()
            }
            times = interleaved(fns, opts.reps)
            ms = {name: 1e3 * median(t) for name, t in times.items()}
            rows.append(
                {
                    "batch_size": batch,
                    "seq_len": seq_len,
                    "hidden_size": hidden,
                    "nonlinearity": nonlinearity,
                    "ms": ms,
                    "scratch_ratio": ms["ScratchRNN"] / ms["TorchRNN"],
                    "concat_ratio": ms["ConcatRNN"] / ms["TorchRNN"],
                }
            )
    return rows


# -- data: windows as views against seed 002's list comprehension ---------------------------
def seed_windows(data: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed 002's ``TrignoDS.make_data``, verbatim apart from the names."""
    x = torch.tensor([data[i : i + seq_len] for i in range(0, len(data) - seq_len)]).float()
    y = torch.tensor([data[i] for i in range(seq_len, len(data))]).float()
    return x, y


def _new_bytes(tensors: tuple[torch.Tensor, ...], base: torch.Tensor) -> int:
    """Bytes of storage the tensors do not share with ``base``."""
    shared = base.untyped_storage().data_ptr()
    return sum(
        t.untyped_storage().nbytes() for t in tensors if t.untyped_storage().data_ptr() != shared
    )


def bench_data(opts: argparse.Namespace) -> dict[str, Any]:
    n_points, seq_len = opts.points, 64
    series = sincos_series(n_points, 100.0)

    def views() -> float:
        start = time.perf_counter()
        make_windows(series, seq_len)
        return time.perf_counter() - start

    small = min(opts.seed_points, n_points)
    data = series[:small].double().numpy()  # the seed builds windows from a numpy array

    def seed() -> float:
        start = time.perf_counter()
        seed_windows(data, seq_len)
        return time.perf_counter() - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "list of ndarrays is extremely slow" warning
        times = interleaved({"views": views, "seed": seed}, opts.reps)
        seed_bytes = _new_bytes(seed_windows(data, seq_len), series)
    scale = (n_points - seq_len) / (small - seq_len)
    views_ms = 1e3 * median(times["views"])
    seed_ms = 1e3 * median(times["seed"]) * scale
    return {
        "points": n_points,
        "seq_len": seq_len,
        "views_ms": views_ms,
        "views_new_bytes": _new_bytes(make_windows(series, seq_len), series),
        "seed_ms": seed_ms,
        "seed_new_bytes": int(seed_bytes * scale),
        "seed_measured_points": small,
        "seed_extrapolated": small < n_points,
        "speedup": seed_ms / views_ms,
    }


# -- compile: torch.compile of the time step -------------------------------------------------
def bench_compile(opts: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for size in opts.compile_sizes:
        batch, seq_len, hidden = (int(v) for v in size.lower().split("x"))
        torch._dynamo.reset()
        compiled_step.cache_clear()
        torch.manual_seed(0)
        ref = torch.nn.RNN(2, hidden, batch_first=True)
        eager = ScratchRNN.from_torch(ref).to(opts.device)
        compiled = ScratchRNN(2, hidden, compile=True).to(opts.device)
        compiled.load_state_dict(eager.state_dict())
        x = torch.randn(batch, seq_len, 2, device=opts.device)
        row: dict[str, Any] = {"batch_size": batch, "seq_len": seq_len, "hidden_size": hidden}
        try:
            eager_first = _fwd_bwd_seconds(eager, x, 1, opts.device)
            first = _fwd_bwd_seconds(compiled, x, 1, opts.device)
        except Exception as err:  # e.g. no C++ compiler for Inductor
            rows.append({**row, "error": f"{type(err).__name__}: {err}"})
            continue
        iters = _iterations(partial(_fwd_bwd_seconds, eager, x), opts)
        times = interleaved(
            {
                "eager": partial(_fwd_bwd_seconds, eager, x, iters, opts.device),
                "compiled": partial(_fwd_bwd_seconds, compiled, x, iters, opts.device),
            },
            opts.reps,
        )
        eager_ms, compiled_ms = 1e3 * median(times["eager"]), 1e3 * median(times["compiled"])
        rows.append(
            {
                **row,
                "compile_s": first - eager_first,
                "eager_ms": eager_ms,
                "compiled_ms": compiled_ms,
                "speedup": eager_ms / compiled_ms,
            }
        )
    return rows


# -- run: whole processes --------------------------------------------------------------------
# Runs the command given after it and prints its wall seconds and peak RSS. A child's peak RSS
# starts at its parent's RSS at fork, so the measured process is started from this small
# interpreter rather than from the benchmark, which holds torch and its data.
_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[1:])
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"rnnlab-bench-measure {code} {wall} {peak}")
"""


def run_process(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, Linux) of a command; raises if it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    line = proc.stdout.rstrip().rpartition("\n")[2]
    _, code, wall, peak = line.split()
    if int(code) != 0:
        tail = proc.stdout[-3000:]
        raise RuntimeError(f"{' '.join(args)} exited {code}:\n{tail}")
    return float(wall), int(peak) / 1024  # ru_maxrss is in KiB on Linux


def _job_row(cell: str, opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Time one sweep job's work in this process: ``rnnlab.experiment.run``, which every job of
    a sweep calls, with the model's clock splitting training steps from everything else; and
    the same fit and test under :func:`bare_trainer`, the floor of a job on Lightning."""
    cfg = compose([f"model={cell}", "trainer.enable_progress_bar=false", *opts.job_overrides])
    models: dict[str, list[TimedForecaster]] = {"job": [], "bare": []}

    def timed_model(cfg: DictConfig) -> TimedForecaster:
        models["job"].append(_model(cfg))
        return models["job"][-1]

    def job() -> float:
        start = time.perf_counter()
        with mock.patch.object(experiment, "build_model", timed_model):
            result = experiment.train_and_test(cfg, work / f"job_{cell}_{len(models['job'])}")
        if result["status"] != "ok":
            raise RuntimeError(f"bench job {cell} ended {result['status']}: {result.get('error')}")
        return time.perf_counter() - start

    def bare() -> float:
        start = time.perf_counter()
        L.seed_everything(cfg.seed, verbose=False)
        dm, model = build_datamodule(cfg), _model(cfg)
        models["bare"].append(model)
        trainer = bare_trainer(cfg)
        trainer.fit(model, datamodule=dm)
        trainer.test(model, datamodule=dm, verbose=False)
        return time.perf_counter() - start

    walls = interleaved({"job": job, "bare": bare}, opts.run_reps)
    steps_s = {name: [m.train_seconds for m in ms] for name, ms in models.items()}
    overhead = {
        name: [wall - steps for wall, steps in zip(walls[name], steps_s[name], strict=True)]
        for name in walls
    }
    return {
        "cell": cell,
        "epochs": cfg.trainer.max_epochs,
        "job_s": median(walls["job"]),
        "train_steps_s": median(steps_s["job"]),
        "overhead_s": median(overhead["job"]),
        "fit_outside_steps_s": median(
            [m.fit_seconds - m.train_seconds for m in models["job"] if m.fit_seconds is not None]
        ),
        "bare_job_s": median(walls["bare"]),
        "bare_overhead_s": median(overhead["bare"]),
        "checkpoint_saves": median([m.checkpoint_saves for m in models["job"]]),
    }


def job_parts(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """What two of a job's features cost, each timed alone (model=scratch): one checkpoint
    save, and drawing and encoding the four figures of a finished run."""
    cfg = compose(["trainer.max_epochs=1", "trainer.enable_progress_bar=false"])
    L.seed_everything(cfg.seed, verbose=False)
    dm, model = build_datamodule(cfg), _model(cfg)
    trainer = build_trainer(cfg, work / "parts")
    trainer.fit(model, datamodule=dm)
    path = work / "parts" / "timed.ckpt"

    def save() -> float:
        start = time.perf_counter()
        trainer.save_checkpoint(path, weights_only=False)  # what both callbacks save
        return time.perf_counter() - start

    def draw() -> float:
        start = time.perf_counter()
        for fig in figures.final_figures(model, dm).values():
            figures.to_png(fig)
        return time.perf_counter() - start

    times = interleaved({"save": save, "figures": draw}, max(opts.reps, 3))
    return {
        "checkpoint_save_ms": 1e3 * median(times["save"]),
        "figures_s": median(times["figures"]),
    }


def bench_jobs(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    rows = [_job_row(cell, opts, work) for cell in CELL_NAMES]
    return {"rows": rows, "parts": job_parts(opts, work)}


def bench_run(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    python, train = sys.executable, str(ROOT / "train.py")
    common = [f"threads={opts.threads}", *opts.job_overrides]
    jobs = ",".join(CELL_NAMES)
    runs = iter(range(10**6))
    rss: dict[str, list[float]] = {"import": [], "run": [], "sweep": []}

    def measure(name: str, args: Callable[[int], list[str]]) -> Callable[[], float]:
        def fn() -> float:
            wall, peak = run_process(args(next(runs)), ROOT)
            rss[name].append(peak)
            return wall

        return fn

    fns = {
        "import": measure("import", lambda i: [python, "-c", "import torch, lightning, hydra"]),
        "run": measure("run", lambda i: [python, train, f"hydra.run.dir={work}/run{i}", *common]),
        "sweep": measure(
            "sweep",
            lambda i: [
                python,
                train,
                "-m",
                f"model={jobs}",
                f"hydra.sweep.dir={work}/sw{i}",
                *common,
            ],
        ),
    }
    times = interleaved(fns, opts.run_reps)
    walls = {name: median(t) for name, t in times.items()}
    return {
        "import_s": walls["import"],
        "run_s": walls["run"],
        "sweep_s": walls["sweep"],
        "sweep_jobs": len(CELL_NAMES),
        "run_minus_import_s": walls["run"] - walls["import"],
        "sweep_job_s": (walls["sweep"] - walls["import"]) / len(CELL_NAMES),
        "import_peak_rss_mib": max(rss["import"]),
        "run_peak_rss_mib": max(rss["run"]),
        "sweep_peak_rss_mib": max(rss["sweep"]),
        "times": times,
        "overrides": opts.job_overrides,
    }


def default_run_steps(loop: dict[str, Any], opts: argparse.Namespace) -> dict[str, Any]:
    """The training steps of a default run (model=scratch) timed at [loop]'s per-step speeds:
    how much of the run's wall time is training that no loop can avoid."""
    row = loop["rows"][0]
    steps = row["steps"] // loop["epochs"] * compose(opts.job_overrides).trainer.max_epochs
    return {
        "run_steps": steps,
        "run_steps_plain_s": steps * row["plain_ms_per_step"] / 1e3,
        "run_steps_project_s": steps * row["project_ms_per_step"] / 1e3,
    }


# -- report ----------------------------------------------------------------------------------
def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met."""
    found = []

    def add(name: str, value: float | None, limit: float, higher_is_better: bool) -> None:
        if value is None:
            return
        met = value >= limit if higher_is_better else value <= limit
        op = ">=" if higher_is_better else "<="
        found.append({"target": f"{name} {op} {limit:g}", "value": value, "met": met})

    for row in report.get("loop", {}).get("rows", []):
        if row["empty_step"]:
            continue
        add(f"loop ratio, {row['cell']}", row["ratio"], TARGETS["loop_ratio_min"], True)
    for row in report.get("cells", []):
        if (row["batch_size"], row["seq_len"], row["hidden_size"]) == (256, 64, 64):
            for cell in ("scratch", "concat"):
                value = row[f"{cell}_ratio"]
                name = f"{cell}/nn.RNN fwd+bwd, 256x64x64 {row['nonlinearity']}"
                add(name, value, TARGETS["cell_ratio_max"], False)
    if "data" in report:
        name = f"windows of {report['data']['points']:.0e} points, ms"
        add(name, report["data"]["views_ms"], TARGETS["windows_ms_max"], False)
    run = report.get("run", {})
    add(
        "train.py wall - import, s",
        run.get("run_minus_import_s"),
        TARGETS["run_minus_import_s_max"],
        False,
    )
    for row in report.get("job", {}).get("rows", []):
        name = f"per-job overhead (all but training steps), {row['cell']}, s"
        add(name, row["overhead_s"], TARGETS["job_overhead_s_max"], False)
    add(
        "per-job overhead in the 3-job sweep, s",
        run.get("sweep_job_overhead_s"),
        TARGETS["job_overhead_s_max"],
        False,
    )
    return found


def _size(row: dict[str, Any]) -> str:
    return f"{row['batch_size']}x{row['seq_len']}x{row['hidden_size']}"


def _print_loop(loop: dict[str, Any]) -> None:
    print(
        f"\n[loop] training samples/s at the default config{loop['overrides']}, "
        f"{loop['epochs']} epochs "
        "(project: time in training steps; epoch+ ms: validation, checkpoints and epoch-end "
        "logging per epoch, outside the steps)"
    )
    keys = ["steps", "plain_samples_per_s", "project_samples_per_s", "plain_ms_per_step"]
    keys += ["project_ms_per_step", "ratio", "epoch_overhead_ms", "bare_ms_per_step"]
    keys += ["bare_ratio", "bare_epoch_overhead_ms"]
    headers = ["cell", "BxLxH", "steps", "plain/s", "project/s", "plain ms", "proj ms", "ratio"]
    headers += ["epoch+ ms", "bare ms", "bare ratio", "bare epoch+"]
    rows = [[r["cell"], _size(r), *(r[k] for k in keys)] for r in loop["rows"]]
    print(table(headers, rows))
    print(
        "  bare: the same model and data under a Trainer with no logger, checkpoints or callbacks,"
        " the floor of any\n  project on Lightning's Trainer. The Trainer's own cost per step "
        f"(empty step, minus plain): project {loop['trainer_ms_per_step']:.2f} ms, "
        f"bare {loop['bare_trainer_ms_per_step']:.2f} ms"
    )


def _print_cells(cells: list[dict[str, Any]]) -> None:
    print("\n[cells] forward+backward ms per batch (input size 2), ratio to nn.RNN")
    ms = ("TorchRNN", "ScratchRNN", "ConcatRNN")
    ratios = ("scratch_ratio", "concat_ratio")
    rows = [
        [_size(r), r["nonlinearity"], *(r["ms"][n] for n in ms), *map(r.get, ratios)] for r in cells
    ]
    headers = ["BxLxH", "act", "nn.RNN", "Scratch", "Concat", "Scratch/RNN", "Concat/RNN"]
    print(table(headers, rows))


def _print_data(d: dict[str, Any]) -> None:
    print(f"\n[data] windows of {d['points']} points at L={d['seq_len']}")
    seed = "seed 002 list comprehension"
    if d["seed_extrapolated"]:
        seed += f" (extrapolated from {d['seed_measured_points']} points)"
    rows = [
        ["make_windows (views)", d["views_ms"], d["views_new_bytes"] / 2**20],
        [seed, d["seed_ms"], d["seed_new_bytes"] / 2**20],
    ]
    print(table(["method", "ms", "new MiB"], rows))


def _print_compile(rows: list[dict[str, Any]]) -> None:
    print("\n[compile] ScratchRNN forward+backward, torch.compile of the time step")
    keys = ("compile_s", "eager_ms", "compiled_ms", "speedup")
    table_rows = [[_size(r), *(r.get(k, r.get("error", "-")) for k in keys)] for r in rows]
    print(table(["BxLxH", "compile s", "eager ms", "compiled ms", "speed-up"], table_rows))


def _print_job(job: dict[str, Any]) -> None:
    rows, parts = job["rows"], job["parts"]
    print(
        "\n[job] one sweep job's rnnlab.experiment.run in this process: training steps against "
        "everything else\n(setup, validation, checkpoints, logging, test, figures, metrics.json)"
    )
    keys = ("epochs", "job_s", "train_steps_s", "overhead_s", "fit_outside_steps_s")
    keys += ("bare_job_s", "bare_overhead_s", "checkpoint_saves")
    headers = ["cell", "epochs", "job s", "steps s", "overhead s", "in fit s"]
    headers += ["bare job s", "bare overhead s", "ckpt saves"]
    print(table(headers, [[r["cell"], *(r[k] for k in keys)] for r in rows]))
    print(
        "  in fit s: the part of the overhead inside Trainer.fit (validation, checkpoints, logging)"
        "\n  bare: fit and test of the same model under a Trainer with no logger, checkpoints,"
        " callbacks or figures"
        f"\n  timed alone: one checkpoint save {parts['checkpoint_save_ms']:.1f} ms (best.ckpt when"
        " val/mse improves, last.ckpt every epoch), the four figures "
        f"{parts['figures_s']:.2f} s"
    )


def _print_run(r: dict[str, Any]) -> None:
    extra = f" with {' '.join(r['overrides'])}" if r["overrides"] else ""
    print(f"\n[run] whole processes{extra}")
    rows = [
        ["python -c 'import torch, lightning, hydra'", r["import_s"], r["import_peak_rss_mib"]],
        ["python train.py (default run)", r["run_s"], r["run_peak_rss_mib"]],
        [f"train.py -m model=... ({r['sweep_jobs']} jobs)", r["sweep_s"], r["sweep_peak_rss_mib"]],
    ]
    print(table(["process", "wall s", "peak RSS MiB"], rows))
    print(f"  train.py wall - import: {r['run_minus_import_s']:.2f} s")
    if "run_steps" in r:
        print(
            f"  of which the default run's {r['run_steps']} training steps, at [loop]'s speeds: "
            f"{r['run_steps_project_s']:.2f} s (plain loop: {r['run_steps_plain_s']:.2f} s)"
        )
    print(f"  sweep: {r['sweep_job_s']:.2f} s per job ((sweep wall - import) / jobs)")
    if "sweep_job_overhead_s" in r:
        print(
            f"  sweep: {r['sweep_job_overhead_s']:.2f} s per job besides its training steps "
            "(per job, minus [job]'s steps s)"
        )
    print("  the jobs of a sweep share one process: its peak RSS is that of the largest job")


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"rnnlab bench: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['torch_threads']} torch "
        f"thread(s), device {m['device']}; torch {m['torch']}, lightning {m['lightning']}, "
        f"Python {m['python']}; medians of {report['settings']['reps']} interleaved repetitions"
    )
    printers = {
        "loop": _print_loop,
        "cells": _print_cells,
        "data": _print_data,
        "compile": _print_compile,
        "job": _print_job,
        "run": _print_run,
    }
    for section, printer in printers.items():
        if section in report:
            printer(report[section])
    quick = report["settings"].get("quick")
    # --quick checks that everything runs: 1-epoch fits of tiny sizes say nothing about targets
    print(
        "\n[targets]"
        + (" (--quick: tiny sizes, one repetition: not a measurement)" if quick else "")
    )
    rows = [[t["target"], t["value"], "met" if t["met"] else "NOT met"] for t in report["targets"]]
    print(table(["target", "measured", ""], rows))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions per measurement")
    parser.add_argument("--run-reps", type=int, default=2, help="repetitions in [job], [run]")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (train.py: threads)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per fit in [loop]")
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES), help="[cells] BxLxH list")
    parser.add_argument("--compile-sizes", default="32x4x32,256x64x64", help="[compile] BxLxH")
    parser.add_argument("--points", type=int, default=10**6, help="[data] series length")
    parser.add_argument("--seed-points", type=int, default=5000, help="[data] seed way at")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per cell measurement")
    parser.add_argument("--device", default="cpu", help="cpu or cuda ([loop], [cells], [compile])")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument(
        "--overrides",
        nargs="*",
        default=[],
        help="config overrides for [loop], e.g. data.batch_size=256",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, one repetition, 1-epoch runs, no compile: checks that it works",
    )
    opts = parser.parse_args(argv)
    default = [s for s in SECTIONS if not (opts.quick and s == "compile")]
    opts.sections = default if opts.sections is None else opts.sections.split(",")
    unknown = set(opts.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    opts.job_overrides = []
    if opts.quick:
        opts.reps, opts.run_reps, opts.epochs, opts.budget = 1, 1, 1, 0.01
        opts.sizes, opts.compile_sizes = "8x4x8", "8x4x8"
        opts.points, opts.seed_points = 10**4, 500
        opts.job_overrides = ["trainer.max_epochs=1"]
    opts.sizes = opts.sizes.split(",")
    opts.compile_sizes = opts.compile_sizes.split(",")
    return opts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = parse_args(argv)
    torch.set_num_threads(opts.threads)
    quiet_known_warnings()
    report: dict[str, Any] = {
        "machine": machine_info(opts.threads, opts.device),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
    }
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
        work = Path(tmp)
        if "loop" in opts.sections:
            report["loop"] = bench_loop(opts, work)
        if "cells" in opts.sections:
            report["cells"] = bench_cells(opts)
        if "data" in opts.sections:
            report["data"] = bench_data(opts)
        if "compile" in opts.sections:
            report["compile"] = bench_compile(opts)
        if "job" in opts.sections:
            report["job"] = bench_jobs(opts, work)
        if "run" in opts.sections:
            report["run"] = bench_run(opts, work)
            if "loop" in report and not opts.overrides:
                report["run"].update(default_run_steps(report["loop"], opts))
            if "job" in report:  # the same three configurations: overhead per sweep job
                steps_s = statistics.mean(r["train_steps_s"] for r in report["job"]["rows"])
                report["run"]["sweep_job_overhead_s"] = report["run"]["sweep_job_s"] - steps_s
    report["targets"] = targets(report)
    print_report(report)
    text = json.dumps(report, indent=2)
    if opts.json is not None:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(text + "\n")
        print(f"\nJSON: {opts.json}")
    else:
        print(f"\n{text}")
    return report


if __name__ == "__main__":
    main()
