"""What a run shows while and after it trains: loggers, figures and diagnostics.

``tensorboard``: the TensorBoard callbacks (gradient norms, RNN health, figures, histograms,
HParams, per-replica runs); ``csv_log``: ``csv/metrics.csv``; ``figures``: the matplotlib figures;
``diagnostics``: gradient flow through time and the recurrent weights' spectra
(``metrics.json``'s ``diagnostics``); ``rollout``: the scored rollout (``test/rollout_mse``)
the figures draw. A new logger or figure goes here.
"""
