"""Running one job: build it from the config, fit, test, and write its record.

``experiment``: the job driver (``train.py`` calls ``hydra_job``) and ``metrics.json``;
``checkpoints``: best and last checkpoints, finite weights only; ``signals``: SIGINT/SIGTERM stop
a run cleanly at the epoch's end; ``progress``: ``train.log``'s epoch lines and the fit clock.
"""
