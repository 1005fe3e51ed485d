"""The benchmark runs and reports every section; the speed-ups it measures are exact.

Behaviour only: timings are what ``python -m rnnlab.bench`` is for, never asserted here.
"""

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from lightning.pytorch.profilers import SimpleProfiler

from rnnlab.bench.__main__ import main
from rnnlab.bench.common import bare_trainer, checkout, targets
from rnnlab.bench.loop import EmptyStep
from rnnlab.bench.replicas import replicas_override
from rnnlab.models.cells import ConcatRNN, ScratchRNN
from rnnlab.models.forecaster import Forecaster
from rnnlab.training.experiment import build_trainer


@pytest.mark.slow  # a few real fits
def test_quick_bench_prints_tables_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    main(["--quick", "--sections", "loop,cells,data", "--json", str(path)])
    out = capsys.readouterr().out
    for heading in ("[loop]", "[cells]", "[data]", "[targets]"):
        assert heading in out
    report = json.loads(path.read_text())
    assert {"machine", "settings", "loop", "cells", "data", "targets"} <= report.keys()
    cells = [row["cell"] for row in report["loop"]["rows"] if not row["empty_step"]]
    assert cells == ["scratch", "concat", "torch"] and "trainer_ms_per_step" in report["loop"]
    for row in report["loop"]["rows"]:
        assert row["steps"] > 0 and row["ratio"] > 0 and row["plain_samples_per_s"] > 0
        assert row["bare_ratio"] > 0 and row["bare_epoch_overhead_ms"] > 0
    assert "bare_trainer_ms_per_step" in report["loop"]
    assert {row["nonlinearity"] for row in report["cells"]} == {"tanh", "relu"}
    assert report["data"]["views_new_bytes"] == 0 < report["data"]["seed_new_bytes"]
    assert all({"target", "value", "met"} <= t.keys() for t in report["targets"])


def test_bench_without_json_prints_the_tables_only(capsys):
    main(["--quick", "--sections", "data"])
    out = capsys.readouterr().out
    assert "[data]" in out and "[targets]" in out
    assert "{" not in out and "JSON" not in out


@pytest.mark.slow  # about 12 s: a few real fits
def test_quick_replicas_section_prints_its_table(tmp_path, capsys):
    path = tmp_path / "bench.json"
    main(["--quick", "--sections", "replicas", "--no-replica-processes", "--json", str(path)])
    out = capsys.readouterr().out
    assert "[replicas]" in out and "[targets]" in out
    section = json.loads(path.read_text())["replicas"]
    rows = section["rows"]
    expected = [(cell, r) for cell in ("scratch", "concat", "torch") for r in (1, 4)]
    assert [(row["cell"], row["replicas"]) for row in rows] == expected
    assert section["epochs"] == 1 and all(row["fit_s"] > 0 for row in rows)
    for row in rows:
        one = next(o for o in rows if o["cell"] == row["cell"] and o["replicas"] == 1)
        assert row["ratio"] == pytest.approx(row["fit_s"] / one["fit_s"])
        assert row["speedup"] == pytest.approx(row["replicas"] / row["ratio"])
    assert "end_to_end" not in section and "peak_rss_mib" not in rows[0]


def test_replicas_override_and_targets():
    assert replicas_override(1) == [] and replicas_override(5) == ["replicas=5"]
    rows = [
        {"cell": "scratch", "replicas": 16, "ratio": 1.5},
        {"cell": "concat", "replicas": 16, "ratio": 2.5},
        {"cell": "concat", "replicas": 8, "ratio": 9.0},  # no target at R=8 for concat
        {"cell": "torch", "replicas": 8, "ratio": 3.0},
    ]
    report = {"replicas": {"rows": rows, "end_to_end": {"seeds": 5, "speedup": 2.9}}}
    found = [(t["target"], t["met"]) for t in targets(report)]
    assert found == [
        ("replicas=16 fit / replicas=1 fit, scratch <= 2", True),
        ("replicas=16 fit / replicas=1 fit, concat <= 2", False),
        ("replicas=8 fit / replicas=1 fit, torch <= 3.2", True),
        ("sweep of 5 seeds: separate wall / replicas wall >= 3", False),
    ]


def test_bench_finds_conf_in_the_current_directory_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert checkout() == ROOT  # no conf/ here: the checkout the package was imported from
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("seed: 0\n")
    assert checkout() == tmp_path


@pytest.mark.slow
def test_quick_bench_command_runs_whole_processes(tmp_path):
    path = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "rnnlab.bench", "--quick", "--json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[job]" in proc.stdout and "[run]" in proc.stdout
    report = json.loads(path.read_text())
    rows = report["job"]["rows"]
    assert [row["cell"] for row in rows] == ["scratch", "concat", "torch"]
    assert all(0 < row["train_steps_s"] < row["job_s"] for row in rows)
    assert all(0 < row["bare_overhead_s"] < row["bare_job_s"] for row in rows)
    # one epoch: best.ckpt and last.ckpt, once each
    assert all(row["checkpoint_saves"] == 2 for row in rows)
    assert report["job"]["parts"]["checkpoint_save_ms"] > 0 < report["job"]["parts"]["figures_s"]
    run = report["run"]
    assert run["run_s"] > 0 and run["sweep_jobs"] == 3
    assert run["import_peak_rss_mib"] > 0 and run["run_peak_rss_mib"] > 0
    assert run["run_steps"] == 25  # --quick: one epoch of 25 steps, from [loop]'s steps
    assert 0 < run["sweep_job_overhead_s"] < run["sweep_job_s"]
    replicas = report["replicas"]
    assert all(row["peak_rss_mib"] > 0 for row in replicas["rows"] if row["cell"] == "scratch")
    e2e = replicas["end_to_end"]
    assert e2e["seeds"] == 2 and e2e["separate_s"] > 0 < e2e["replicas_s"]


@pytest.mark.parametrize("cell", ["scratch", "concat", "torch"])
@pytest.mark.parametrize("readout", ["linear", "concat"])
@pytest.mark.parametrize("seq_len", [1, 5])
def test_last_only_forward_is_the_last_step_of_the_full_one(cell, readout, seq_len):
    torch.manual_seed(0)
    model = Forecaster(cell=cell, readout=readout, num_layers=2, hidden_size=8)
    x = torch.randn(3, seq_len, 2)
    last = model(x, last_only=True)
    assert last.shape == (3, 1, 2)
    assert torch.allclose(last, model(x)[:, -1:], atol=1e-6)


def test_bare_trainer_keeps_the_configured_run_and_drops_the_rest(compose_cfg):
    trainer = bare_trainer(compose_cfg("trainer.max_epochs=3"))
    assert trainer.max_epochs == 3 and trainer.gradient_clip_val == 1.0
    assert trainer.logger is None and trainer.checkpoint_callback is None
    assert not [c for c in trainer.callbacks if type(c).__module__.startswith("rnnlab")]


def test_trainer_uses_the_no_op_profiler_unless_one_is_configured(compose_cfg, tmp_path):
    assert type(build_trainer(compose_cfg(), tmp_path / "a").profiler).__name__ == "NoProfiler"
    configured = compose_cfg("+trainer.profiler=simple")
    assert isinstance(build_trainer(configured, tmp_path / "b").profiler, SimpleProfiler)


@pytest.mark.parametrize("make", [Forecaster, lambda **kw: EmptyStep(Forecaster(**kw))])
def test_fast_hook_name_attribute_stays_a_plain_attribute(make):
    model = make(cell="scratch", hidden_size=4)
    model._current_fx_name = "training_step"
    assert model._current_fx_name == "training_step"
    assert "_current_fx_name" not in dict(model.named_parameters()) | dict(model.named_buffers())


@pytest.mark.slow
@pytest.mark.parametrize("cell_cls", [ScratchRNN, ConcatRNN], ids=lambda c: c.__name__)
def test_compiled_step_matches_eager(cell_cls):
    torch.manual_seed(0)
    rnn = torch.nn.RNN(2, 8, 2, nonlinearity="relu", batch_first=True)
    eager = cell_cls.from_torch(rnn)
    compiled = cell_cls(2, 8, 2, "relu", compile=True)
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(4, 6, 2)
    for cell in (eager, compiled):
        out, _ = cell(x)
        out.pow(2).sum().backward()
    assert torch.allclose(compiled(x)[0], eager(x)[0], atol=1e-5)
    for p, q in zip(compiled.parameters(), eager.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5)
