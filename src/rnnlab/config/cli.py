"""The command line around train.py's Hydra main: ``resume=`` and one-line config errors.

Hydra prints composition errors over several lines, and errors raised in a run with a stack
trace. Here Hydra is asked to raise them (``HYDRA_FULL_ERROR=1``), and the ones a user caused
(a bad config value, key, option or override; an unusable checkpoint) become a single line on
stderr with exit status 2. Set ``HYDRA_FULL_ERROR=1`` yourself to see the full trace instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from rnnlab.config import schema
from rnnlab.config.errors import ConfigError, no_such_key
from rnnlab.config.hydra_callbacks import InvalidConfig
from rnnlab.config.resume import expand_resume
from rnnlab.internals import is_lightning_config_error

EXIT_CONFIG_ERROR = 2


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
    return None


def run(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function with ``resume=`` expanded and one-line user errors."""
    show_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
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
