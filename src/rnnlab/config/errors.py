"""The one-line errors a user sees for input a run cannot use (torch-free)."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """A config a run cannot use. Its message is the single line the user sees."""


def show(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def invalid(key: str, value: Any, expected: str) -> ConfigError:
    """The one-line error: the key, the bad value and what is allowed."""
    return ConfigError(f"{key}={show(value)} is not allowed; expected {expected}")


def did_you_mean(key: str, choices: Sequence[str], parent: str = "") -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    prefix = f"{parent}." if parent else ""
    return f"did you mean {prefix}{close[0]}? " if close else ""


def no_such_key(given: str, key: str, allowed: Sequence[str], closed: bool) -> str:
    """The line for a key the config does not have: ``given`` as the user wrote it, a guess
    from ``allowed``, and how to add it where the section is open (not ``closed``)."""
    parent, _, name = key.rpartition(".")
    listed = f"allowed keys: {', '.join(allowed)}" if allowed else ""
    if not closed:
        listed = f"{listed}; " if listed else ""
        listed += f"add a new key with +{key}=..."
    return f"{given}: there is no key {key}; {did_you_mean(name, allowed, parent)}({listed})"


def refuse(line: str) -> NoReturn:
    """Stop a command on input it cannot use: ``line`` on stderr, exit status 2 (as train.py)."""
    print(f"error: {line}", file=sys.stderr)
    sys.exit(2)


class OneLineParser(argparse.ArgumentParser):
    """The argument parser of rnnlab's ``python -m`` commands: a bad argument is refused in one
    line, with exit status 2, like a bad config (argparse prints its usage block first)."""

    def error(self, message: str) -> NoReturn:
        refuse(f"{message} ({self.prog} --help lists the arguments)")
