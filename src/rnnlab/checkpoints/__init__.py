"""A run's checkpoints: where they are, how they are saved, and how a stopped run resumes.

- :mod:`rnnlab.checkpoints.resume` (torch-free, used by the command line):
  ``python train.py resume=<run dir>`` and the checks that a checkpoint belongs to the run;
- :mod:`rnnlab.checkpoints.saving`: the Lightning callbacks that write ``checkpoints/best.ckpt``
  (lowest ``val/mse``) and ``checkpoints/last.ckpt`` (every epoch end), never from a model
  that is no longer finite.
"""
