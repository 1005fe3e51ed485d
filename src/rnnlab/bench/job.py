"""[job] One sweep job's work in this process (``rnnlab.training.experiment.train_and_test``, which
every
job of a sweep calls), split into training steps and everything else, against a bare fit and
test of the same model; the checkpoint saves it made, and one save and the four figures timed
alone."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import lightning as L

from rnnlab.bench.common import (
    StepClock,
    bare_trainer,
    compose,
    interleaved,
    median,
    table,
)
from rnnlab.config.choices import VANILLA_CELLS as CELL_NAMES
from rnnlab.observe import diagnostics, figures
from rnnlab.training.experiment import build_datamodule, build_model, build_trainer, train_and_test


def job_row(cell: str, opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Time ``train_and_test`` with the bench's clock among its Trainer's callbacks, splitting
    training steps from everything else; and the same fit and test under the bare Trainer, the
    floor of a job on Lightning."""
    cfg = compose([f"model={cell}", "trainer.enable_progress_bar=false", *opts.job_overrides])
    clocks: dict[str, list[StepClock]] = {"job": [], "bare": []}

    def job() -> float:
        clock = StepClock()
        clocks["job"].append(clock)
        start = time.perf_counter()
        result = train_and_test(cfg, work / f"job_{cell}_{len(clocks['job'])}", [clock])
        if result["status"] != "ok":
            raise RuntimeError(f"bench job {cell} ended {result['status']}: {result.get('error')}")
        return time.perf_counter() - start

    def bare() -> float:
        clock = StepClock()
        clocks["bare"].append(clock)
        start = time.perf_counter()
        L.seed_everything(cfg.seed, verbose=False)
        dm, model = build_datamodule(cfg), build_model(cfg)
        trainer = bare_trainer(cfg, [clock])
        trainer.fit(model, datamodule=dm)
        trainer.test(model, datamodule=dm, verbose=False)
        return time.perf_counter() - start

    walls = interleaved({"job": job, "bare": bare}, opts.run_reps)
    steps_s = {name: [c.train_seconds for c in cs] for name, cs in clocks.items()}
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
            [c.fit_seconds - c.train_seconds for c in clocks["job"] if c.fit_seconds is not None]
        ),
        "bare_job_s": median(walls["bare"]),
        "bare_overhead_s": median(overhead["bare"]),
        "checkpoint_saves": median([c.checkpoint_saves for c in clocks["job"]]),
    }


def job_parts(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    """What a job's features cost, each timed alone (model=scratch): one checkpoint save,
    drawing and encoding the four figures of a finished run, and the gradient-flow diagnostics
    (once at initialisation and after every epoch) at the default window and at L=64."""
    cfg = compose(["trainer.max_epochs=1", "trainer.enable_progress_bar=false"])
    L.seed_everything(cfg.seed, verbose=False)
    dm, model = build_datamodule(cfg), build_model(cfg)
    trainer = build_trainer(cfg, work / "parts")
    trainer.fit(model, datamodule=dm)
    path = work / "parts" / "timed.ckpt"

    def save() -> float:
        start = time.perf_counter()
        trainer.save_checkpoint(path, weights_only=False)  # what both callbacks save
        return time.perf_counter() - start

    def draw() -> float:
        start = time.perf_counter()
        label = figures.run_label(model)
        for fig in figures.final_figures(model, dm, label, [cfg.seed]).values():
            figures.to_png(fig)
        return time.perf_counter() - start

    batch = next(iter(dm.val_dataloader()))
    long_cfg = compose(["data.seq_len=64"])
    long_model, long_dm = build_model(long_cfg), build_datamodule(long_cfg)
    long_dm.setup("fit")
    long_batch = next(iter(long_dm.val_dataloader()))

    def diagnose(model: Any, batch: Any) -> Any:
        def fn() -> float:
            start = time.perf_counter()
            diagnostics.diagnose(model.networks(), batch)
            return time.perf_counter() - start

        return fn

    times = interleaved(
        {
            "save": save,
            "figures": draw,
            "diagnose": diagnose(model, batch),
            "diagnose_64": diagnose(long_model, long_batch),
        },
        max(opts.reps, 3),
    )
    return {
        "checkpoint_save_ms": 1e3 * median(times["save"]),
        "figures_s": median(times["figures"]),
        "diagnostics_ms": 1e3 * median(times["diagnose"]),
        "diagnostics_L64_ms": 1e3 * median(times["diagnose_64"]),
    }


def measure(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    rows = [job_row(cell, opts, work) for cell in CELL_NAMES]
    return {"rows": rows, "parts": job_parts(opts, work)}


def print_table(job: dict[str, Any]) -> None:
    rows, parts = job["rows"], job["parts"]
    print(
        "\n[job] one sweep job's rnnlab.training.experiment.train_and_test in this process: "
        "training steps against everything else\n(setup, validation, checkpoints, logging, test, "
        "figures, metrics.json)"
    )
    keys = ("epochs", "job_s", "train_steps_s", "overhead_s", "fit_outside_steps_s")
    keys += ("bare_job_s", "bare_overhead_s", "checkpoint_saves")
    headers = ["cell", "epochs", "job s", "steps s", "overhead s", "in fit s"]
    headers += ["bare job s", "bare overhead s", "ckpt saves"]
    print(table(headers, [[r["cell"], *(r[k] for k in keys)] for r in rows]))
    print(
        "  in fit s: the part of the overhead inside Trainer.fit (validation, checkpoints, logging)"
        "\n  bare: fit and test of the same model under a Trainer with no logger, checkpoints,"
        " callbacks (the bench's clock aside) or figures"
        f"\n  timed alone: one checkpoint save {parts['checkpoint_save_ms']:.1f} ms (best.ckpt when"
        " val/mse improves, last.ckpt every epoch), the four figures "
        f"{parts['figures_s']:.2f} s, the gradient-flow diagnostics (per epoch, first validation"
        f" batch) {parts['diagnostics_ms']:.1f} ms at the default L=4,"
        f" {parts['diagnostics_L64_ms']:.1f} ms at L=64"
    )
