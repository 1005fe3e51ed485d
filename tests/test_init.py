"""``model.init``: with ``torch`` (the default) and the same seed, the cells start alike and train
alike: the source text's equality of one forward pass, extended to a whole run."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from rnnlab.training.experiment import build_model, train_and_test

TINY = (
    "data.n_points=300",
    "trainer.max_epochs=5",
    "trainer.deterministic=true",
    "logger.figures=false",  # 0.8 s a run, and no number here depends on them
)
COMPARED = ("val/mse_best", "val/mse", "test/mse", "test/mae", "test/rollout_mse")


def start(compose_cfg, *overrides: str):
    cfg = compose_cfg(*overrides)
    L.seed_everything(cfg.seed, verbose=False)
    return build_model(cfg)


@pytest.mark.parametrize("layers", [1, 2])
def test_scratch_and_torch_start_from_identical_weights(compose_cfg, layers):
    scratch = start(compose_cfg, "model=scratch", f"model.num_layers={layers}")
    torch_ = start(compose_cfg, "model=torch", f"model.num_layers={layers}")
    a, b = scratch.cell.to_torch().state_dict(), torch_.cell.to_torch().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(
        torch.equal(p, q)
        for p, q in zip(scratch.readout.parameters(), torch_.readout.parameters(), strict=True)
    )
    # concat starts from the equivalent weights: the same W_ih, W_hh and b_ih + b_hh
    concat = start(compose_cfg, "model=concat", f"model.num_layers={layers}")
    for k in range(layers):
        w_ih, w_hh, b_ih, b_hh = scratch.cell.layer_weights(k)
        c_ih, c_hh, c_b, _ = concat.cell.layer_weights(k)
        assert torch.equal(c_ih, w_ih) and torch.equal(c_hh, w_hh)
        assert torch.allclose(c_b, b_ih + b_hh)


def test_native_keeps_each_cells_own_start(compose_cfg):
    scratch = start(compose_cfg, "model=scratch", "model.init=native")
    torch_ = start(compose_cfg, "model=torch", "model.init=native")
    assert not torch.equal(scratch.cell.layer_weights(0)[0], torch_.cell.layer_weights(0)[0])
    # the scratch cell's own nn.Linear(2, H): input weights up to 1/sqrt(2), not 1/sqrt(H)
    assert scratch.cell.layer_weights(0)[0].abs().max() > 32**-0.5


def test_scratch_and_torch_train_alike_from_the_same_start(compose_cfg, tmp_path):
    results = {
        cell: train_and_test(compose_cfg(f"model={cell}", *TINY), tmp_path / cell)
        for cell in ("scratch", "torch")
    }
    scratch, torch_ = results["scratch"], results["torch"]
    relative = {k: abs(scratch[k] - torch_[k]) / abs(torch_[k]) for k in COMPARED}
    print("largest relative difference after 5 epochs:", max(relative.values()), relative)
    assert max(relative.values()) < 1e-3
