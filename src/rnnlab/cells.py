"""Three interchangeable vanilla RNN cells with ``torch.nn.RNN(batch_first=True)``'s contract.

``ScratchRNN`` is the scratch cell (an input and a hidden Linear per layer, a Python loop over
time), ``ConcatRNN`` the concat cell (one Linear over ``[h_{t-1}, x_t]``) and ``TorchRNN`` wraps
``nn.RNN``. All three compute
``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` and give the same outputs for the same
weights; they differ in how the weights are laid out and how the time loop is run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from rnnlab import choices


def _activation(nonlinearity: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.tanh`` or ``torch.relu``: each allowed name is the name of its torch function."""
    choices.check_choice("model.nonlinearity", nonlinearity, choices.NONLINEARITIES)
    return getattr(torch, nonlinearity)


Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def recur(
    x_proj: torch.Tensor,
    h: torch.Tensor,
    w_hh_t: torch.Tensor,
    act: Callable[[torch.Tensor], torch.Tensor],
    step: Step | None = None,
) -> torch.Tensor:
    """Run ``h_t = act(x_proj_t + h_{t-1} @ w_hh_t)`` over time; returns ``(B, L, H)``.

    The input projection is computed once for the whole sequence by the caller; iterating
    with ``unbind`` keeps each step's backward O(1) (indexing ``x[:, t]`` makes it O(L)).
    ``step``, when given, computes one time step instead (the compiled path).
    """
    outputs = []
    for x_t in x_proj.unbind(1):
        h = act(torch.addmm(x_t, h, w_hh_t)) if step is None else step(x_t, h, w_hh_t)
        outputs.append(h)
    return torch.stack(outputs, 1)


@functools.cache
def compiled_step(nonlinearity: str) -> Step:
    """``torch.compile`` of one time step, shared by all cells with this nonlinearity.

    Only the step is compiled: compiling the cell's forward would unroll the time loop, which
    takes tens of seconds per sequence length on CPU. Compilation happens on the first call.
    """
    act = _activation(nonlinearity)

    def step(x_t: torch.Tensor, h: torch.Tensor, w_hh_t: torch.Tensor) -> torch.Tensor:
        return act(torch.addmm(x_t, h, w_hh_t))

    return torch.compile(step)


class _LoopRNN(nn.Module):
    """Shared constructor, shape handling and layer stacking for the Python-loop cells;
    subclasses say how one layer's weights are laid out (``_make_layer``, ``_project``)."""

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
        self.step = compiled_step(nonlinearity) if compile else None
        self.layers = nn.ModuleList(
            self._make_layer(input_size if k == 0 else hidden_size, hidden_size)
            for k in range(num_layers)
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


def _check_convertible(rnn: nn.RNN) -> None:
    if rnn.bidirectional or rnn.proj_size or not rnn.bias:
        raise ValueError("from_torch supports unidirectional nn.RNN with bias and no projection")


def _layer_weights(rnn: nn.RNN, layer: int) -> tuple[torch.Tensor, ...]:
    return tuple(
        getattr(rnn, f"{name}_l{layer}").detach()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


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
        x_proj = torch.addmm(cell.ih.bias + cell.hh.bias, x.flatten(0, 1), cell.ih.weight.t())
        return x_proj.view(*x.shape[:2], -1), cell.hh.weight.t()

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> ScratchRNN:
        _check_convertible(rnn)
        cell = cls(rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.nonlinearity)
        with torch.no_grad():
            for k, layer in enumerate(cell.layers):
                w_ih, w_hh, b_ih, b_hh = _layer_weights(rnn, k)
                layer.ih.weight.copy_(w_ih)
                layer.ih.bias.copy_(b_ih)
                layer.hh.weight.copy_(w_hh)
                layer.hh.bias.copy_(b_hh)
        return cell


class ConcatRNN(_LoopRNN):
    """The concat cell: one Linear per layer over ``[h_{t-1}, x_t]``.

    The Linear's weight is ``[W_hh | W_ih]``; the loop multiplies its two column blocks
    separately, which is the same arithmetic as concatenating and avoids a copy per step.
    """

    def _make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        return nn.Linear(hidden_size + input_size, hidden_size)

    def _project(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        linear = self.layers[layer]
        w_hh, w_ih = linear.weight.split([self.hidden_size, x.shape[-1]], dim=1)
        x_proj = torch.addmm(linear.bias, x.flatten(0, 1), w_ih.t())
        return x_proj.view(*x.shape[:2], -1), w_hh.t()

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> ConcatRNN:
        _check_convertible(rnn)
        cell = cls(rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.nonlinearity)
        with torch.no_grad():
            for k, linear in enumerate(cell.layers):
                w_ih, w_hh, b_ih, b_hh = _layer_weights(rnn, k)
                linear.weight.copy_(torch.cat([w_hh, w_ih], dim=1))
                linear.bias.copy_(b_ih + b_hh)
        return cell


class TorchRNN(nn.Module):
    """``torch.nn.RNN`` (cuDNN on GPU, a C++ loop on CPU) behind the same interface.

    ``compile`` is accepted for a uniform interface and ignored: the loop is not Python.
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
        _activation(nonlinearity)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity = nonlinearity
        self.rnn = nn.RNN(
            input_size, hidden_size, num_layers, nonlinearity=nonlinearity, batch_first=True
        )

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rnn(x, h0)

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> TorchRNN:
        _check_convertible(rnn)
        cell = cls(rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.nonlinearity)
        cell.rnn.load_state_dict(rnn.state_dict())
        return cell


#: The class of each of ``choices.CELLS``, in the same order.
CELL_CLASSES: tuple[type[nn.Module], ...] = (ScratchRNN, ConcatRNN, TorchRNN)


def build_cell(
    name: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    nonlinearity: str = "tanh",
    compile: bool = False,
) -> nn.Module:
    """Build a cell by its config name (``model.cell``)."""
    cls = choices.pick("model.cell", name, choices.CELLS, CELL_CLASSES)
    return cls(input_size, hidden_size, num_layers, nonlinearity, compile=compile)
