"""Gradient-flow diagnostics: how much of the loss's gradient reaches the early steps of a
window, the recurrent weights' spectra, and how often clipping acts.

Pascanu, Mikolov & Bengio (2013): backpropagating one step multiplies the gradient by the step
Jacobian ``W_hh^T diag(act'(a_t))``. A largest singular value of ``W_hh`` below ``1 / gamma``
(gamma bounds ``act'``: 1 for tanh and ReLU) is sufficient for gradients to vanish, a spectral
radius above 1 necessary for them to explode. Bengio, Simard & Frasconi (1994): gradients from
far steps vanish. The Deep Learning Tuning Playbook: if clipping acts on more than half the
steps, a lower learning rate is the better fix.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from rnnlab import metrics as M
from rnnlab.models.cells import top_layer_states
from rnnlab.models.forecaster import read_out
from rnnlab.models.network import Networks, Readout


def spectra(layers: Any) -> dict[str, list[Any]]:
    """Spectral radius and largest singular value of each layer's ``W_hh`` (float64), from a
    cell (``num_layers`` and ``layer_weights(k)``, in nn.RNN's layout); for replicas (stacked
    ``(R, H, H)`` weights) each layer's entry is a list of R values.

    NaN for a gated cell (GRU, LSTM): its step Jacobian is not ``W_hh^T diag(act')`` but mixes
    the gates' blocks of W_hh, scaled by gate values, so no spectrum of W_hh bounds it as
    Pascanu et al.'s does a vanilla cell's. metrics.json shows it as null per layer."""
    radius, sigma = [], []
    for k in range(layers.num_layers):
        w = layers.layer_weights(k)[1].double().cpu()  # W_hh, in nn.RNN's layout
        if w.shape[-2] != w.shape[-1]:  # a gated cell's gates' blocks: no one step Jacobian
            nan = torch.full(w.shape[:-2], torch.nan).tolist()
            radius.append(nan)
            sigma.append(nan)
            continue
        # A replica frozen when its weights stopped being finite has no spectrum (NaN), and
        # LAPACK refuses non-finite input: decompose zeros in its place.
        finite = w.isfinite().flatten(-2).all(-1)
        w = torch.where(finite[..., None, None], w, 0.0)
        nan = torch.tensor(torch.nan, dtype=w.dtype)
        eig = torch.where(finite, torch.linalg.eigvals(w).abs().amax(-1), nan)
        radius.append(eig.tolist())
        sigma.append(torch.where(finite, torch.linalg.matrix_norm(w, ord=2), nan).tolist())
    return {M.SPECTRAL_RADIUS: radius, M.SIGMA_MAX: sigma}


def grad_norm_by_step(layers: Any, readout: Readout, x: torch.Tensor, y: torch.Tensor) -> list[Any]:
    """``||dL/dh_t||`` for every step t of the window, for the top layer's hidden state, where
    L is the MSE of the prediction at the last step (the last-step loss).

    The window is run again with the cell's own weights (``layers``: ``num_layers``,
    ``recurrence``, ``layer_weights(k)`` in nn.RNN's layout) by
    rnnlab.models.cells.top_layer_states, which keeps each ``h_t``, so that autograd can report
    the total derivative through every later step, not only through the readout. The norm is
    over the batch and the hidden units. For an LSTM ``h_t`` is its output state: the norm is
    of ``dL/dh_t`` only (the paths through the cell state are in it, ``dL/dc_t`` is not). For
    replicas (``(R, B, L, C)`` inputs, stacked weights) the result is one such list per
    replica, from each replica's own loss.
    """
    # detached: the model's .grad stays untouched
    weights = [layers.layer_weights(k) for k in range(layers.num_layers)]
    # Callers may sit in Lightning's no-grad or inference-mode evaluation loop.
    with torch.inference_mode(False), torch.enable_grad():
        # the eager step: the window's re-run needs no compiled one
        states = top_layer_states(x, weights, replace(layers.recurrence, step=None), track=True)
        prediction = read_out(readout, x, torch.stack(states, -2), last_only=True)
        errors = nn.functional.mse_loss(prediction, y[..., -1:, :], reduction="none")
        # each replica's own loss; their sum keeps the replicas' gradients apart
        loss = errors.mean() if x.dim() == 3 else errors.flatten(1).mean(1).sum()
        # autograd.grad, not backward: the readout's .grad (mid-training) stays untouched.
        # The concat readout predicts from h_{t-1}: there the last state gets no gradient.
        grads = torch.autograd.grad(loss, states, allow_unused=True)
    norms = [
        torch.zeros(x.shape[:-3]) if g is None else torch.linalg.vector_norm(g, dim=(-2, -1))
        for g in grads
    ]
    return torch.stack(norms, -1).tolist()


def clipping_stats(norms: torch.Tensor, clip: float | None) -> dict[str, float]:
    """Share of steps whose unclipped gradient norm exceeded ``clip`` (what Lightning's norm
    clipping then scales down), and the median and 90th percentile of the norm."""
    norms = norms.double()
    clipped = (norms > clip).double().mean().item() if clip else 0.0
    p50, p90 = torch.quantile(norms, torch.tensor([0.5, 0.9], dtype=norms.dtype)).tolist()
    return {M.CLIPPED_FRACTION: clipped, M.GRAD_NORM_P50: p50, M.GRAD_NORM_P90: p90}


def diagnose(networks: Networks, batch: tuple[torch.Tensor, torch.Tensor]) -> list[dict[str, Any]]:
    """Each network's diagnostics on a batch (a module's own batch: ``(R, B, L, C)`` for
    replicas, row r replica r's): its spectra and gradient flow."""
    found = {
        **spectra(networks.layers),
        M.GRAD_NORM_BY_STEP: grad_norm_by_step(networks.layers, networks.readout, *batch),
    }
    if batch[0].dim() == 3:  # one network
        return [found]
    per_layer = (M.SPECTRAL_RADIUS, M.SIGMA_MAX)
    return [
        {
            **{name: [layer[r] for layer in found[name]] for name in per_layer},
            M.GRAD_NORM_BY_STEP: norms,
        }
        for r, norms in enumerate(found[M.GRAD_NORM_BY_STEP])
    ]
