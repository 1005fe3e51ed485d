"""Tasks: the data a network trains on, as Lightning DataModules, and what the data alone predicts.

``tasks``: ``make_windows`` and the DataModules of the sin/cos and adding tasks, a CSV file's
series and the sunspots (and of replicas, each seed's data served together); ``baselines``:
persistence's partners computed from the data (least squares, the mean predictor). A new task
is a DataModule in ``tasks`` (in its ``DATAMODULES``), its schema (keys, defaults, help) in
``rnnlab.config.schema`` and its name in ``rnnlab.config.choices``.
"""
