"""End-to-end: what `python train.py` leaves for TensorBoard, read from the event files and
from a real `tensorboard` server on 127.0.0.1 (a free port, bounded requests, always stopped)."""

import contextlib
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request

import matplotlib.image
import numpy as np
import pytest
from conftest import run_train
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

from rnnlab import metrics as M

pytestmark = pytest.mark.slow

SCALARS = {
    M.TRAIN_LOSS,
    M.VAL_LOSS,
    M.VAL_MSE,
    M.VAL_MAE,
    M.VAL_MSE_BEST,
    "lr-Adam",
    M.GRAD_NORM,
    M.GRAD_NORM_MAX,
    M.HIDDEN_MEAN_ABS,
    M.HIDDEN_MAX_ABS,
    M.TANH_SATURATED,
    *(M.diagnostics_tag(n) for n in (M.CLIPPED_FRACTION, M.GRAD_NORM_P50, M.GRAD_NORM_P90)),
}
#: The final metrics of the sin/cos task: all but the adding problem's mean baseline.
SINCOS_FINAL = tuple(m for m in M.FINAL_METRICS if m != M.MEAN_MSE)
FIGURES = {"figures/data", "figures/predictions", "figures/rollout", "figures/rollout_error"}
IMAGES = {*FIGURES, M.diagnostics_tag(M.GRAD_NORM_BY_STEP)}
HPARAMS = {  # the defaults, as the HParams tab shows them
    "model": "scratch",
    "model.cell": "scratch",
    "model.nonlinearity": "tanh",
    "model.hidden_size": 32,
    "model.num_layers": 1,
    "data.seq_len": 4,
    "model.loss": "last",
    "model.lr": 0.01,
    "data.batch_size": 32,
    "seed": 0,
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    proc = run_train(f"hydra.run.dir={run_dir}", "trainer.max_epochs=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def final_metrics(job_dir) -> dict[str, float]:
    result = json.loads((job_dir / "metrics.json").read_text())
    assert result["status"] == "ok"
    assert result[M.MEAN_MSE] is None  # no mean baseline on a forecasting task: persistence
    # TensorBoard keeps float32: the float64 baselines (least squares) arrive rounded to it
    return {name: float(np.float32(result[name])) for name in SINCOS_FINAL}


def test_event_file_holds_scalars_images_and_hparams_equal_to_metrics_json(run_dir):
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    assert set(tags["scalars"]) >= SCALARS | set(SINCOS_FINAL)
    assert set(tags["images"]) == IMAGES
    assert tags["histograms"] == []  # off by default
    # ||dL/dh_t||: at initialisation and for the tested checkpoint (not saved as a file)
    assert next(e.step for e in acc.Images(M.diagnostics_tag(M.GRAD_NORM_BY_STEP))) == 0
    for tag in FIGURES:
        (image,) = acc.Images(tag)
        png = (run_dir / "figures" / f"{tag.split('/')[1]}.png").read_bytes()
        assert image.encoded_image_string == png
        assert matplotlib.image.imread(io.BytesIO(png)).shape[:2] == (image.height, image.width)
    # No stray step-0 points: a curve starts at the first epoch's end.
    for tag in SCALARS - {"lr-Adam"}:
        assert all(e.step > 0 for e in acc.Scalars(tag)), tag
    assert len(acc.Scalars(M.VAL_MSE_BEST)) == 3

    hparams = acc.PluginTagToContent("hparams")
    start = metadata.parse_session_start_info_plugin_data(hparams[metadata.SESSION_START_INFO_TAG])
    shown = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    assert {k: shown[k] for k in HPARAMS} == HPARAMS
    experiment = metadata.parse_experiment_plugin_data(hparams[metadata.EXPERIMENT_TAG])
    assert [m.name.tag for m in experiment.metric_infos] == list(M.HPARAMS_METRICS)
    assert {h.name for h in experiment.hparam_infos if h.differs} == {"trainer.max_epochs"}
    end = metadata.parse_session_end_info_plugin_data(hparams[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
    # HParams shows each metric's last scalar value: exactly the numbers in metrics.json.
    last = {name: float(np.float32(acc.Scalars(name)[-1].value)) for name in SINCOS_FINAL}
    assert last == final_metrics(run_dir)


@contextlib.contextmanager
def tensorboard_server(logdir):
    """A real `tensorboard` on 127.0.0.1 and a free port; yields a JSON getter for its API."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--load_fast=false"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def api(path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/data/{path}", data=data)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    try:
        yield api
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def wait_for_scalars(api, runs: int, timeout: float = 60.0) -> dict:
    """Scalar tags by run, once the server has loaded ``runs`` runs with all their tags."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            tags = api("plugin/scalars/tags")
            if len(tags) == runs and all(set(t) >= SCALARS for t in tags.values()):
                return tags
        except OSError:  # not listening yet
            pass
        assert time.monotonic() < deadline, "tensorboard did not serve the runs in time"
        time.sleep(0.3)


def session_groups(api) -> list[dict]:
    statuses = ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING", "STATUS_UNKNOWN"]
    request = {"experimentName": "", "allowedStatuses": statuses, "startIndex": 0}
    return api("plugin/hparams/session_groups", {**request, "sliceSize": 100})["sessionGroups"]


def metric_values(group: dict) -> dict[str, float]:
    return {m["name"]["tag"]: float(np.float32(m["value"])) for m in group["metricValues"]}


def test_tensorboard_server_serves_the_run_and_its_metrics(run_dir):
    with tensorboard_server(run_dir) as api:
        wait_for_scalars(api, runs=1)
        assert api("runs") == ["tb"]
        assert set(api("plugin/images/tags")["tb"]) == IMAGES
        experiment = api("plugin/hparams/experiment", {"experimentName": ""})
        assert {h["name"] for h in experiment["hparamInfos"]} >= set(HPARAMS)
        assert [m["name"]["tag"] for m in experiment["metricInfos"]] == list(M.HPARAMS_METRICS)
        (group,) = session_groups(api)
        assert {k: group["hparams"][k] for k in HPARAMS} == HPARAMS
        assert group["sessions"][0]["status"] == "STATUS_SUCCESS"
        assert metric_values(group) == final_metrics(run_dir)


def test_sweep_directory_compares_its_jobs_by_readable_names(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_train(
        "-m", "model=scratch,torch", "trainer.max_epochs=2", f"hydra.sweep.dir={sweep_dir}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {
        "scratch": "0_model=scratch,trainer.max_epochs=2",
        "torch": "1_model=torch,trainer.max_epochs=2",
    }
    with tensorboard_server(sweep_dir) as api:
        wait_for_scalars(api, runs=2)
        assert sorted(api("runs")) == [f"{job}/tb" for job in jobs.values()]
        # What the sweep varies comes first: the HParams table shows the first five columns.
        experiment = api("plugin/hparams/experiment", {"experimentName": ""})
        assert [h["name"] for h in experiment["hparamInfos"][:2]] == ["model", "trainer.max_epochs"]
        groups = {g["hparams"]["model.cell"]: g for g in session_groups(api)}
    assert set(groups) == set(jobs)
    for cell, job in jobs.items():
        assert [s["name"] for s in groups[cell]["sessions"]] == [f"{job}/tb"]
        assert metric_values(groups[cell]) == final_metrics(sweep_dir / job)
