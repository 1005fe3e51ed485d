"""Three interchangeable vanilla RNN cells with ``torch.nn.RNN(batch_first=True)``'s contract.

``ScratchRNN`` is the scratch cell (an input and a hidden Linear per layer, a Python loop over
time), ``ConcatRNN`` the concat cell (one Linear over ``[h_{t-1}, x_t]``) and ``TorchRNN`` wraps
``nn.RNN``. All three compute
``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` and give the same outputs for the same
weights; they differ in how the weights are laid out and how the time loop is run. Each reads
and writes its weights in nn.RNN's layout (``layer_weights``, ``set_layer_weights``), which is
how ``from_torch``, ``to_torch`` and ``initialize`` treat all three alike.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rnnlab.config import choices

#: The function of each of ``choices.NONLINEARITIES``.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
}


def _activation(nonlinearity: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return choices.lookup("model.nonlinearity", nonlinearity, ACTIVATIONS)


def row_activation(nonlinearities: Sequence[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation of networks stacked on dimension 0, row r with ``nonlinearities[r]`` (a
    pack of differently configured networks, rnnlab.models.pack): one call where all rows
    share one, else each run of equal neighbours through its own and the runs concatenated.
    Rows sorted by nonlinearity make two runs, cheaper than computing both everywhere and
    picking with ``torch.where`` (measured: ``python -m rnnlab.bench --sections fused``)."""
    runs = [(name, len(list(rows))) for name, rows in itertools.groupby(nonlinearities)]
    if len(runs) == 1:
        return _activation(runs[0][0])
    acts, sizes = [_activation(name) for name, _ in runs], [size for _, size in runs]

    def act(z: torch.Tensor) -> torch.Tensor:
        return torch.cat([f(part) for f, part in zip(acts, z.split(sizes), strict=True)])

    return act


Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def time_step(
    x_t: torch.Tensor,
    h: torch.Tensor,
    w_hh_t: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """One step of every cell: ``h_t = act(x_proj_t + h_{t-1} @ w_hh_t)``, the product and the
    sum in one kernel (``addmm``; ``baddbmm`` for replicas stacked on a leading dimension,
    rnnlab.models.replica_net)."""
    mm_add = torch.addmm if h.dim() == 2 else torch.baddbmm
    return act(mm_add(x_t, h, w_hh_t))


def hidden_states(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    w_hh_t: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor],
    step: Step | None = None,
) -> list[torch.Tensor]:
    """``h_1 .. h_L``, one tensor per step, from the input projections ``x_proj`` ``(B, L, H)``
    (``(R, B, L, H)`` for R replicas' stacked projections and ``(R, H, H)`` weights) and the
    start ``h``.

    The input projection is computed once for the whole sequence by the caller (:func:`project`);
    iterating with ``unbind`` keeps each step's backward O(1) (indexing ``x[:, t]`` makes it
    O(L)). ``step``, when given, computes one time step instead (the compiled path).
    """
    states = []
    for x_t in x_proj.unbind(-2):
        h = time_step(x_t, h, w_hh_t, act) if step is None else step(x_t, h, w_hh_t)
        states.append(h)
    return states


def recur(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    w_hh_t: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor],
    step: Step | None = None,
) -> torch.Tensor:
    """:func:`hidden_states` stacked over time: ``(B, L, H)``, or ``(R, B, L, H)``."""
    return torch.stack(hidden_states(x_proj, h, w_hh_t, act, step), -2)


def project(x: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x_t @ w_ih^T + bias`` for every step at once: ``(B, L, H)`` from ``(B, L, I)`` inputs
    and ``(H, I)`` weights (``(R, B, L, H)`` from replicas' stacked ``(R, B, L, I)`` and
    ``(R, H, I)``), one matrix product over all steps before the time loop."""
    if x.dim() == 3:
        return torch.addmm(bias, x.flatten(0, 1), w_ih.t()).view(*x.shape[:2], -1)
    return torch.baddbmm(bias.unsqueeze(1), x.flatten(1, 2), w_ih.mT).view(*x.shape[:3], -1)


@functools.cache
def compiled_step(nonlinearity: str) -> Step:
    """``torch.compile`` of :func:`time_step`, shared by all cells with this nonlinearity.

    Only the step is compiled: compiling the cell's forward would unroll the time loop, which
    takes tens of seconds per sequence length on CPU. Compilation happens on the first call.
    """
    act = _activation(nonlinearity)

    def step(x_t: torch.Tensor, h: torch.Tensor, w_hh_t: torch.Tensor) -> torch.Tensor:
        return time_step(x_t, h, w_hh_t, act)

    return torch.compile(step)


#: nn.RNN's parameters of one layer, in its own order (``weight_ih_l0``, ...).
_RNN_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def rnn_layer(rnn: nn.RNN, k: int) -> tuple[nn.Parameter, ...]:
    """nn.RNN's parameters of layer ``k``, in its order: weight_ih, weight_hh, bias_ih, bias_hh."""
    return tuple(getattr(rnn, f"{name}_l{k}") for name in _RNN_WEIGHTS)


def top_layer_states(
    x: torch.Tensor,
    layers: Sequence[Weights],
    act: Callable[[torch.Tensor], torch.Tensor],
    step: Step | None = None,
    track: bool = False,
) -> list[torch.Tensor]:
    """nn.RNN's function computed from its weights: the top layer's ``h_1 .. h_L`` (one tensor
    per step) of the stack of ``layers`` (each ``(w_ih, w_hh, b_ih, b_hh)`` in nn.RNN's layout,
    stacked ``(R, ...)`` with ``(R, B, L, I)`` inputs for replicas), run over ``x`` from zero.

    What runs the cells' weights without the cells: replicas (rnnlab.models.replica_net) and the
    gradient-flow diagnostics (rnnlab.observe.diagnostics). ``track``: the top layer starts
    from a zero state that requires grad, which puts each of its ``h_t`` in autograd's graph
    even when nothing else does (weights detached, inputs data).
    """
    states: list[torch.Tensor] = []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        if k:
            x = torch.stack(states, -2)
        h0 = x.new_zeros(*x.shape[:-2], w_hh.shape[-1])
        if track and k == len(layers) - 1:
            h0.requires_grad_()
        states = hidden_states(project(x, w_ih, b_ih + b_hh), h0, w_hh.mT, act, step)
    return states


class Cell(nn.Module):
    """What every cell shares: ``nn.RNN``'s constructor checks and its per-layer weights.

    Subclasses build their parameters (``_build``) and map them to and from nn.RNN's layout
    (``layer_weights``, ``set_layer_weights``); conversion and initialization go through those.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        compile: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity = nonlinearity
        self.act = _activation(nonlinearity)
        self._build(compile)

    def _build(self, compile: bool) -> None:
        """Create the parameters."""
        raise NotImplementedError

    @classmethod
    def layout(cls, param: Callable[[str], torch.Tensor], k: int, hidden_size: int) -> Weights:
        """Layer ``k``'s ``(w_ih, w_hh, b_ih, b_hh)`` in nn.RNN's shapes, read from this cell's
        parameters by name (``param("layers.0.ih.weight")``). The one map from a cell's
        parametrisation to nn.RNN's: also for replicas' stacked parameters, whose leading
        dimension it keeps (rnnlab.models.replica_net)."""
        raise NotImplementedError

    def layer_weights(self, k: int) -> Weights:
        """Layer ``k``'s ``(w_ih, w_hh, b_ih, b_hh)`` in nn.RNN's shapes (detached, read-only)."""
        return tuple(w.detach() for w in self.layout(self.get_parameter, k, self.hidden_size))

    def set_layer_weights(
        self, k: int, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
    ) -> None:
        """Copy nn.RNN-layout weights into layer ``k`` (any device or dtype; no autograd)."""
        raise NotImplementedError

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> Cell:
        """This cell with ``rnn``'s sizes, nonlinearity and weights."""
        if rnn.bidirectional or rnn.proj_size or not rnn.bias:
            raise ValueError("from_torch supports unidirectional nn.RNN with bias, no projection")
        cell = cls(rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.nonlinearity)
        for k in range(rnn.num_layers):
            cell.set_layer_weights(k, *rnn_layer(rnn, k))
        return cell

    def to_torch(self) -> nn.RNN:
        """The ``nn.RNN(batch_first=True)`` computing the same function: from_torch's inverse."""
        sizes = self.input_size, self.hidden_size, self.num_layers
        rnn = nn.RNN(*sizes, nonlinearity=self.nonlinearity, batch_first=True)
        rnn.to(next(self.parameters()))  # this cell's device and dtype
        with torch.no_grad():
            for k in range(self.num_layers):
                for param, w in zip(rnn_layer(rnn, k), self.layer_weights(k), strict=True):
                    param.copy_(w)
        return rnn


class _LoopRNN(Cell):
    """Shape handling and layer stacking for the Python-loop cells; subclasses say how one
    layer's weights are laid out (``_make_layer``, ``_project`` and the weight mapping)."""

    def _build(self, compile: bool) -> None:
        self.step = compiled_step(self.nonlinearity) if compile else None
        self.layers = nn.ModuleList(
            self._make_layer(self.input_size if k == 0 else self.hidden_size, self.hidden_size)
            for k in range(self.num_layers)
        )

    def _make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        """One layer's parameters."""
        raise NotImplementedError

    def _project(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the input projection of ``x`` (biases folded in) and ``W_hh^T`` of ``layer``."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
            h0 = None if h0 is None else h0.unsqueeze(1)
        batch = x.shape[0]
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, batch, self.hidden_size)
        expected = (self.num_layers, batch, self.hidden_size)
        if tuple(h0.shape) != expected:
            raise ValueError(f"h0 must have shape {expected}, got {tuple(h0.shape)}")
        finals = []
        for layer in range(self.num_layers):
            x_proj, w_hh_t = self._project(layer, x)
            x = recur(x_proj, h0[layer], w_hh_t, self.act, self.step)
            finals.append(x[:, -1])
        h_n = torch.stack(finals)
        if unbatched:
            return x.squeeze(0), h_n.squeeze(1)
        return x, h_n


class ScratchLayer(nn.Module):
    """A scratch-cell layer: ``ih(x_t) + hh(h_{t-1})``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size)


class ScratchRNN(_LoopRNN):
    """The scratch cell: two Linears per layer and a Python loop over time."""

    def _make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        return ScratchLayer(input_size, hidden_size)

    def _project(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cell = self.layers[layer]
        return project(x, cell.ih.weight, cell.ih.bias + cell.hh.bias), cell.hh.weight.t()

    @classmethod
    def layout(cls, param: Callable[[str], torch.Tensor], k: int, hidden_size: int) -> Weights:
        ih, hh = f"layers.{k}.ih", f"layers.{k}.hh"
        return (
            param(f"{ih}.weight"),
            param(f"{hh}.weight"),
            param(f"{ih}.bias"),
            param(f"{hh}.bias"),
        )

    @torch.no_grad()
    def set_layer_weights(
        self, k: int, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
    ) -> None:
        ih, hh = self.layers[k].ih, self.layers[k].hh
        ih.weight.copy_(w_ih)
        hh.weight.copy_(w_hh)
        ih.bias.copy_(b_ih)
        hh.bias.copy_(b_hh)


class ConcatRNN(_LoopRNN):
    """The concat cell: one Linear per layer over ``[h_{t-1}, x_t]``.

    The Linear's weight is ``[W_hh | W_ih]``; the loop multiplies its two column blocks
    separately, which is the same arithmetic as concatenating and avoids a copy per step.
    Its one bias stands for ``b_ih + b_hh``: read back, it is ``b_ih`` and ``b_hh`` is zero.
    """

    def _make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        return nn.Linear(hidden_size + input_size, hidden_size)

    def _project(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        linear = self.layers[layer]
        w_hh, w_ih = linear.weight.split([self.hidden_size, x.shape[-1]], dim=1)
        return project(x, w_ih, linear.bias), w_hh.t()

    @classmethod
    def layout(cls, param: Callable[[str], torch.Tensor], k: int, hidden_size: int) -> Weights:
        w, b = param(f"layers.{k}.weight"), param(f"layers.{k}.bias")
        return w[..., hidden_size:], w[..., :hidden_size], b, torch.zeros_like(b)

    @torch.no_grad()
    def set_layer_weights(
        self, k: int, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
    ) -> None:
        self.layers[k].weight.copy_(torch.cat([w_hh, w_ih], dim=1))
        self.layers[k].bias.copy_(b_ih + b_hh)


class TorchRNN(Cell):
    """``torch.nn.RNN`` (cuDNN on GPU, a C++ loop on CPU) behind the same interface.

    ``compile`` is accepted for a uniform interface and ignored: the loop is not Python.
    """

    def _build(self, compile: bool) -> None:
        sizes = self.input_size, self.hidden_size, self.num_layers
        self.rnn = nn.RNN(*sizes, nonlinearity=self.nonlinearity, batch_first=True)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rnn(x, h0)

    @classmethod
    def layout(cls, param: Callable[[str], torch.Tensor], k: int, hidden_size: int) -> Weights:
        return tuple(param(f"rnn.{name}_l{k}") for name in _RNN_WEIGHTS)

    @torch.no_grad()
    def set_layer_weights(
        self, k: int, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
    ) -> None:
        for param, w in zip(rnn_layer(self.rnn, k), (w_ih, w_hh, b_ih, b_hh), strict=True):
            param.copy_(w)


def _uniform(generator: torch.Generator, hidden_size: int, *shape: int) -> torch.Tensor:
    """nn.RNN's draw (its ``reset_parameters``): U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1 / math.sqrt(hidden_size)
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


def _torch_layer(H: int, n_in: int, generator: torch.Generator) -> Weights:
    """nn.RNN's own initialisation: every weight and bias from :func:`_uniform`."""
    u = functools.partial(_uniform, generator, H)
    return u(H, n_in), u(H, H), u(H), u(H)


def _orthogonal_layer(H: int, n_in: int, generator: torch.Generator) -> Weights:
    """nn.RNN's, with an orthogonal W_hh: all singular values 1, so the linear part neither
    grows nor shrinks h (Saxe et al.)."""
    u = functools.partial(_uniform, generator, H)
    return u(H, n_in), nn.init.orthogonal_(torch.empty(H, H), generator=generator), u(H), u(H)


def _identity_layer(H: int, n_in: int, generator: torch.Generator) -> Weights:
    """IRNN (Le, Jaitly & Hinton 2015): at the start h_t ~= relu(h_{t-1}) = h_{t-1}, so the
    state and its gradient pass through time unchanged until training says otherwise."""
    w_ih = torch.empty(H, n_in).normal_(0, 0.001, generator=generator)
    return w_ih, torch.eye(H), torch.zeros(H), torch.zeros(H)


#: How each of ``choices.INITS`` draws one layer's (w_ih, w_hh, b_ih, b_hh) from its sizes and a
#: generator; ``native`` (None) keeps each cell's constructor's draws (nn.Linear's or nn.RNN's).
INITS: dict[str, Callable[[int, int, torch.Generator], Weights] | None] = {
    "torch": _torch_layer,
    "native": None,
    "identity": _identity_layer,
    "orthogonal": _orthogonal_layer,
}


def initialize(cell: Cell, scheme: str, generator: torch.Generator) -> None:
    """Re-draw ``cell``'s weights in place by ``scheme`` (``model.init``), from ``generator``.

    Every scheme is written in nn.RNN's layout and drawn in nn.RNN's order (per layer, layer 0
    first: w_ih, w_hh, b_ih, b_hh), so equal seeds give every cell the same function.
    """
    draw = choices.lookup("model.init", scheme, INITS)
    if draw is None:
        return
    for k in range(cell.num_layers):
        n_in = cell.input_size if k == 0 else cell.hidden_size
        cell.set_layer_weights(k, *draw(cell.hidden_size, n_in, generator))


#: The class of each of ``choices.CELLS``.
CELLS: dict[str, type[Cell]] = {"scratch": ScratchRNN, "concat": ConcatRNN, "torch": TorchRNN}


def build_cell(name: str, *args: Any, **kwargs: Any) -> Cell:
    """Build a cell by its config name (``model.cell``); the rest are :class:`Cell`'s arguments."""
    return choices.lookup("model.cell", name, CELLS)(*args, **kwargs)
