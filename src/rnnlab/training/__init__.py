"""Running one job: build it from the config, fit, test, and write its record.

``experiment``: the job driver (``train.py`` calls ``hydra_job``), the same for every kind of
module (rnnlab.models.network.NetworkModule); ``record``: ``metrics.json`` from each network's
end, and the summary a run prints; ``checkpoints``: best and last checkpoints; ``signals``:
SIGINT/SIGTERM stop a run cleanly at the epoch's end; ``progress``: ``train.log``'s epoch lines
and the fit clock.
"""
