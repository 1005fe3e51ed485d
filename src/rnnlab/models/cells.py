"""The recurrent cells, all with ``torch.nn.RNN(batch_first=True)``'s contract.

Three interchangeable vanilla cells: ``ScratchRNN`` is the scratch cell (an input and a hidden
Linear per layer, a Python loop over time), ``ConcatRNN`` the concat cell (one Linear over
``[h_{t-1}, x_t]``) and ``TorchRNN`` wraps ``nn.RNN``. All three compute
``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` and give the same outputs for the same
weights; they differ in how the weights are laid out and how the time loop is run. Each reads
and writes its weights in nn.RNN's layout (``layer_weights``, ``set_layer_weights``), which is
how ``from_torch``, ``to_torch`` and ``initialize`` treat all three alike.

Two gated reference cells, ``GRURNN`` and ``LSTMRNN``: nn.GRU's and nn.LSTM's parameters (the
same names, shapes and gate order) and equations, run as a Python loop over time so that each
``h_t`` exists for the gradient-flow diagnostics, with ``from_torch`` and ``to_torch`` for
nn.GRU and nn.LSTM. Their layout is nn.RNN's with ``gates`` blocks of rows per tensor.

How one layer runs over a sequence is its :class:`Recurrence` (vanilla, GRU or LSTM): the
same code runs a cell's weights, replicas' stacked weights (rnnlab.models.replica_net) and the
diagnostics' re-run of a window (rnnlab.observe.diagnostics).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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


#: nn.RNN's parameters of one layer, in its own order (``weight_ih_l0``, ...); nn.GRU's and
#: nn.LSTM's have the same names, with ``gates`` blocks of rows.
_RNN_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def rnn_layer(rnn: nn.RNNBase, k: int) -> tuple[nn.Parameter, ...]:
    """nn.RNN's (nn.GRU's, nn.LSTM's) parameters of layer ``k``, in its order: weight_ih,
    weight_hh, bias_ih, bias_hh."""
    return tuple(getattr(rnn, f"{name}_l{k}") for name in _RNN_WEIGHTS)


def _mm_add(bias: torch.Tensor, h: torch.Tensor, w_hh_t: torch.Tensor) -> torch.Tensor:
    """``bias + h @ w_hh_t`` in one kernel, one network's or stacked replicas'."""
    return (torch.addmm if h.dim() == 2 else torch.baddbmm)(bias, h, w_hh_t)


def gru_step(
    x_t: torch.Tensor, h: torch.Tensor, w_hh_t: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """One step of nn.GRU, gates r, z, n in its order, from ``x_t = W_ih x_t + b_ih``:

    r = sigmoid(x_r + W_hr h + b_hr), z = sigmoid(x_z + W_hz h + b_hz),
    n = tanh(x_n + r * (W_hn h + b_hn)), h_t = (1 - z) * n + z * h.
    """
    x_r, x_z, x_n = x_t.chunk(3, -1)
    h_r, h_z, h_n = _mm_add(b_hh, h, w_hh_t).chunk(3, -1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def lstm_step(
    x_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of nn.LSTM, gates i, f, g, o in its order, from
    ``x_t = W_ih x_t + b_ih + b_hh``:

    i, f, o = sigmoid(x_{i,f,o} + W_h{i,f,o} h), g = tanh(x_g + W_hg h),
    c_t = f * c + i * g, h_t = o * tanh(c_t).
    """
    i, f, g, o = _mm_add(x_t, h, w_hh_t).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


#: A layer's state: ``h``, or the LSTM's ``(h, c)``.
State = Any


@dataclass(frozen=True)
class Recurrence:
    """How one layer of a kind of cell runs over a sequence, from its weights in nn.RNN's
    layout (stacked ``(R, ...)`` with ``(R, B, L, I)`` inputs for replicas). ``step``: the
    kind's time step compiled (``model.compile``), or None for the eager one."""

    step: Callable[..., Any] | None = None

    def start(self, h0: torch.Tensor) -> State:
        """The layer's state from its hidden state ``h0`` (an LSTM's cell state is zero)."""
        return h0

    def run(
        self, x: torch.Tensor, weights: Weights, state: State
    ) -> tuple[list[torch.Tensor], State]:
        """``h_1 .. h_L`` (one tensor per step) of the layer over ``x``, and its final state."""
        raise NotImplementedError


@dataclass(frozen=True)
class VanillaRecurrence(Recurrence):
    """``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (:func:`hidden_states`)."""

    act: Callable[[torch.Tensor], torch.Tensor] = torch.tanh

    def run(
        self, x: torch.Tensor, weights: Weights, state: State
    ) -> tuple[list[torch.Tensor], State]:
        w_ih, w_hh, b_ih, b_hh = weights
        states = hidden_states(project(x, w_ih, b_ih + b_hh), state, w_hh.mT, self.act, self.step)
        return states, states[-1]


@dataclass(frozen=True)
class GRURecurrence(Recurrence):
    """nn.GRU's layer (:func:`gru_step`): ``b_hh`` stays apart, ``r`` scales ``W_hn h + b_hn``."""

    def run(
        self, x: torch.Tensor, weights: Weights, state: State
    ) -> tuple[list[torch.Tensor], State]:
        w_ih, w_hh, b_ih, b_hh = weights
        step, w_hh_t, b_hh = self.step or gru_step, w_hh.mT, b_hh.unsqueeze(-2)
        h, states = state, []
        for x_t in project(x, w_ih, b_ih).unbind(-2):  # unbind: see hidden_states
            h = step(x_t, h, w_hh_t, b_hh)
            states.append(h)
        return states, h


@dataclass(frozen=True)
class LSTMRecurrence(Recurrence):
    """nn.LSTM's layer (:func:`lstm_step`); its state is ``(h, c)``."""

    def start(self, h0: torch.Tensor) -> State:
        return h0, torch.zeros_like(h0)

    def run(
        self, x: torch.Tensor, weights: Weights, state: State
    ) -> tuple[list[torch.Tensor], State]:
        w_ih, w_hh, b_ih, b_hh = weights
        step, w_hh_t = self.step or lstm_step, w_hh.mT
        (h, c), states = state, []
        for x_t in project(x, w_ih, b_ih + b_hh).unbind(-2):
            h, c = step(x_t, h, c, w_hh_t)
            states.append(h)
        return states, (h, c)


def top_layer_states(
    x: torch.Tensor,
    layers: Sequence[Weights],
    recurrence: Recurrence,
    track: bool = False,
) -> list[torch.Tensor]:
    """A cell's function computed from its weights: the top layer's ``h_1 .. h_L`` (one tensor
    per step) of the stack of ``layers`` (each ``(w_ih, w_hh, b_ih, b_hh)`` in nn.RNN's layout,
    stacked ``(R, ...)`` with ``(R, B, L, I)`` inputs for replicas), each run by
    ``recurrence`` over ``x`` from zero.

    What runs the cells' weights without the cells: replicas (rnnlab.models.replica_net) and the
    gradient-flow diagnostics (rnnlab.observe.diagnostics). ``track``: the top layer starts
    from a zero state that requires grad, which puts each of its ``h_t`` in autograd's graph
    even when nothing else does (weights detached, inputs data).
    """
    states: list[torch.Tensor] = []
    for k, weights in enumerate(layers):
        if k:
            x = torch.stack(states, -2)
        h0 = x.new_zeros(*x.shape[:-2], weights[1].shape[-1])
        if track and k == len(layers) - 1:
            h0.requires_grad_()
        states, _ = recurrence.run(x, weights, recurrence.start(h0))
    return states


class Cell(nn.Module):
    """What every cell shares: ``nn.RNN``'s constructor checks and its per-layer weights.

    Subclasses build their parameters (``_build``) and map them to and from nn.RNN's layout
    (``layer_weights``, ``set_layer_weights``); conversion and initialization go through those.
    ``recurrence``: how the cell's layers run from those weights (:class:`Recurrence`).
    """

    #: The cell's ``model.cell`` name.
    name: ClassVar[str]
    #: Blocks of rows in each of the layout's tensors: 1 for a vanilla cell.
    gates: ClassVar[int] = 1
    #: The torch module with this cell's function and parameters (``from_torch``, ``to_torch``).
    torch_class: ClassVar[type[nn.RNNBase]] = nn.RNN

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
        choices.check_cell_keys(self.name, nonlinearity=nonlinearity)
        self._build(compile)
        self.recurrence = self.recurrence_of([nonlinearity], compile)

    def _build(self, compile: bool) -> None:
        """Create the parameters."""
        raise NotImplementedError

    @classmethod
    def recurrence_of(cls, nonlinearities: Sequence[str], compile: bool = False) -> Recurrence:
        """The :class:`Recurrence` of cells of this class stacked on dimension 0, row r with
        ``nonlinearities[r]`` (one cell: one row); ``compile``: with the compiled step
        (:func:`compiled_step`), where all rows share one nonlinearity."""
        uniform = len(set(nonlinearities)) == 1
        step = compiled_step(nonlinearities[0]) if compile and uniform else None
        return VanillaRecurrence(step=step, act=row_activation(nonlinearities))

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

    @torch.no_grad()
    def set_layer_weights(
        self, k: int, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
    ) -> None:
        """Copy nn.RNN-layout weights into layer ``k`` (any device or dtype; no autograd): into
        the parameters :meth:`layout` names, where it names them as they are (a cell whose
        layout computes its tensors from its parameters writes them back its own way)."""
        weights = self.layout(self.get_parameter, k, self.hidden_size)
        for param, w in zip(weights, (w_ih, w_hh, b_ih, b_hh), strict=True):
            param.copy_(w)

    @classmethod
    def from_torch(cls, rnn: nn.RNNBase) -> Cell:
        """This cell with ``rnn``'s sizes, nonlinearity and weights (an nn.RNN; nn.GRU or
        nn.LSTM for the gated cells)."""
        kind = cls.torch_class.__name__
        if type(rnn) is not cls.torch_class:
            raise TypeError(
                f"{cls.__name__}.from_torch takes an nn.{kind}, got {type(rnn).__name__}"
            )
        if rnn.bidirectional or rnn.proj_size or not rnn.bias:
            raise ValueError(
                f"from_torch supports unidirectional nn.{kind} with bias, no projection"
            )
        nonlinearity = getattr(rnn, "nonlinearity", "tanh")  # the gated cells' is fixed
        cell = cls(rnn.input_size, rnn.hidden_size, rnn.num_layers, nonlinearity)
        for k in range(rnn.num_layers):
            cell.set_layer_weights(k, *rnn_layer(rnn, k))
        return cell

    def to_torch(self) -> nn.RNNBase:
        """The ``nn.RNN(batch_first=True)`` (nn.GRU, nn.LSTM) computing the same function:
        from_torch's inverse."""
        sizes = self.input_size, self.hidden_size, self.num_layers
        extra = {"nonlinearity": self.nonlinearity} if self.torch_class is nn.RNN else {}
        rnn = self.torch_class(*sizes, batch_first=True, **extra)
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

    name = "scratch"

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


class ConcatRNN(_LoopRNN):
    """The concat cell: one Linear per layer over ``[h_{t-1}, x_t]``.

    The Linear's weight is ``[W_hh | W_ih]``; the loop multiplies its two column blocks
    separately, which is the same arithmetic as concatenating and avoids a copy per step.
    Its one bias stands for ``b_ih + b_hh``: read back, it is ``b_ih`` and ``b_hh`` is zero.
    """

    name = "concat"

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

    name = "torch"

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


class _GatedRNN(Cell):
    """A gated cell: nn.GRU's or nn.LSTM's parameters, by their names (``weight_ih_l0``, ...),
    run layer by layer by the cell's :class:`Recurrence` in a Python loop over time.

    ``nonlinearity`` must be tanh (the activations are fixed); ``compile`` compiles the step.
    A constructor draws nn.GRU's (nn.LSTM's) own initialisation from the global generator:
    with one seed, this cell and the torch module start alike.
    """

    recurrence_class: ClassVar[type[Recurrence]]
    eager_step: ClassVar[Callable[..., Any]]

    def _build(self, compile: bool) -> None:
        rows, bound = self.gates * self.hidden_size, 1 / math.sqrt(self.hidden_size)
        for k in range(self.num_layers):
            n_in = self.input_size if k == 0 else self.hidden_size
            for name, shape in zip(
                _RNN_WEIGHTS,
                ((rows, n_in), (rows, self.hidden_size), (rows,), (rows,)),
                strict=True,
            ):
                param = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
                self.register_parameter(f"{name}_l{k}", param)

    @classmethod
    def recurrence_of(cls, nonlinearities: Sequence[str], compile: bool = False) -> Recurrence:
        return cls.recurrence_class(step=_compiled(cls.eager_step) if compile else None)

    @classmethod
    def layout(cls, param: Callable[[str], torch.Tensor], k: int, hidden_size: int) -> Weights:
        return tuple(param(f"{name}_l{k}") for name in _RNN_WEIGHTS)

    def _start(self, hx: Any, batch: int, like: torch.Tensor) -> list[torch.Tensor]:
        """The start state's parts, each ``(num_layers, B, H)``: ``[h0]``, or ``[h0, c0]``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
        """nn.GRU's (nn.LSTM's) ``forward(x, hx)`` with ``batch_first=True``: ``(output, h_n)``,
        or ``(output, (h_n, c_n))``."""
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
            hx = None if hx is None else _map(lambda t: t.unsqueeze(1), hx)
        parts = self._start(hx, x.shape[0], x)
        expected = (self.num_layers, x.shape[0], self.hidden_size)
        for part in parts:
            if tuple(part.shape) != expected:
                raise ValueError(f"hx must have shape {expected}, got {tuple(part.shape)}")
        finals = []
        for k in range(self.num_layers):
            start = tuple(part[k] for part in parts)
            weights = self.layout(self.get_parameter, k, self.hidden_size)
            states, final = self.recurrence.run(x, weights, start if len(start) > 1 else start[0])
            x = torch.stack(states, 1)
            finals.append(final if isinstance(final, tuple) else (final,))
        last = tuple(torch.stack(part) for part in zip(*finals, strict=True))
        h_n = last if len(last) > 1 else last[0]
        if unbatched:
            return x.squeeze(0), _map(lambda t: t.squeeze(1), h_n)
        return x, h_n


def _map(f: Callable[[torch.Tensor], torch.Tensor], state: Any) -> Any:
    """``f`` of a state: a tensor, or each of a tuple's."""
    return tuple(map(f, state)) if isinstance(state, tuple) else f(state)


@functools.cache
def _compiled(step: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile`` of a gated cell's step, shared by all cells of the kind (as
    :func:`compiled_step`: the step only, not the loop)."""
    return torch.compile(step)


class GRURNN(_GatedRNN):
    """nn.GRU as a Python loop over time (gates r, z, n; biases b_ih and b_hh; :func:`gru_step`)."""

    name = "gru"
    gates = choices.GATED_CELLS["gru"]
    torch_class = nn.GRU
    recurrence_class = GRURecurrence
    eager_step = staticmethod(gru_step)

    def _start(self, hx: Any, batch: int, like: torch.Tensor) -> list[torch.Tensor]:
        if hx is None:
            return [like.new_zeros(self.num_layers, batch, self.hidden_size)]
        return [hx]


class LSTMRNN(_GatedRNN):
    """nn.LSTM as a Python loop over time (gates i, f, g, o; biases b_ih and b_hh;
    :func:`lstm_step`). Its hidden state ``h_t`` is the output; ``c_t`` the cell state."""

    name = "lstm"
    gates = choices.GATED_CELLS["lstm"]
    torch_class = nn.LSTM
    recurrence_class = LSTMRecurrence
    eager_step = staticmethod(lstm_step)

    def _start(self, hx: Any, batch: int, like: torch.Tensor) -> list[torch.Tensor]:
        if hx is None:
            zeros = like.new_zeros(self.num_layers, batch, self.hidden_size)
            return [zeros, zeros]
        return list(hx)


def _uniform(generator: torch.Generator, hidden_size: int, *shape: int) -> torch.Tensor:
    """nn.RNN's draw (its ``reset_parameters``): U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1 / math.sqrt(hidden_size)
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


def _torch_layer(H: int, n_in: int, generator: torch.Generator, gates: int = 1) -> Weights:
    """nn.RNN's own initialisation (nn.GRU's, nn.LSTM's with ``gates`` blocks): every weight
    and bias from :func:`_uniform`."""
    u = functools.partial(_uniform, generator, H)
    return u(gates * H, n_in), u(gates * H, H), u(gates * H), u(gates * H)


def _orthogonal_layer(H: int, n_in: int, generator: torch.Generator, gates: int = 1) -> Weights:
    """nn.RNN's, with an orthogonal W_hh: all singular values 1, so the linear part neither
    grows nor shrinks h (Saxe et al.). A gated cell's W_hh: each gate's ``(H, H)`` block
    orthogonal, drawn one after the other."""
    u = functools.partial(_uniform, generator, H)
    w_ih = u(gates * H, n_in)
    blocks = [nn.init.orthogonal_(torch.empty(H, H), generator=generator) for _ in range(gates)]
    return w_ih, torch.cat(blocks), u(gates * H), u(gates * H)


def _identity_layer(H: int, n_in: int, generator: torch.Generator, gates: int = 1) -> Weights:
    """IRNN (Le, Jaitly & Hinton 2015): at the start h_t ~= relu(h_{t-1}) = h_{t-1}, so the
    state and its gradient pass through time unchanged until training says otherwise
    (vanilla cells only: ``gates`` is 1)."""
    w_ih = torch.empty(H, n_in).normal_(0, 0.001, generator=generator)
    return w_ih, torch.eye(H), torch.zeros(H), torch.zeros(H)


#: How each of ``choices.INITS`` draws one layer's (w_ih, w_hh, b_ih, b_hh) from its sizes, a
#: generator and the cell's gates; ``native`` (None) keeps each cell's constructor's draws
#: (nn.Linear's or nn.RNN's). A gated cell takes ``choices.GATED_INITS`` only.
INITS: dict[str, Callable[[int, int, torch.Generator, int], Weights] | None] = {
    "torch": _torch_layer,
    "native": None,
    "identity": _identity_layer,
    "orthogonal": _orthogonal_layer,
}


def initialize(cell: Cell, scheme: str, generator: torch.Generator) -> None:
    """Re-draw ``cell``'s weights in place by ``scheme`` (``model.init``), from ``generator``.

    Every scheme is written in nn.RNN's layout and drawn in nn.RNN's order (per layer, layer 0
    first: w_ih, w_hh, b_ih, b_hh), so equal seeds give every vanilla cell the same function.
    """
    draw = choices.lookup("model.init", scheme, INITS)
    choices.check_cell_keys(cell.name, init=scheme)
    if draw is None:
        return
    for k in range(cell.num_layers):
        n_in = cell.input_size if k == 0 else cell.hidden_size
        cell.set_layer_weights(k, *draw(cell.hidden_size, n_in, generator, cell.gates))


#: The class of each of ``choices.CELLS``.
CELLS: dict[str, type[Cell]] = {
    cls.name: cls for cls in (ScratchRNN, ConcatRNN, TorchRNN, GRURNN, LSTMRNN)
}


def build_cell(name: str, *args: Any, **kwargs: Any) -> Cell:
    """Build a cell by its config name (``model.cell``); the rest are :class:`Cell`'s arguments."""
    return choices.lookup("model.cell", name, CELLS)(*args, **kwargs)
