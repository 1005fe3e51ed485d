"""What rnnlab registers with Hydra before it composes conf/: the config schema and the
resolvers conf/config.yaml uses. train.py calls :func:`register` first thing.

- ``${rnnlab.job_name:...}``: a run's or sweep job's directory name from its overrides.
  TensorBoard names a run by its path, so the name says what the run is, and the choice of
  config group (``model=concat``) comes first: Hydra's own ``override_dirname`` sorts
  ``model.nonlinearity=relu`` before ``model=concat``, and a cut-off name then hides the cell.
- ``${rnnlab.unnamed_keys:}``: the override keys a job's directory name leaves out
  (``hydra.job.config.override_dirname.exclude_keys``): :func:`unnamed_keys`.
- ``${rnnlab.help:}``: the text of ``python train.py --help``: the groups, the launchers and
  what every key means and its default, from the schema (rnnlab.config.schema).
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import OmegaConf

from rnnlab import internals
from rnnlab.config import choices, schema
from rnnlab.config.errors import show

JOB_NAME, UNNAMED_KEYS, HELP = "rnnlab.job_name", "rnnlab.unnamed_keys", "rnnlab.help"
#: The config's sections; each that is also a config group is chosen by ``<section>=<option>``.
SECTIONS = (*schema.CLOSED_SECTIONS, "trainer")


def job_name(overrides: Sequence[str], exclude: Sequence[str], prefix: str = "_") -> str:
    """``<prefix><overrides>``: the choices of config groups first (``model=concat``), then the
    other keys A-Z, as ``key=value`` joined by commas (the same lines as Hydra's
    override_dirname); nothing at all without overrides. A ``/`` in a value (``data.path``)
    becomes ``_``: the name is one directory, and the analysis reads the overrides from
    ``.hydra/overrides.yaml``, not from it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    kept = [o for o in parsed if o.key_or_group not in exclude]
    kept.sort(key=lambda o: (o.key_or_group not in SECTIONS, "." in o.key_or_group, o.input_line))
    name = ",".join(str(o.input_line) for o in kept).replace("/", "_")
    return f"{prefix}{name}" if name else ""


def unnamed_keys() -> list[str]:
    """The override keys that do not describe a job, so its directory name and the factors read
    back from it leave them out: the presets (``sweep``, ...) and the keys without effect on
    results (rnnlab.config.choices), each with its schema's keys (Hydra matches whole keys)."""
    keys = list(choices.PRESETS)
    for name in choices.NO_EFFECT:
        keys.append(name)
        if name in schema.CLOSED_SECTIONS:
            keys += [f"{name}.{key}" for key in schema.keys(name)]
    return keys


def _key_help(section: str, dataset: str = choices.DATASETS[0]) -> list[str]:
    """A line per key of the section (``""``: the top level, without its sections): its name,
    meaning and default."""
    defaults = schema.defaults_of(section, dataset)
    shown = {k: f" (default: {show(v)})" for k, v in defaults.items()}
    prefix = f"{section}." if section else ""
    return [
        f"  {prefix + key:<31} {text}{shown.get(key, '')}"
        for key, text in schema.help_of(section, dataset).items()
        if text and (section or key not in SECTIONS)
    ]


def help_text() -> str:
    """Hydra's help template for train.py; Hydra fills in ``$APP_CONFIG_GROUPS`` and
    ``$CONFIG``. ``$$`` is a literal dollar for Hydra's ``string.Template``."""
    launchers = ", ".join(internals.group_options("hydra/launcher"))
    data = [
        line
        for dataset in choices.DATASETS
        for line in (f"  (data={dataset})", *_key_help("data", dataset))
    ]
    lines = [
        "rnnlab: train vanilla RNNs on [sin, cos] windows and compare them.",
        "",
        "  python train.py [group=option ...] [key=value ...]      one run",
        "  python train.py -m key=a,b [key=c,d ...]                a sweep over every combination",
        "",
        "== Config groups (group=option) ==",
        "$APP_CONFIG_GROUPS",
        "",
        f"== Launchers for -m sweeps (hydra/launcher=...) ==\n  basic (the default), {launchers}",
        "",
        "== Keys ==",
        *_key_help("model"),
        *data,
        *_key_help("logger"),
        f"  {'trainer.*':<31} any lightning.Trainer argument (defaults: conf/trainer/default.yaml)",
        *_key_help(""),
        "",
        "== Config this command line composes ==",
        "$CONFIG",
        "More: README.md. Hydra's own options: python train.py --hydra-help",
    ]
    return "\n".join(lines)


def register() -> None:
    """Register the schema and the resolvers (idempotent)."""
    schema.register()
    if not OmegaConf.has_resolver(JOB_NAME):
        OmegaConf.register_new_resolver(JOB_NAME, job_name)
    if not OmegaConf.has_resolver(UNNAMED_KEYS):
        OmegaConf.register_new_resolver(UNNAMED_KEYS, unnamed_keys)
    if not OmegaConf.has_resolver(HELP):
        OmegaConf.register_new_resolver(HELP, help_text)
