"""[fused] ``hydra/launcher=fused`` (rnnlab.training.fused): the studies end to end, fused
against one job per configuration; the cost per network against pack size; and mixed
activations, ``torch.where`` against rows sorted by activation.

- studies: each of ``conf/study/*.yaml`` as committed, ``python train.py -m study=<name>``
  with ``hydra/launcher=joblib hydra.launcher.n_jobs=2`` (the documented way to run them one
  job per configuration) and with ``hydra/launcher=fused hydra.launcher.n_jobs=2``, alternated,
  wall clock from outside; and every network's largest relative difference between the two
  over ``val/mse_best``, ``test/mse`` and ``test/rollout_mse``.
- pack sizes: one pack of N networks (seeds 0..N-1 of one configuration, the default one and
  the adding problem at length 50) trained for ``--fused-epochs`` epochs by the Trainer, no
  job outputs: the fit seconds per network, against the pack of one; with the process's peak
  RSS (CPU) or the device's peak memory (CUDA) after it.
- activation: one step of N stacked networks, half tanh and half ReLU, forward and backward.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from rnnlab import metrics as M
from rnnlab.bench.common import checkout, compose, interleaved, median, sync, table
from rnnlab.bench.run import run_process
from rnnlab.data.tasks import ReplicaDataModule
from rnnlab.models.cells import ACTIVATIONS, row_activation
from rnnlab.models.pack import PackForecaster
from rnnlab.training.experiment import build_datamodule, forecaster_kwargs, train_and_test

LAUNCHERS = {
    "joblib": ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
    "fused": ("hydra/launcher=fused", "hydra.launcher.n_jobs=2"),
}
#: The shapes of the pack-size curve: the default configuration, and the adding problem.
SHAPES = {"default": (), "adding L=50": ("data=adding", "data.n_train=2000")}
COMPARED = (M.VAL_MSE_BEST, M.TEST_MSE, M.TEST_ROLLOUT_MSE)


# -- studies ---------------------------------------------------------------------------------
def networks(sweep_dir: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every network's record of a sweep, by (job directory, seed)."""
    found = {}
    for path in sorted(Path(sweep_dir).glob("*/metrics.json")):
        record = json.loads(path.read_text())
        for net in record.get("replicas") or [record]:
            found[path.parent.name, net.get("seed", record["config"]["seed"])] = net
    return found


def largest_difference(a: Path, b: Path) -> tuple[float, int, int]:
    """The largest relative difference between two sweeps' networks over ``COMPARED``, the
    networks compared, and those whose status differs."""
    mine, theirs = networks(a), networks(b)
    worst, status = 0.0, 0
    for key, net in theirs.items():
        other = mine.get(key, {})
        status += other.get("status") != net.get("status")
        for metric in COMPARED:
            x, y = other.get(metric), net.get(metric)
            if x is not None and y is not None:
                worst = max(worst, abs(x - y) / max(abs(y), 1e-30))
    return worst, len(theirs), status


def _study_sweep(study: str, name: str, opts: argparse.Namespace, work: Path, dirs: list) -> Any:
    """A function running ``study`` with launcher ``name`` once: its wall seconds."""
    root = checkout()

    def fn() -> float:
        out = work / f"fused_{study}_{name}_{len(dirs)}"
        dirs.append(out)
        args = [sys.executable, str(root / "train.py"), "-m", f"study={study}", *LAUNCHERS[name]]
        wall, _ = run_process([*args, *opts.fused_overrides, f"hydra.sweep.dir={out}"], root)
        return wall

    return fn


def studies(opts: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows = []
    for study in opts.fused_studies:
        dirs: dict[str, list[Path]] = {name: [] for name in LAUNCHERS}
        runs = {name: _study_sweep(study, name, opts, work, dirs[name]) for name in LAUNCHERS}
        times = interleaved(runs, opts.fused_reps)
        worst, count, status = largest_difference(dirs["fused"][-1], dirs["joblib"][-1])
        walls = {name: median(t) for name, t in times.items()}
        rows.append(
            {
                "study": study,
                "joblib_s": walls["joblib"],
                "fused_s": walls["fused"],
                "speedup": walls["joblib"] / walls["fused"],
                "networks": count,
                "largest_rel_diff": worst,
                "status_differs": status,
                "times": times,
            }
        )
    return rows


# -- pack sizes ------------------------------------------------------------------------------
def _peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def pack_fit_seconds(overrides: list[str], n: int, epochs: int, device: str) -> float:
    """Seconds of ``trainer.fit`` of a pack of ``n`` networks of one configuration (seeds
    0..n-1), ``epochs`` epochs, no job outputs."""
    cfg = compose([*overrides, f"trainer.max_epochs={epochs}"])
    members = []
    for seed in range(n):
        cfg.seed = seed
        members.append(build_datamodule(cfg))
    kwargs = forecaster_kwargs(cfg)
    pack = PackForecaster([{"seed": s, **kwargs} for s in range(n)])
    trainer = L.Trainer(
        accelerator="cuda" if device.startswith("cuda") else "cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    dm = ReplicaDataModule(members)
    dm.setup("fit")
    sync(device)
    start = time.perf_counter()
    trainer.fit(pack, datamodule=dm)
    sync(device)
    return time.perf_counter() - start


def lone_job(overrides: list[str], opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One ordinary job of the shape (train.py's driver, figures off): its fit seconds and
    its whole time, what a network costs when each has its job."""
    cfg = compose([*overrides, f"trainer.max_epochs={opts.fused_epochs}", "logger.figures=false"])
    cfg.trainer.accelerator = "gpu" if opts.device.startswith("cuda") else "cpu"
    result = train_and_test(cfg, work / f"fused_lone_{len(list(work.iterdir()))}")
    return {"fit_s": result["fit_seconds"], "time_s": result["time_s"]}


def pack_sizes(opts: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows = []
    for shape, overrides in SHAPES.items():
        pack_fit_seconds(list(overrides), 1, 1, opts.device)  # warm-up: imports, first kernels
        lone = lone_job(list(overrides), opts, work)
        rows.append(
            {"shape": shape, "networks": "one job", **lone, "s_per_network": lone["time_s"]}
        )
        one = None
        for n in sorted(opts.pack_sizes):
            if opts.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            fits = [
                pack_fit_seconds(list(overrides), n, opts.fused_epochs, opts.device)
                for _ in range(opts.reps if n <= 64 else 1)
            ]
            fit = median(fits)
            one = fit if one is None else one
            rows.append(
                {
                    "shape": shape,
                    "networks": n,
                    "fit_s": fit,
                    "s_per_network": fit / n,
                    "cheaper_than_one": one / (fit / n),
                    "cheaper_than_a_job": lone["time_s"] / (fit / n),
                    "peak_mib": _peak_mib(opts.device),
                }
            )
            print(f"  [fused] {shape}: {n} networks, {fit:.3g} s", file=sys.stderr)
    return rows


# -- activation ------------------------------------------------------------------------------
def _backward_us(act: Any, z: torch.Tensor, device: str) -> Any:
    """A function timing forward and backward of ``act`` over ``z``: microseconds per pass."""

    def fn() -> float:
        iters = max(3, 2000 // len(z))
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            act(z).sum().backward()
        sync(device)
        return (time.perf_counter() - start) / iters * 1e6

    return fn


def _where(names: list[str], device: str) -> Any:
    """Each row's activation, both computed everywhere and one picked with torch.where."""
    relu = torch.tensor([name == "relu" for name in names], device=device).view(-1, 1, 1)
    return lambda z: torch.where(relu, ACTIVATIONS["relu"](z), ACTIVATIONS["tanh"](z))


def activation(opts: argparse.Namespace) -> list[dict[str, Any]]:
    """Forward and backward of one activation over ``(N, 32, 32)`` states, half the rows tanh
    and half ReLU: per row with torch.where, and by runs of sorted rows."""
    rows = []
    for n in (16, 256, 4096):
        names = ["tanh"] * (n // 2) + ["relu"] * (n - n // 2)
        z = torch.randn(n, 32, 32, device=opts.device, requires_grad=True)
        ways = {"where": _where(names, opts.device), "sorted runs": row_activation(names)}
        fns = {name: _backward_us(act, z, opts.device) for name, act in ways.items()}
        us = {name: median(t) for name, t in interleaved(fns, opts.reps).items()}
        rows.append({"networks": n, **{f"{k}_us": v for k, v in us.items()}})
        rows[-1]["where_over_sorted"] = us["where"] / us["sorted runs"]
    return rows


def measure(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    start = time.perf_counter()
    out: dict[str, Any] = {"activation": activation(opts), "pack_sizes": pack_sizes(opts, work)}
    out["epochs"] = opts.fused_epochs
    if opts.fused_studies:
        out["studies"] = studies(opts, work)
        out["study_reps"] = opts.fused_reps
        out["overrides"] = list(opts.fused_overrides)
    out["seconds"] = time.perf_counter() - start
    return out


def print_table(r: dict[str, Any]) -> None:
    print("\n[fused] mixed activations, forward and backward over (N, 32, 32), microseconds")
    keys = ("networks", "where_us", "sorted runs_us", "where_over_sorted")
    print(
        table(
            ["N", "torch.where", "sorted runs", "where / sorted"],
            [[a[k] for k in keys] for a in r["activation"]],
        )
    )
    print(
        f"\n[fused] one pack of N networks of one configuration, trainer.fit of {r['epochs']}"
        " epochs, no job outputs"
    )
    keys = ("shape", "networks", "fit_s", "s_per_network", "cheaper_than_one")
    keys += ("cheaper_than_a_job", "peak_mib")
    headers = ["shape", "N", "fit s", "s/network", "x cheaper than N=1", "x cheaper than a job"]
    headers.append("peak MiB")
    rows = [[row.get(k, "-") for k in keys] for row in r["pack_sizes"]]
    print(table(headers, rows))
    print(
        "  one job: an ordinary job of one network (figures off), its fit seconds and, as"
        " s/network, its whole time; x cheaper than a job: that time over the pack's"
        " s/network"
    )
    if "studies" in r:
        extra = f", with {' '.join(r['overrides'])}" if r["overrides"] else ""
        print(
            f"\n[fused] the studies end to end{extra}, wall seconds (median of {r['study_reps']},"
            " alternated): " + " against ".join(" ".join(v) for v in LAUNCHERS.values())
        )
        keys = ("study", "joblib_s", "fused_s", "speedup", "networks", "largest_rel_diff")
        headers = ["study", "joblib s", "fused s", "speed-up", "networks", "largest rel. diff"]
        rows = [[row[k] for k in keys] for row in r["studies"]]
        total = (
            sum(row["joblib_s"] for row in r["studies"]),
            sum(row["fused_s"] for row in r["studies"]),
        )
        rows.append(
            [
                "all",
                *total,
                total[0] / total[1],
                sum(row["networks"] for row in r["studies"]),
                max(row["largest_rel_diff"] for row in r["studies"]),
            ]
        )
        print(table(headers, rows))
        differ = sum(row["status_differs"] for row in r["studies"])
        print(f"  networks whose status differs between the launchers: {differ}")
