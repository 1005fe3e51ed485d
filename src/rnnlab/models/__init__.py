"""The networks: recurrent cells and the LightningModules that train them.

``cells``: ScratchRNN, ConcatRNN and TorchRNN, each with ``torch.nn.RNN``'s contract, and the
initialisation schemes (``model.init``); ``forecaster``: the Forecaster LightningModule (a cell,
a readout, a loss mode, the optimiser). Read these two first. ``replica_net`` and ``replicas``:
``replicas=R``, R seeds' networks stacked into one batched network, each exactly as its own run.
A new cell goes in ``cells`` (and in its ``CELLS``), its name in ``rnnlab.config.choices``.

``network``: what the job driver and the callbacks read from any of these LightningModules
(``NetworkModule``), so that a new kind of module slots in without a branch.
"""
