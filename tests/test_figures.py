"""Forecasts behind the figures, for every model variant, and the figures checked as images."""

import io

import matplotlib.image
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from rnnlab.data.tasks import SinCosDataModule
from rnnlab.models.forecaster import Forecaster
from rnnlab.observe import figures
from rnnlab.observe.rollout import forecast_test_split


@pytest.fixture(scope="module")
def dm():
    dm = SinCosDataModule(seq_len=4)
    dm.setup()
    return dm


def decode(png: bytes) -> np.ndarray:
    """The PNG as an ``(H, W, 4)`` float array in [0, 1]."""
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def assert_drawn(png: bytes, size=(figures.SIZE[0] * figures.DPI, figures.SIZE[1] * figures.DPI)):
    """A real figure: the expected size, and ink on a good part of it (not a blank canvas)."""
    image = decode(png)
    width, height = size
    assert image.shape[:2] == (round(height), round(width))
    ink = (image[..., :3] < 0.9).any(-1).mean()
    assert ink > 0.015, f"only {ink:.1%} of the pixels are drawn on"
    colours = np.unique((image * 255).astype(np.uint8).view(np.uint32))
    assert len(colours) > 20  # lines, text, colour, not a single flat fill


def test_blank_figure_is_rejected():
    """The image check above can fail."""
    with pytest.raises(AssertionError, match="pixels are drawn on"):
        assert_drawn(figures.to_png(Figure(figsize=figures.SIZE, dpi=figures.DPI)))


@pytest.mark.parametrize("cell", ["scratch", "concat", "torch"])
@pytest.mark.parametrize("readout", ["linear", "concat"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("loss", ["last", "every"])
def test_rollout_forecasts_for_every_variant(dm, cell, readout, num_layers, loss):
    torch.manual_seed(0)
    model = Forecaster(cell=cell, readout=readout, num_layers=num_layers, loss=loss, hidden_size=8)
    model.train()
    fc = forecast_test_split(model, dm)
    n_test = len(dm.windows["test"][0])
    assert fc.rollout.shape == fc.persistence.shape == (n_test, 2)
    assert fc.one_step.shape == fc.truth.shape == (n_test, 2)
    assert torch.isfinite(fc.rollout).all()
    assert model.training  # the caller's mode is restored
    # The first rollout step is the one-step forecast from the first window; later steps
    # are fed back, so they differ from the one-step forecasts from the true windows.
    assert torch.allclose(fc.rollout[0], fc.one_step[0], atol=1e-6)
    assert not torch.allclose(fc.rollout[5:], fc.one_step[5:])


def test_forecasts_are_placed_on_the_series(dm):
    fc = forecast_test_split(Forecaster(cell="scratch", hidden_size=8), dm, steps=10)
    test_start = dm.bounds[2][0]
    assert fc.context_index.tolist() == list(range(test_start, test_start + 4))
    assert torch.equal(fc.context, dm.series[test_start : test_start + 4])
    assert torch.equal(fc.truth, dm.series[fc.index])
    assert len(fc.rollout) == 10 and torch.equal(fc.persistence, fc.context[-1].expand(10, 2))
    longest = forecast_test_split(Forecaster(cell="scratch", hidden_size=8), dm, steps=10**6)
    assert len(longest.rollout) == len(fc.truth)  # no truth to score beyond the test split


def test_figures_render_as_images(dm):
    fc = forecast_test_split(Forecaster(cell="scratch", hidden_size=8), dm)
    figs = {"data": figures.data_figure(dm.series, dm.bounds), **figures.forecast_figures([fc])}
    assert set(figs) == {"data", "predictions", "rollout", "rollout_error"}
    pngs = {name: figures.to_png(fig) for name, fig in figs.items()}
    for png in pngs.values():
        assert_drawn(png)
    assert len({png for png in pngs.values()}) == 4
