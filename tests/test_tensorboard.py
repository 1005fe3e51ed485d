"""TensorBoard output of real runs (real Hydra config, Trainer and event files), kept short."""

import json
import re

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

from rnnlab import metrics as M
from rnnlab.data.tasks import SinCosDataModule
from rnnlab.models.forecaster import Forecaster
from rnnlab.observe.tensorboard import GradNormMonitor, JobOutput, hidden_state_health
from rnnlab.training.experiment import train_and_test

ALL = {"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}


def events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance=ALL)
    acc.Reload()
    return acc


def steps(acc: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def relu_run(tmp_path_factory, compose_cfg):
    """Two epochs of a ReLU run with every TensorBoard option on, and clipping so tight that
    every gradient is clipped (to tell norms before clipping from norms after it)."""
    run_dir = tmp_path_factory.mktemp("relu")
    cfg = compose_cfg(
        "model.nonlinearity=relu",
        "trainer.max_epochs=2",
        "trainer.gradient_clip_val=0.001",
        "logger.histograms=true",
        "logger.figures_every_n_epochs=1",
        "logger.rollout_steps=30",
    )
    result = train_and_test(cfg, run_dir)
    torch.set_num_threads(1)
    return run_dir, result, events(run_dir)


def test_grad_norm_and_health_once_per_epoch(relu_run):
    _, result, acc = relu_run
    assert result["status"] == "ok"
    epochs = steps(acc, M.VAL_MSE)
    assert len(epochs) == 2
    for tag in (M.GRAD_NORM, M.GRAD_NORM_MAX, M.HIDDEN_MEAN_ABS, M.HIDDEN_MAX_ABS, M.RELU_DEAD):
        assert steps(acc, tag) == epochs, tag
    assert M.TANH_SATURATED not in acc.Tags()["scalars"]  # a ReLU run has no tanh to saturate
    mean = [e.value for e in acc.Scalars(M.GRAD_NORM)]
    peak = [e.value for e in acc.Scalars(M.GRAD_NORM_MAX)]
    assert all(0 < m <= p for m, p in zip(mean, peak, strict=True))
    assert min(mean) > 0.001  # measured before clipping: after it, no norm exceeds 0.001
    assert all(0 <= e.value <= 1 for e in acc.Scalars(M.RELU_DEAD))
    assert all(e.value > 0 for e in acc.Scalars(M.HIDDEN_MEAN_ABS))


def test_histograms_when_switched_on(relu_run):
    _, _, acc = relu_run
    tags = acc.Tags()["histograms"]
    params = {tag.split("/", 1)[1] for tag in tags if tag.startswith("weights/")}
    assert "cell.layers.0.hh.weight" in params and "readout.linear.bias" in params
    assert {tag for tag in tags if tag.startswith("grads/")} == {f"grads/{p}" for p in params}
    assert len(acc.Histograms("weights/cell.layers.0.hh.weight")) == 2  # one per epoch


def test_figures_every_epoch_and_after_testing(relu_run):
    run_dir, result, acc = relu_run
    final_step = result["steps"]
    assert [e.step for e in acc.Images("figures/data")] == [final_step]
    # Epoch 1 during training; the last epoch is drawn after testing, from the best checkpoint.
    for name in ("predictions", "rollout", "rollout_error"):
        images = acc.Images(f"figures/{name}")
        assert [e.step for e in images] == [steps(acc, M.VAL_MSE)[0], final_step]
        assert images[0].encoded_image_string != images[1].encoded_image_string
        assert (run_dir / "figures" / f"{name}.png").read_bytes() == images[1].encoded_image_string
    assert (run_dir / "figures" / "data.png").stat().st_size > 10_000


def test_figures_switched_off_leave_no_images_and_keep_the_rollout_metric(tmp_path, compose_cfg):
    result = train_and_test(
        compose_cfg("data.n_points=200", "trainer.max_epochs=1", "logger.figures=false"),
        tmp_path,
    )
    assert result["status"] == "ok" and result[M.TEST_ROLLOUT_MSE] > 0
    assert not (tmp_path / "figures").exists()
    assert events(tmp_path).Tags()["images"] == []


def test_diverged_run_is_a_failed_session_without_metrics(tmp_path, compose_cfg):
    run_dir = tmp_path / "diverged"
    result = train_and_test(compose_cfg("model.lr=1e30", "trainer.max_epochs=2"), run_dir)
    torch.set_num_threads(1)
    assert result["status"] == "diverged"
    content = events(run_dir).PluginTagToContent("hparams")
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_FAILURE
    assert json.loads((run_dir / "metrics.json").read_text())[M.TEST_ROLLOUT_MSE] is None


def test_grad_norm_is_the_norm_that_clipping_sees():
    model = Forecaster(cell="scratch", hidden_size=8)
    dm = SinCosDataModule()
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    model.loss_fn(model(x), y).backward()
    monitor = GradNormMonitor([JobOutput(seeds=[0])])
    monitor.on_train_start(None, model)
    monitor.on_before_optimizer_step(None, model, None)
    # clip_grad_norm_ returns the total norm it measured before scaling the gradients down
    before_clipping = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1e-3)
    (norm,) = monitor.norms
    assert norm.item() == pytest.approx(before_clipping.item(), rel=1e-6)
    assert norm.item() > 1e-3


def test_hidden_state_health_numbers():
    h = torch.zeros(2, 3, 4)
    h[..., 0], h[..., 1], h[..., 2] = 0.995, -0.999, 0.5  # unit 3 stays 0 everywhere
    h[0, 0, 2] = 0.0  # zero once: not dead
    tanh = hidden_state_health(h, "tanh")
    assert tanh[M.TANH_SATURATED].item() == pytest.approx(0.5)
    assert tanh[M.HIDDEN_MAX_ABS].item() == pytest.approx(0.999)
    assert tanh[M.HIDDEN_MEAN_ABS].item() == pytest.approx(h.abs().mean().item())
    relu = hidden_state_health(h.clamp(min=0), "relu")
    assert relu[M.RELU_DEAD].item() == pytest.approx(0.5)  # units 1 (negative) and 3
    assert M.TANH_SATURATED not in relu and M.RELU_DEAD not in tanh


@pytest.mark.parametrize(
    ("overrides", "suffix"),
    [
        # the choice of group first, so a cut-off name still shows the cell
        (["model.nonlinearity=relu", "model=concat"], "_model=concat,model.nonlinearity=relu"),
        (["seed=2", "data.seq_len=8", "model=torch"], "_model=torch,seed=2,data.seq_len=8"),
        (["seed=3", "resume=null", "logger.histograms=true"], "_seed=3"),  # no effect on results
        (["threads=2", "logger=tensorboard", "seed=3"], "_seed=3"),
        ([], ""),  # no overrides: outputs/<date>/<time>, no trailing "_"
    ],
)
def test_single_run_directory_names_its_overrides(overrides, suffix, compose_cfg):
    run_dir = compose_cfg(*overrides, hydra=True).hydra.run.dir
    assert re.fullmatch(r"outputs/\d{4}-\d\d-\d\d/[\d-]+" + re.escape(suffix), run_dir), run_dir
