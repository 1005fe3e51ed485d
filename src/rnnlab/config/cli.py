"""The command line around train.py's Hydra main: ``resume=`` and one-line config errors.

Hydra prints composition errors over several lines, and errors raised in a run with a stack
trace. Here Hydra is asked to raise them (``HYDRA_FULL_ERROR=1``), and the ones a user caused
(a bad config value, key, option or override; an unusable checkpoint; a run directory that
cannot be written) become a single line on stderr with exit status 2, also when they leave a
running job (:func:`in_job`). Set ``HYDRA_FULL_ERROR=1`` yourself to see the full trace instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from rnnlab.config import schema
from rnnlab.config.errors import ConfigError, no_such_key
from rnnlab.config.hydra_callbacks import InvalidConfig
from rnnlab.config.resume import expand_resume
from rnnlab.internals import is_lightning_config_error

EXIT_CONFIG_ERROR = 2
_show_traceback = False  # the user's own HYDRA_FULL_ERROR=1, as run() found it


def _as_given(key: str, argv: list[str]) -> str:
    """``key=value`` as typed on the command line, or just ``key``."""
    for arg in reversed(argv):
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+~") == key:
            return f"{key}={value}"
    return key


def error_line(err: BaseException, argv: list[str]) -> str | None:
    """The one line for an error the user caused; None for anything else (a bug: re-raised)."""
    if isinstance(err, ConfigError | InvalidConfig):
        return str(err.code if isinstance(err, InvalidConfig) else err)
    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        group, _, name = err.missing_cfg_file.rpartition("/")
        return f"{group}={name} is not a known {group}; expected one of: {', '.join(err.options)}"
    cause = err.__cause__
    if isinstance(err, ConfigCompositionException) and getattr(cause, "full_key", None):
        key = cause.full_key
        if isinstance(cause, ConfigAttributeError | ConfigKeyError):
            parent = getattr(cause, "parent_node", None)
            keys = sorted(parent.keys()) if isinstance(parent, DictConfig) else []
            closed = key.rpartition(".")[0] in schema.CLOSED_SECTIONS
            return no_such_key(_as_given(key, argv), key, [str(k) for k in keys], closed)
        if isinstance(cause, ValidationError):
            expected = schema.expected_type(key)
            detail = f"expected {expected}" if expected else str(cause).splitlines()[0]
            return f"{key}={cause.value} is not allowed; {detail}"
    if isinstance(err, OverrideParseException):
        return f"could not parse an override: {str(err).splitlines()[0]} (quote values with spaces)"
    if isinstance(err, HydraException) or is_lightning_config_error(err):
        return " ".join(str(err).split())
    if isinstance(err, OSError):
        return unwritable_dir_line(err, output_dirs())
    return None


def run(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function with ``resume=`` expanded and one-line user errors."""
    global _show_traceback
    show_traceback = _show_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own report
    argv = sys.argv[1:]
    try:
        sys.argv[1:] = expand_resume(argv)
        main()
    except (Exception, InvalidConfig) as err:
        line = None if show_traceback else error_line(err, argv)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)


def in_job(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """train.py's task function, with an error the user caused that leaves the job (a
    checkpoint of another model, none intact, a run directory that cannot be written) raised
    as :class:`InvalidConfig`: Hydra writes "Error executing job with overrides" above any
    exception leaving a task, but lets a SystemExit through, so :func:`run` prints one line."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as err:
            line = None if _show_traceback else error_line(err, sys.argv[1:])
            if line is None:
                raise
            raise InvalidConfig(line) from err

    return wrapped


def output_dirs() -> list[tuple[Path, str]]:
    """The directory this run or sweep writes into, as far as Hydra has set it, each with the
    override that chooses another."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return []
    hydra = HydraConfig.get()
    key = "hydra.sweep.dir" if hydra.mode == RunMode.MULTIRUN else "hydra.run.dir"
    found = []
    for name in ("runtime.output_dir", "sweep.dir" if key == "hydra.sweep.dir" else "run.dir"):
        try:
            value = OmegaConf.select(hydra, name, default=None)
        except Exception:  # an interpolation that cannot be resolved here
            continue
        if value:
            found.append((Path(str(value)).absolute(), key))
    return found


def unwritable_dir_line(err: OSError, dirs: list[tuple[Path, str]]) -> str | None:
    """The line for a run or sweep directory that cannot be created or written (a read-only or
    full disk, a file in the way, /proc): ``err`` about one of ``dirs``, a folder above it or a
    file inside it; None for any other path (a bug: re-raised)."""
    if err.filename is None:
        return None
    path = Path(os.fsdecode(err.filename)).absolute()
    for folder, key in dirs:
        if path == folder or path in folder.parents or folder in path.parents:
            what = "sweep" if key == "hydra.sweep.dir" else "run"
            why = err.strerror or type(err).__name__
            if isinstance(err, FileExistsError | NotADirectoryError):
                why = "a file is in the way"
            return (
                f"cannot create or write the {what} directory {folder}: {why} ({path}); "
                f"choose another with {key}=DIR"
            )
    return None
