import lightning as L
import pytest
import torch

from rnnlab.data.tasks import SinCosDataModule
from rnnlab.models.forecaster import Forecaster


def _batch(seq_len=6, batch=8):
    dm = SinCosDataModule(seq_len=seq_len, batch_size=batch)
    dm.setup()
    return next(iter(dm.train_dataloader()))


@pytest.mark.parametrize("cell", ["scratch", "concat", "torch"])
@pytest.mark.parametrize("readout", ["linear", "concat"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_forward_and_rollout_shapes(cell, readout, num_layers):
    model = Forecaster(cell=cell, readout=readout, num_layers=num_layers, hidden_size=8)
    x, _ = _batch()
    assert model(x).shape == x.shape
    assert model.rollout(x[:3], steps=11).shape == (3, 11, 2)


def test_rollout_feeds_predictions_back():
    torch.manual_seed(0)
    model = Forecaster(cell="scratch", hidden_size=8)
    x, _ = _batch(seq_len=4)
    context = x[:2]
    out = model.rollout(context, steps=3)
    first = model(context)[:, -1]
    window = torch.cat([context[:, 1:], first[:, None]], dim=1)
    second = model(window)[:, -1]
    assert torch.allclose(out[:, 0], first) and torch.allclose(out[:, 1], second)


def test_concat_readout_uses_previous_hidden_and_current_input():
    model = Forecaster(cell="concat", readout="concat", readout_activation="tanh", hidden_size=4)
    x = torch.randn(2, 3, 2)
    h, _ = model.cell(x)
    h_prev_last = h[:, -2]
    expected = torch.tanh(model.readout.linear(torch.cat([h_prev_last, x[:, -1]], dim=1)))
    assert torch.allclose(model(x)[:, -1], expected, atol=1e-6)


def test_last_and_every_losses_give_different_gradients():
    x, y = _batch()

    def grads(loss_mode):
        torch.manual_seed(0)
        model = Forecaster(cell="scratch", loss=loss_mode, hidden_size=8)
        model.loss_fn(model(x), y).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    last, every = grads("last"), grads("every")
    assert last.shape == every.shape
    assert not torch.allclose(last, every)
    assert last.norm() > 0 and every.norm() > 0


def test_every_step_loss_scores_all_steps():
    model = Forecaster(cell="scratch", loss="every")
    pred, target = torch.zeros(2, 3, 2), torch.zeros(2, 3, 2)
    target[:, 0] = 1.0  # only the first step is wrong
    assert model.loss_fn(pred, target) > 0
    assert Forecaster(cell="scratch", loss="last").loss_fn(pred, target) == 0


@pytest.mark.parametrize("loss", ["last", "every"])
def test_training_reduces_validation_error(loss, tmp_path):
    L.seed_everything(0, verbose=False)
    dm = SinCosDataModule(batch_size=32)
    model = Forecaster(cell="scratch", loss=loss, hidden_size=16, lr=0.01)
    trainer = L.Trainer(
        max_epochs=8,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    before = trainer.validate(model, datamodule=dm, verbose=False)[0]["val/mse"]
    trainer.fit(model, datamodule=dm)
    after = trainer.callback_metrics["val/mse"].item()
    assert after < before / 10
    assert trainer.callback_metrics["val/mse_best"].item() <= after


@pytest.mark.parametrize(
    ("key", "value"),
    [("loss", "first"), ("readout", "mlp"), ("nonlinearity", "sigmoid"), ("cell", "gpt")],
)
def test_bad_choices_name_the_key_and_allowed_values(key, value):
    with pytest.raises(ValueError, match=value):
        Forecaster(**{"cell": "scratch", key: value})
