"""What the job driver (rnnlab.training.experiment) and rnnlab's callbacks read from the
LightningModule they run: one interface for every kind of module, so that none of them asks
which kind it has.

A module trains N networks at once: a Forecaster one, a ReplicaForecaster the R seeds of one
configuration. A value with one number per network is a 0-d tensor for a module of one network
and ``(N,)`` for several, the layout of the module's own batches (``(B, L, C)``, and ``(R, B,
L, C)``); only ``alive`` always has its N entries. A new kind of module (a pack of differently
configured networks, say) implements these members and runs under the same driver and
callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

import torch
from torch import nn

#: A readout, ``(x_t, h_{t-1}, h_t) -> y_t`` (rnnlab.models.forecaster.read_out calls it).
Readout = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Networks(NamedTuple):
    """A module's networks as their observers read them (one set of weights, current or tested).

    ``predict`` is an nn.Module whose ``forward(x, last_only=False)`` gives per-step
    predictions as the module's own;
    ``layers`` has ``num_layers``, ``recurrence`` and ``layer_weights(k)`` (nn.RNN's layout;
    stacked ``(N, ...)`` for several networks), what the gradient-flow diagnostics run the
    window with;
    ``readout`` maps ``(x_t, h_{t-1}, h_t)`` to the prediction.
    """

    predict: nn.Module
    layers: Any
    readout: Readout


@dataclass
class NetworkEnd:
    """How one network of a module ended: what the module alone knows of it for its record.

    ``values``: the final metrics the module measured, by name (rnnlab.metrics): the last
    validation's, the best ``val/mse``, and the test's if it was ``tested``; ``tested``: it
    trained to the end and was tested; ``diverged``: for a network the module froze when it
    diverged, ``error``, ``diverged_epoch`` and ``diverged_step`` (else None, and its status
    is the job's).
    """

    values: dict[str, Any] = field(default_factory=dict)
    tested: bool = False
    diverged: dict[str, Any] | None = None


class NetworkModule(Protocol):
    """The members the driver and the callbacks use; every LightningModule rnnlab runs has them."""

    #: Whether each network's best-validation weights live in the module, where testing reads
    #: them, rather than in the best checkpoint, which testing then loads.
    keeps_best_weights: ClassVar[bool]

    @property
    def alive(self) -> torch.Tensor:
        """``(N,)`` booleans: the networks still training. A module freezes a network that
        diverges (ReplicaForecaster), or raises ``Diverged`` and stops (Forecaster)."""
        ...

    #: Each network's latest validation values while it trained, ``val/mse_best`` included,
    #: and its test values once tested, by metric name.
    val_values: dict[str, torch.Tensor]
    test_values: dict[str, torch.Tensor]

    def epoch_train_loss(self) -> torch.Tensor:
        """``train/loss`` so far this epoch, as the module logs it at the epoch's end (the mean
        over the networks still training)."""
        ...

    def train_losses(self) -> torch.Tensor:
        """Each network's mean training loss so far this epoch."""
        ...

    def grad_norms(self) -> torch.Tensor:
        """Each network's total gradient norm, before clipping (what ``clip_grad_norm_``
        computes for one network)."""
        ...

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The top layer's hidden states for a batch, ``(B, L, H)`` (``(N, B, L, H)``)."""
        ...

    def networks(self, tested: bool | torch.Tensor = False) -> Networks:
        """The current weights; where ``tested`` (True: every network; or N booleans) the
        weights testing scored (after ``trainer.test``)."""
        ...

    def network_ends(self, tested: bool) -> list[NetworkEnd]:
        """Each network's end, once the job trained (and, if ``tested``, was tested)."""
        ...
