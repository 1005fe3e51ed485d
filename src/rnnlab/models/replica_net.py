"""The replicas engine: R Forecaster networks of one configuration as one batched network.

Replica r's parameters are its Forecaster's own, with the same names and shapes (the scratch
cell's two Linears per layer, the concat cell's one Linear over ``[h, x]``, nn.RNN's four
tensors), stacked on a leading dimension of size R. So replica r *is* its cell: Adam, weight
decay and the schedule act elementwise, and each replica's gradient is its own loss's, hence
an optimiser step on the stack is the step each network would take alone.

The arithmetic is cells.py's (each cell's ``Recurrence``), one batched matrix product per time
step (``torch.baddbmm``) instead of one per network: at these sizes a step costs its overhead,
not its flops, so R networks cost little more than one. All cells run this loop over their own
parameters (read through ``Cell.layout``): for nn.RNN's four tensors it is the same function nn.RNN
computes, and faster for R > 1 than R nn.RNN calls or a block-diagonal nn.RNN (README,
Performance). cells.py stays the readable reference, and tests/test_replica_net.py checks
each replica against the cell built from its weights, outputs and gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rnnlab.models.cells import Weights, top_layer_states
from rnnlab.models.forecaster import READOUTS, Forecaster, read_out

_SEP = "/"  # a parameter's name with "/" for "."  (module attribute names cannot hold ".")


def _key(name: str) -> str:
    return name.replace(".", _SEP)


class ReplicaNet(nn.Module):
    """The cells and readouts of ``networks`` (Forecasters of one configuration), stacked.

    ``forward`` takes ``(R, B, L, C)`` (replica r's batch at ``[r]``) and returns what each
    Forecaster's ``forward`` would, stacked: ``(R, B, L, O)``, or ``(R, B, 1, O)`` with
    ``last_only``.
    """

    def __init__(self, networks: Sequence[Forecaster], compile: bool = False) -> None:
        super().__init__()
        first = networks[0]
        self.replicas = len(networks)
        self.cell_class = type(first.cell)
        self.readout_class = type(first.readout)
        if self.readout_class not in READOUTS.values():
            raise TypeError(f"no batched readout for {self.readout_class.__name__}")
        cell = first.cell
        self.input_size, self.hidden_size = cell.input_size, cell.hidden_size
        self.num_layers = cell.num_layers
        # each network's own activation (a pack may mix them: rnnlab.models.pack)
        self.nonlinearities = [net.cell.nonlinearity for net in networks]
        self.recurrence = self.cell_class.recurrence_of(self.nonlinearities, compile)
        self.readout_act = first.readout.act
        self.names = [name for name, _ in first.named_parameters()]  # the cell's, the readout's
        with torch.no_grad():
            self.stacked = nn.ParameterDict(
                {
                    _key(name): nn.Parameter(
                        torch.stack([net.get_parameter(name).detach() for net in networks])
                    )
                    for name in self.names
                }
            )

    # -- weights -----------------------------------------------------------------------------
    def param(self, name: str) -> torch.Tensor:
        """The stacked ``(R, *shape)`` parameter of the Forecaster's ``name``."""
        return self.stacked[_key(name)]

    def layer_weights(self, k: int) -> Weights:
        """Layer ``k``'s nn.RNN-layout weights of every replica, ``(R, ...)`` (detached)."""
        weights = self.cell_class.layout(lambda n: self.param(f"cell.{n}"), k, self.hidden_size)
        return tuple(w.detach() for w in weights)

    def replica_state(self, r: int) -> dict[str, torch.Tensor]:
        """Replica ``r``'s weights by the Forecaster's parameter names (copies)."""
        return {name: self.param(name)[r].detach().clone() for name in self.names}

    @torch.no_grad()
    def load_replica(self, r: int, state: dict[str, torch.Tensor]) -> None:
        """Set replica ``r``'s weights from a :meth:`replica_state` (or a Forecaster's)."""
        for name in self.names:
            self.param(name)[r].copy_(state[name])

    @torch.no_grad()
    def copy_rows(self, other: ReplicaNet, rows: torch.Tensor) -> None:
        """Copy the replicas where ``rows`` (R booleans) is true from ``other``."""
        for name in self.names:
            mine, theirs = self.param(name), other.param(name)
            mine.copy_(torch.where(rows.view(-1, *[1] * (mine.dim() - 1)), theirs, mine))

    def grad_norms(self) -> torch.Tensor:
        """Each replica's total gradient norm over its parameters, ``(R,)``: what
        ``torch.nn.utils.clip_grad_norm_`` computes for one network."""
        grads = [p.grad.flatten(1) for p in self.stacked.values() if p.grad is not None]
        per_param = torch.stack([torch.linalg.vector_norm(g, dim=1) for g in grads])
        return torch.linalg.vector_norm(per_param, dim=0)

    # -- the network ------------------------------------------------------------------------
    def _linear(self, features: torch.Tensor, name: str) -> torch.Tensor:
        """``features @ W^T + b`` per replica for the stacked Linear ``name`` (``(R, ..., F)``)."""
        w, b = self.param(f"{name}.weight"), self.param(f"{name}.bias")
        flat = features.flatten(1, -2)
        return torch.baddbmm(b.unsqueeze(1), flat, w.mT).view(*features.shape[:-1], -1)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The top layer's hidden states ``(R, B, L, H)`` for inputs ``(R, B, L, C)``."""
        layers = [
            self.cell_class.layout(lambda n: self.param(f"cell.{n}"), k, self.hidden_size)
            for k in range(self.num_layers)
        ]
        return torch.stack(top_layer_states(x, layers, self.recurrence), -2)

    def readout(self, x: torch.Tensor, h_prev: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Every replica's readout (the Forecaster's ``readout(x, h_prev, h)``, stacked)."""
        features = self.readout_class.features(x, h_prev, h)
        return self.readout_act(self._linear(features, "readout.linear"))

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        return read_out(self.readout, x, self.hidden(x), last_only)
