"""What the sections share: interleaved repetitions and medians, a clock on the Trainer's hooks,
the bare Trainer, the machine, the config, the table printer and the targets."""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlab.analysis.text import fmt
from rnnlab.bench.checkout import checkout as checkout  # the sections' (torch-free: __main__'s too)
from rnnlab.bench.checkout import compose as compose
from rnnlab.internals import no_profiler
from rnnlab.training.experiment import quiet_known_warnings

TARGETS = {
    "loop_ratio_min": 0.85,
    "cell_ratio_max": 1.1,
    "windows_ms_max": 50.0,
    "run_minus_import_s_max": 3.0,
    "job_overhead_s_max": 1.0,
    "replicas_sweep_speedup_min": 3.0,
    "fused_total_min": 5.0,  # [fused]: the five studies, joblib (2 jobs) wall / fused wall
    "fused_study_min": 3.0,  # each study
    "fused_diff_max": 1e-5,  # every network's largest relative difference between the two
}
# [replicas]: per cell, R and the most a job of R replicas may take, times the R=1 job's fit
REPLICA_TARGETS = {"scratch": (16, 2.0), "concat": (16, 2.0), "torch": (8, 3.2)}


# -- timing ----------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved(fns: dict[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """Run ``fns`` in turn ``reps`` times (A, B, A, B, ...); each returns one measurement."""
    results: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            results[name].append(fn())
    return results


def sync(device: str) -> None:
    """Wait for the device, so that a clock read afterwards includes its queued work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def fwd_bwd_seconds(cell: torch.nn.Module, x: torch.Tensor, iters: int, device: str) -> float:
    """Seconds per forward and backward pass of ``cell`` over ``x``."""
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        cell.zero_grad(set_to_none=True)
        out, _ = cell(x)
        out.sum().backward()
    sync(device)
    return (time.perf_counter() - start) / iters


def iterations(fn: Callable[[int, str], float], device: str, budget: float) -> int:
    """Iterations of ``fn(iters, device)`` per measurement so that one takes about ``budget``
    seconds."""
    once = fn(1, device)
    return max(1, min(1000, int(budget / max(once, 1e-6))))


class StepClock(Callback):
    """Time in training steps (from each epoch's start to its validation, or its end), time in
    ``fit``, and checkpoint saves: read from hooks Lightning calls anyway, nothing per step."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.fit_seconds: float | None = None
        self.checkpoint_saves = 0
        self._epoch_start: float | None = None
        self._fit_start = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_start

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.checkpoint_saves += 1

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sync(str(pl_module.device))
        self._epoch_start = time.perf_counter()

    def _stop(self, pl_module: L.LightningModule) -> None:
        if self._epoch_start is not None:
            sync(str(pl_module.device))
            self.train_seconds += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop(pl_module)


def bare_trainer(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> L.Trainer:
    """The least a Lightning project can run: the configured Trainer (epochs, device, clipping)
    with no logger, no checkpoints and no callbacks but ``callbacks`` (the bench's clock). What
    it costs beyond a plain loop is the floor of any project built on Lightning's Trainer, this
    one included."""
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    kwargs.update(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        profiler=no_profiler(),
        callbacks=list(callbacks),
    )
    return L.Trainer(**kwargs)


# -- the process, the machine and the config -------------------------------------------------
def set_up_process(threads: int) -> None:
    """Run as train.py's jobs do: ``threads`` torch threads, Lightning's expected messages off."""
    torch.set_num_threads(threads)
    quiet_known_warnings()


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


# -- report ----------------------------------------------------------------------------------
def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[_cell(v) for v in row] for row in rows]]
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


def _cell(value: Any) -> str:
    """A number as the analysis writes it (rnnlab.analysis.text.fmt), but whole from 1000 up:
    rates and sizes read better as 12345 than as 1.23e+04."""
    if isinstance(value, float) and math.isfinite(value) and abs(value) >= 1000:
        return f"{value:.0f}"
    return fmt(value) if isinstance(value, float) or value is None else str(value)


def size(row: dict[str, Any]) -> str:
    return f"{row['batch_size']}x{row['seq_len']}x{row['hidden_size']}"


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
    replicas = report.get("replicas", {})
    for row in replicas.get("rows", []):
        if REPLICA_TARGETS.get(row["cell"], (None,))[0] == row["replicas"]:
            name = f"replicas={row['replicas']} fit / replicas=1 fit, {row['cell']}"
            add(name, row["ratio"], REPLICA_TARGETS[row["cell"]][1], False)
    studies = report.get("fused", {}).get("studies", [])
    if len(studies) == 5:  # every study of conf/study/, fused against one job per configuration
        total = sum(row["joblib_s"] for row in studies) / sum(row["fused_s"] for row in studies)
        add("five studies: joblib wall / fused wall", total, TARGETS["fused_total_min"], True)
    for row in studies:
        name = f"study={row['study']}"
        add(f"{name}: joblib wall / fused wall", row["speedup"], TARGETS["fused_study_min"], True)
        add(f"{name}: largest rel. diff", row["largest_rel_diff"], TARGETS["fused_diff_max"], False)
    e2e = replicas.get("end_to_end", {})
    add(
        f"sweep of {e2e.get('seeds')} seeds: separate wall / replicas wall",
        e2e.get("speedup"),
        TARGETS["replicas_sweep_speedup_min"],
        True,
    )
    return found
