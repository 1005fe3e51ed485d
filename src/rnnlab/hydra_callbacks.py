"""Hydra callbacks: hooks Hydra calls around runs and sweeps (``hydra.callbacks`` in conf/)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Writes summary.csv/.md/.png into the sweep directory when a multirun ends.

    Jobs record crashes instead of raising (see ``rnnlab.experiment.hydra_job``), so Hydra reaches
    this hook even when some jobs failed. A broken summary is logged, not raised: the jobs' own
    results are already on disk and ``python -m rnnlab.sweep`` can rebuild it.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from rnnlab.sweep import summarize

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = summarize(sweep_dir)
        except Exception:
            log.exception(
                "sweep summary failed; rebuild with: python -m rnnlab.sweep %s", sweep_dir
            )
            return
        log.info("sweep summary: %s", ", ".join(str(p) for p in paths))
