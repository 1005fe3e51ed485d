"""Configuration, torch-free: what a user may type and what it means.

The allowed values of every choice (``choices``), the schema with each key's type and help
(``schema``), the range and cross-field checks (``checks``) and their one-line errors
(``errors``), what ``train.py`` registers with Hydra (``hydra_setup``), the Hydra callbacks that
validate a run or sweep and summarise a sweep (``hydra_callbacks``), ``resume=`` (``resume``)
and the command-line wrapper that turns bad input into one line and exit status 2 (``cli``).

Nothing here imports torch or Lightning, so a bad command line fails in about a second.
A new config key goes in ``schema`` (type, default and help together; ``conf/`` sets only what
an option changes); its checks in ``checks``; a new set of allowed values in ``choices``.
"""
