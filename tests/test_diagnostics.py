"""Gradient-flow diagnostics against independent computations, and where they are reported."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rnnlab import metrics as M
from rnnlab.models.forecaster import Forecaster
from rnnlab.observe import diagnostics
from rnnlab.training.experiment import train_and_test


def independent_grad_norms(model: Forecaster, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """``||dL/dh_t||`` by another route: run the cell itself up to t, make its state at t a
    leaf, run the cell on from there (``h0=``) and differentiate the last-step loss by it."""
    norms, steps = [], x.shape[1]
    for t in range(steps):
        _, h_t = model.cell(x[:, : t + 1])
        leaf = h_t.detach().requires_grad_()
        if t + 1 < steps:
            rest, _ = model.cell(x[:, t + 1 :], leaf)
            h_last = rest[:, -1]
            h_prev = rest[:, -2] if rest.shape[1] > 1 else leaf[-1]
        else:
            h_last = leaf[-1]
            h_prev = model.cell(x[:, :t])[0][:, -1] if t else torch.zeros_like(h_last)
        loss = torch.nn.functional.mse_loss(model.readout(x[:, -1], h_prev, h_last), y[:, -1])
        # the concat readout reads h_{t-1}: the last state then gets no gradient at all
        (grad,) = torch.autograd.grad(loss, leaf, allow_unused=True)
        norms.append(0.0 if grad is None else torch.linalg.vector_norm(grad[-1]).item())
    return norms


@pytest.mark.parametrize("cell", ["scratch", "concat", "torch"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_grad_norm_by_step_equals_an_independent_autograd_computation(
    cell, nonlinearity, num_layers
):
    torch.manual_seed(0)
    model = Forecaster(
        cell=cell,
        nonlinearity=nonlinearity,
        num_layers=num_layers,
        hidden_size=6,
        readout="concat" if cell == "concat" else "linear",
    )
    x, y = torch.randn(5, 7, 2), torch.randn(5, 7, 2)
    rng = torch.get_rng_state()
    got = diagnostics.grad_norm_by_step(model.cell, model.readout, x, y)
    assert torch.equal(torch.get_rng_state(), rng)  # builds nothing that would draw from it
    want = independent_grad_norms(model, x, y)
    assert len(got) == 7
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)
    assert all(p.grad is None for p in model.parameters())  # the model's gradients untouched


@pytest.mark.parametrize("cell", ["scratch", "concat", "torch"])
def test_spectra_equal_numpys_on_each_layers_recurrent_weights(cell):
    torch.manual_seed(1)
    model = Forecaster(cell=cell, num_layers=2, hidden_size=5)
    got = diagnostics.spectra(model.cell)
    rnn = model.cell.to_torch()
    for k in range(2):
        w = getattr(rnn, f"weight_hh_l{k}").detach().double().numpy()
        assert got[M.SPECTRAL_RADIUS][k] == pytest.approx(np.abs(np.linalg.eigvals(w)).max())
        assert got[M.SIGMA_MAX][k] == pytest.approx(np.linalg.svd(w, compute_uv=False)[0])


def test_a_replica_with_non_finite_weights_has_no_spectrum_and_the_others_theirs():
    """A replica frozen when its weights stopped being finite: NaN for it, not a LAPACK error
    that would end the whole job."""
    from types import SimpleNamespace

    torch.manual_seed(2)
    w = torch.randn(3, 4, 4)
    w[1, 0, 0] = torch.nan
    layers = SimpleNamespace(num_layers=1, layer_weights=lambda k: (None, w))
    got = diagnostics.spectra(layers)
    radius, sigma = got[M.SPECTRAL_RADIUS][0], got[M.SIGMA_MAX][0]
    assert math.isnan(radius[1]) and math.isnan(sigma[1])
    for r in (0, 2):
        ref = w[r].double().numpy()
        assert radius[r] == pytest.approx(np.abs(np.linalg.eigvals(ref)).max())
        assert sigma[r] == pytest.approx(np.linalg.svd(ref, compute_uv=False)[0])


def test_clipping_stats_count_the_steps_above_the_clip():
    norms = torch.tensor([0.5, 2.0, 0.9, 3.0])
    stats = diagnostics.clipping_stats(norms, 1.0)
    assert stats[M.CLIPPED_FRACTION] == 0.5
    assert stats[M.GRAD_NORM_P50] == pytest.approx(np.quantile([0.5, 2.0, 0.9, 3.0], 0.5))
    assert stats[M.GRAD_NORM_P90] == pytest.approx(np.quantile([0.5, 2.0, 0.9, 3.0], 0.9))
    assert diagnostics.clipping_stats(norms, None)[M.CLIPPED_FRACTION] == 0.0


@pytest.fixture(scope="module")
def diagnosed_run(tmp_path_factory, compose_cfg):
    run_dir = tmp_path_factory.mktemp("diagnosed")
    cfg = compose_cfg("data.n_points=300", "trainer.max_epochs=3", "model.num_layers=2")
    return train_and_test(cfg, run_dir), run_dir


def test_metrics_json_holds_the_tested_checkpoints_diagnostics(diagnosed_run):
    _, run_dir = diagnosed_run
    record = json.loads((run_dir / M.METRICS_FILE).read_text())
    diag = record[M.DIAGNOSTICS]
    assert len(diag[M.SPECTRAL_RADIUS]) == len(diag[M.SIGMA_MAX]) == 2  # one per layer
    assert len(diag[M.GRAD_NORM_BY_STEP]) == record["config"]["data"]["seq_len"]
    assert 0 <= diag[M.CLIPPED_FRACTION] <= 1
    assert 0 < diag[M.GRAD_NORM_P50] <= diag[M.GRAD_NORM_P90]
    # computed on the tested checkpoint: the best one, reloaded
    model = Forecaster.load_from_checkpoint(record["best_checkpoint"])
    tested = diagnostics.spectra(model.cell)
    assert diag[M.SPECTRAL_RADIUS] == pytest.approx(tested[M.SPECTRAL_RADIUS])


def test_tensorboard_gets_the_diagnostics_per_epoch_and_the_figures(diagnosed_run):
    _, run_dir = diagnosed_run
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for name in (
        M.GRAD_FIRST_OVER_LAST,
        f"{M.SPECTRAL_RADIUS}_l1",
        f"{M.SIGMA_MAX}_l0",
        M.CLIPPED_FRACTION,
        M.GRAD_NORM_P90,
    ):
        assert M.diagnostics_tag(name) in scalars, name
    first_over_last = events.Scalars(M.diagnostics_tag(M.GRAD_FIRST_OVER_LAST))
    assert len(first_over_last) == 1 + 3 + 1  # at initialisation, each epoch, tested checkpoint
    images = events.Images(M.diagnostics_tag(M.GRAD_NORM_BY_STEP))
    assert len(images) == 2  # at initialisation and for the tested checkpoint
