"""``python -m rnnlab.bench``: how fast rnnlab trains, measured side by side in one process.

Sections (``--sections``; all by default), one module each:

- ``loop``: training samples/s of the project's path (DataModule + Forecaster + the Trainer
  that train.py builds) against a plain PyTorch loop over the same model, data, batch size,
  optimizer, clipping and number of steps, and against the bare Trainer, for each cell at the
  default config; plus an empty step, which isolates the Trainer's own cost;
- ``cells``: forward+backward time of ScratchRNN and ConcatRNN against TorchRNN (``nn.RNN``);
- ``data``: building the windows of 10^6 points at L=64 as views, against the list
  comprehension of the concat cell's source text (extrapolated from a smaller series: it
  takes minutes at full size);
- ``compile``: ``model.compile=true`` (``torch.compile`` of one time step): compile time and
  speed-up over the eager cell;
- ``job``: one sweep job's ``rnnlab.training.experiment.train_and_test``, split into training steps
and
  everything else, against a bare fit and test;
- ``run``: wall time and peak RSS of whole processes: the bare import of torch + lightning +
  hydra, a default ``python train.py``, and a three-job sweep (per job);
- ``replicas``: one ``replicas=R`` job (R seeds trained as one batched network) against R
  separate runs, per cell: fit time, seconds per replica, peak RSS; and a sweep of 15 networks
  with ``replicas=5`` against one job per seed, wall clock.

``common`` holds what they share. Every comparison interleaves its repetitions (A, B, A, B,
...) and reports medians, so load from other processes hits both sides alike: the ratios are
the figures to compare.
"""
