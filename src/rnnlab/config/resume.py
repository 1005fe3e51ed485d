"""Resuming a stopped run in its own directory: ``python train.py resume=<run dir>``.

The run's saved overrides (``.hydra/overrides.yaml``) are replayed before any new ones, Hydra is
pointed at the same directory (so TensorBoard keeps writing to the same ``tb/`` run) and told
not to overwrite the run's ``.hydra/`` record, and training restarts from
``checkpoints/last.ckpt``, the end of the last finished epoch. A run whose checkpoint is missing
or was made for another model is an error, never a silent fresh start. A damaged (cut off,
corrupted) ``last.ckpt`` is set aside, kept, and the newest intact checkpoint is resumed from
instead, with a warning saying which; if none is intact, that is the error.
"""

from __future__ import annotations

import logging
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from rnnlab.config import choices
from rnnlab.config.errors import ConfigError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
KEY = "resume"
#: What a resumed run may change: how long and how it trains (``trainer``), and the keys
#: without effect on results; not what it trains.
CHANGEABLE = ("trainer", *choices.NO_EFFECT)
#: The changeable keys a user types (``hydra`` and ``resume`` itself go without saying).
_TYPED = ", ".join(k for k in CHANGEABLE if k not in ("hydra", KEY))


def last_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


def resume_command(run_dir: Path) -> str:
    return f"python train.py resume={shlex.quote(str(run_dir))}"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value


def expand_resume(argv: list[str]) -> list[str]:
    """Rewrite a command line holding ``resume=<run dir>`` into the run's own overrides, the new
    ones (which win), and the run's directory. Idempotent, so Lightning's DDP re-launch of the
    rewritten command line leaves it as it is."""
    given = [a for a in argv if _key(a) == KEY and not a.startswith("~")]
    if not given or _unquote(given[-1].split("=", 1)[1]) in ("", "null"):
        return argv
    raw = _unquote(given[-1].split("=", 1)[1])
    if "-m" in argv or "--multirun" in argv:
        return expand_sweep_resume(argv, given[-1], raw)
    run_dir = Path(raw).expanduser().resolve()
    if (run_dir / SWEEP_CONFIG).is_file():
        raise ConfigError(
            f"resume={raw} is a sweep directory; resume the sweep with -m: "
            f"python train.py -m resume={raw}"
        )
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"resume={raw} is not allowed; expected a run directory (one with .hydra/ and "
            f"{CHECKPOINT_DIR}/), and {saved} does not exist"
        )
    if not checkpoint_files(run_dir):
        raise ConfigError(
            f"resume={raw}: no checkpoint to resume from ({last_checkpoint(run_dir)} does not "
            "exist: the run stopped before its first epoch ended); start it again without resume="
        )
    saved_overrides = read_overrides(saved, raw)
    check_saved_config(run_dir / ".hydra" / "config.yaml", raw)
    new = _new_overrides(argv, saved_overrides, raw, "run")
    new_keys = {_key(a) for a in new}
    replayed = [o for o in saved_overrides if _key(o) not in new_keys]
    at = argv.index(given[-1])
    quoted = f'"{run_dir}"'
    expanded = [*argv[:at], *replayed, f"{KEY}={quoted}", *argv[at + 1 :]]
    # The run's own directory, without overwriting its .hydra/ record of how it was started.
    here = [f"hydra.run.dir={quoted}", "hydra.output_subdir=null"]
    return expanded + [a for a in here if a not in expanded]


#: A sweep directory's record of how the sweep was started (Hydra writes it).
SWEEP_CONFIG = "multirun.yaml"


def _new_overrides(argv: list[str], saved: list[str], raw: str, what: str) -> list[str]:
    """The overrides ``argv`` adds to a resumed run's or sweep's ``saved`` ones, refusing any
    that would change what it trains."""
    new = [a for a in argv if "=" in a and not a.startswith("-") and _key(a) != KEY]
    for arg in new:
        if arg not in saved and _key(arg).split(".")[0] not in CHANGEABLE:
            raise ConfigError(
                f"resume={raw} cannot change {arg}: a resumed {what} keeps its model, data and "
                f"seed (only {_TYPED} may change); start a new {what} instead"
            )
    return new


def expand_sweep_resume(argv: list[str], given: str, raw: str) -> list[str]:
    """``python train.py -m resume=<sweep dir>``: the sweep's own overrides (its
    ``multirun.yaml``: the task's, and the launcher and other Hydra settings it ran with), the
    new ones, and the sweep's directory. Each job is given ``resume=<sweep dir>``
    (:func:`checkpoint_to_resume`): a finished one is kept, an interrupted one continues from
    its checkpoint (a fused pack from the pack's), one never started starts."""
    sweep_dir = Path(raw).expanduser().resolve()
    saved = sweep_dir / SWEEP_CONFIG
    if not saved.is_file():
        hint = " (resume one run without -m)" if (sweep_dir / ".hydra").is_dir() else ""
        raise ConfigError(
            f"resume={raw} is not allowed with -m; expected a sweep directory (one with "
            f"{SWEEP_CONFIG}), and {saved} does not exist{hint}"
        )
    try:
        hydra = OmegaConf.load(saved).hydra
        task = [str(o) for o in hydra.overrides.task]
        settings = [str(o) for o in hydra.overrides.hydra]
        sweeper = str(OmegaConf.select(hydra, "sweeper._target_", default=""))
    except Exception as err:
        raise ConfigError(f"resume={raw}: {saved} cannot be read: {_reason(err)}") from err
    if "BasicSweeper" not in sweeper:
        raise ConfigError(
            f"resume={raw} cannot resume this sweep: its sweeper ({sweeper.rsplit('.', 1)[-1]}) "
            "chooses each trial from the ones before and does not save its state; start it again"
        )
    task = [o for o in task if _key(o) != KEY]
    new = _new_overrides(argv, task, raw, "sweep")
    new_keys = {_key(a) for a in new}
    skip = {"hydra.sweep.dir", "hydra.mode", *new_keys}
    replayed = [o for o in settings if _key(o) not in skip]
    replayed += [o for o in task if _key(o) not in new_keys]
    at = argv.index(given)
    quoted = f'"{sweep_dir}"'
    expanded = [*argv[:at], *replayed, f"{KEY}={quoted}", *argv[at + 1 :]]
    return [*expanded, f"hydra.sweep.dir={quoted}"]


def _differences(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for k in sorted(set(old) | set(new), key=str)
            for d in _differences(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        ]
    return [] if old == new else [f"{prefix} (was {old}, now {new})"]


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues: its last checkpoint, after ``epochs_done`` epochs."""

    path: Path
    epochs_done: int


def checkpoint_to_resume(cfg: DictConfig, run_dir: Path) -> ResumePoint | None:
    """The checkpoint ``trainer.fit`` resumes from (None for a fresh run), after checking that
    it was made by this run's model, data and seed."""
    if cfg[KEY] is None:
        return None
    resume_dir = Path(cfg[KEY])
    if resume_dir.resolve() == Path(run_dir).resolve().parent:  # a job of a resumed sweep
        if not checkpoint_files(run_dir):
            return None  # it never finished an epoch: it starts
        resume_dir = Path(run_dir)
    if resume_dir.resolve() != Path(run_dir).resolve():
        raise ConfigError(f"resume={resume_dir} must run in that directory, not in {run_dir}")
    saved_cfg = resume_dir / ".hydra" / "config.yaml"
    if saved_cfg.is_file():
        keep = [k for k in cfg if k not in CHANGEABLE]
        old = OmegaConf.to_container(OmegaConf.load(saved_cfg), resolve=True)
        new = OmegaConf.to_container(cfg, resolve=True)
        changed = _differences({k: old.get(k) for k in keep}, {k: new.get(k) for k in keep}, "")
        if changed:
            raise ConfigError(
                f"resume={resume_dir} cannot change {changed[0]}: a resumed run keeps its model, "
                f"data and seed (only {_TYPED} may change); start a new run instead"
            )
    path, checkpoint = newest_intact_checkpoint(resume_dir)
    set_aside_damaged_log(resume_dir)
    wanted = OmegaConf.to_container(cfg.model, resolve=True)
    check_hparams(checkpoint.get("hyper_parameters", {}), wanted, path)
    # Lightning warns that checkpoints/ is not empty: expected, it is the run being resumed.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # Saved at the end of epoch index e, the checkpoint holds e + 1 finished epochs.
    return ResumePoint(path, int(checkpoint.get("epoch", -1)) + 1)


def check_hparams(saved: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    """A clear error instead of a tensor-shape traceback when a checkpoint holds another model."""
    changed = [
        f"model.{k}={wanted[k]} (checkpoint: {saved[k]})"
        for k in wanted
        if k in saved and saved[k] != wanted[k]
    ]
    if changed:
        raise ConfigError(f"checkpoint {path} was trained with another model: {'; '.join(changed)}")


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The run's checkpoints, in the order resuming tries them: ``last.ckpt``, then the others
    (``best.ckpt``, Lightning's versioned copies), newest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    last = last_checkpoint(run_dir)
    others = [p for p in folder.glob("*.ckpt") if p != last and p.is_file()]
    others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [last, *others] if last.is_file() else others


def _reason(err: BaseException) -> str:
    """Why a file could not be read, in a few words (torch's own messages span paragraphs)."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first[:80]}" if first else type(err).__name__


def _load(path: Path) -> tuple[Any, str | None]:
    """A YAML record of the run, or None and why it cannot be read."""
    try:
        return OmegaConf.load(path), None
    except Exception as err:  # YAML's and OmegaConf's errors, and a file that cannot be read
        return None, _reason(err)


def read_overrides(saved: Path, raw: str) -> list[str]:
    """The overrides a run was started with (``.hydra/overrides.yaml``), or a one-line error
    when the file is damaged: replaying half of them would resume another run."""
    loaded, reason = _load(saved)
    if isinstance(loaded, ListConfig) and all(isinstance(o, str) for o in loaded):
        return [str(o) for o in loaded]
    raise ConfigError(
        f"resume={raw}: {saved} is damaged ({reason or 'not a list of overrides'}); it records "
        "how the run was started: restore it, or start a new run"
    )


def check_saved_config(path: Path, raw: str) -> None:
    """A damaged ``.hydra/config.yaml`` (the run's composed config, against which a resumed
    run's config is compared) is a one-line error, not a traceback from the comparison."""
    if not path.is_file():
        return  # nothing to compare against: the replayed overrides and the checkpoint decide
    loaded, reason = _load(path)
    if not isinstance(loaded, DictConfig):
        raise ConfigError(
            f"resume={raw}: {path} is damaged ({reason or 'not a mapping'}); restore it, or "
            "move it away to resume without checking that the model, data and seed are unchanged"
        )


def _set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint so that training writes a new one beside it, never over it."""
    aside = path.with_name(path.name + ".unreadable")
    n = 1
    while aside.exists():
        aside, n = path.with_name(f"{path.name}.unreadable{n}"), n + 1
    path.rename(aside)
    return aside


def newest_intact_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The first of :func:`checkpoint_files` that loads as a Lightning checkpoint, and its
    contents. The damaged ones tried before it (a ``last.ckpt`` cut off by a kill or a full
    disk) are renamed ``<name>.unreadable``, kept, and a warning names them and the checkpoint
    used. None intact: a one-line error, and the files stay as they are."""
    import torch

    damaged: list[tuple[Path, str]] = []
    for path in checkpoint_files(run_dir):
        try:
            with warnings.catch_warnings():  # torch's remarks on a damaged file's pickle
                warnings.simplefilter("ignore")
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises OSError, RuntimeError, EOFError, pickle errors
            damaged.append((path, type(err).__name__))  # torch's messages say nothing more
            continue
        if not (isinstance(checkpoint, dict) and "state_dict" in checkpoint):
            damaged.append((path, "not a Lightning checkpoint"))
            continue
        for bad, reason in damaged:
            aside = _set_aside(bad)
            log.warning(
                "%s is damaged (%s); kept as %s; resuming from %s (after %d epochs) instead",
                bad,
                reason,
                aside.name,
                path,
                int(checkpoint.get("epoch", -1)) + 1,
            )
        return path, checkpoint
    folder = Path(run_dir) / CHECKPOINT_DIR
    listed = ", ".join(f"{p.name} ({reason})" for p, reason in damaged)
    raise ConfigError(
        f"resume={run_dir}: no checkpoint in {folder} can be loaded (damaged: {listed or 'none'}); "
        "start the run again without resume= (the damaged files are left as they are)"
    )


def set_aside_damaged_log(run_dir: Path) -> None:
    """A ``csv/metrics.csv`` that cannot be read back (it is rewritten whole at every epoch's
    end, so a kill can cut it off) would crash the resumed run when the CSV logger reads its
    rows: it is renamed ``metrics.csv.unreadable``, kept, with a warning, and the resumed run
    starts a new one. Read with the logger's own reader, so both agree on what is damaged."""
    from rnnlab.observe.csv_log import CSV_FILE, _EpochRows

    path = Path(run_dir) / CSV_FILE
    if not path.is_file():
        return
    try:
        _EpochRows(str(path.parent), resume=True)
    except Exception as err:  # a cut-off row, bytes that are not text, a missing column
        aside = _set_aside(path)
        log.warning(
            "%s is damaged (%s); kept as %s; the resumed run starts a new one (the epochs "
            "before it are in TensorBoard)",
            path,
            _reason(err),
            aside.name,
        )
        # Lightning then warns that csv/ is not empty and its logs "will be deleted": only the
        # new metrics.csv is written there, the kept one stays.
        warnings.filterwarnings("ignore", message=r"Experiment logs directory .* is not empty")
