"""The gated reference cells (``model=gru``, ``model=lstm``): their outputs and gradients
against nn.GRU and nn.LSTM, their initialisations, the keys that mean nothing for them, their
gradient-flow diagnostics, and their replicas and packs against each network's own run."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from rnnlab import metrics as M
from rnnlab.config import choices
from rnnlab.config.checks import validate
from rnnlab.config.cli import error_line
from rnnlab.config.errors import ConfigError
from rnnlab.data.tasks import ReplicaDataModule, SinCosDataModule
from rnnlab.models.cells import CELLS, GRURNN, LSTMRNN, initialize
from rnnlab.models.forecaster import Forecaster
from rnnlab.models.pack import PackForecaster
from rnnlab.models.replica_net import ReplicaNet
from rnnlab.models.replicas import ReplicaForecaster
from rnnlab.observe import diagnostics
from rnnlab.training.fused import pack_key
from tests.conftest import run_train
from tests.test_replicas import DATA, forecasters, trainer

GATED = {"gru": (GRURNN, nn.GRU, nn.GRUCell), "lstm": (LSTMRNN, nn.LSTM, nn.LSTMCell)}
SMALL = dict(hidden_size=8, lr=0.01)


def _loss(out: torch.Tensor, h_n) -> torch.Tensor:
    """A loss reading every output and every final state (an LSTM's ``(h_n, c_n)`` both)."""
    finals = h_n if isinstance(h_n, tuple) else (h_n,)
    return out.pow(2).sum() + sum(f.sin().sum() for f in finals)


@pytest.mark.parametrize("name", GATED)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_outputs_and_gradients_match_the_torch_module(name, num_layers):
    cls, torch_cls, _ = GATED[name]
    torch.manual_seed(0)
    rnn = torch_cls(3, 8, num_layers, batch_first=True)
    cell = cls.from_torch(rnn)
    x = torch.randn(5, 7, 3)
    h0 = torch.randn(num_layers, 5, 8)
    starts = [None, h0 if name == "gru" else (h0, torch.randn(num_layers, 5, 8))]
    for hx in starts:
        x_rnn, x_cell = x.clone().requires_grad_(), x.clone().requires_grad_()
        rnn.zero_grad()
        out, h_n = rnn(x_rnn, hx)
        _loss(out, h_n).backward()
        got, got_h = cell(x_cell, hx)
        cell.zero_grad()
        _loss(got, got_h).backward()
        torch.testing.assert_close(got, out, rtol=0, atol=1e-6)
        for mine, theirs in zip(
            got_h if name == "lstm" else [got_h], h_n if name == "lstm" else [h_n], strict=True
        ):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)
        torch.testing.assert_close(x_cell.grad, x_rnn.grad, rtol=1e-5, atol=1e-5)
        params = dict(rnn.named_parameters())
        assert params.keys() == dict(cell.named_parameters()).keys()  # nn.GRU's names
        for pname, param in cell.named_parameters():
            torch.testing.assert_close(param.grad, params[pname].grad, rtol=1e-5, atol=1e-5)
    # one sequence without a batch dimension, as the torch module takes it
    torch.testing.assert_close(cell(x[0])[0], rnn(x[0])[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", GATED)
def test_to_torch_is_from_torchs_inverse_and_the_constructors_draw_alike(name):
    cls, torch_cls, _ = GATED[name]
    torch.manual_seed(4)
    cell = cls(3, 5, 2)
    torch.manual_seed(4)
    fresh = torch_cls(3, 5, 2, batch_first=True)
    rnn = cell.to_torch()
    assert type(rnn) is torch_cls and rnn.batch_first
    for (n, p), (m, q), (_, r) in zip(
        cell.named_parameters(), rnn.named_parameters(), fresh.named_parameters(), strict=True
    ):
        assert n == m and torch.equal(p, q) and torch.equal(p, r)  # the seed's own draw
    assert cell.gates == choices.GATED_CELLS[name] and CELLS[name] is cls
    with pytest.raises(TypeError, match=torch_cls.__name__):
        cls.from_torch(nn.RNN(3, 5))


@pytest.mark.parametrize("name", GATED)
def test_inits_draw_each_gates_weights(name):
    cls = GATED[name][0]
    H = 6
    cell = cls(3, H, 2)
    initialize(cell, "torch", torch.Generator().manual_seed(0))
    for w in (p for k in range(2) for p in cell.layer_weights(k)):
        assert w.shape[0] == cell.gates * H and w.abs().max() <= H**-0.5
    initialize(cell, "orthogonal", torch.Generator().manual_seed(0))
    for k in range(2):
        blocks = cell.layer_weights(k)[1].split(H)
        assert len(blocks) == cell.gates
        for block in blocks:
            torch.testing.assert_close(block @ block.T, torch.eye(H), rtol=0, atol=1e-5)
        assert not torch.equal(blocks[0], blocks[1])  # each gate its own draw
    for scheme in ("identity", "native"):
        with pytest.raises(ConfigError, match=f"^model.init={scheme} is not allowed"):
            initialize(cell, scheme, torch.Generator())


#: Each key a gated cell refuses, and what the one line says is allowed.
REFUSED = {
    ("model=gru", "model.nonlinearity=relu"): "expected tanh with model.cell=gru",
    ("model=lstm", "model.nonlinearity=relu"): "expected tanh with model.cell=lstm",
    ("model=gru", "model.init=identity"): "expected one of: torch, orthogonal with model.cell=gru",
    ("model=lstm", "model.init=native"): "expected one of: torch, orthogonal with model.cell=lstm",
}


@pytest.mark.parametrize("overrides", REFUSED, ids=" ".join)
def test_keys_that_mean_nothing_for_a_gated_cell_are_one_line_errors(compose_cfg, overrides):
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(*overrides))
    line = error_line(err.value, list(overrides))
    key, value = overrides[1].split("=")
    assert line == f"{key}={value} is not allowed; {REFUSED[overrides]}" + (
        " (its activations are fixed: sigmoid gates, tanh candidate)" if "nonlin" in key else ""
    )
    # the Python API refuses them alike
    cell = overrides[0].split("=")[1]
    with pytest.raises(ConfigError, match=f"^{key}={value} is not allowed"):
        Forecaster(cell=cell, **{key.split(".")[1]: value})


def test_what_applies_to_a_gated_cell_is_accepted(compose_cfg):
    for cell in GATED:
        validate(compose_cfg(f"model={cell}", "model.init=orthogonal", "model.num_layers=2"))
        validate(
            compose_cfg(f"model={cell}", "model.readout=concat", "model.readout_activation=tanh")
        )
    with pytest.raises(ConfigError, match=r"^model\.nonlinearity=relu is not allowed"):
        GRURNN(2, 4, nonlinearity="relu")


def _stepwise_grad_norms(model: Forecaster, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """||dL/dh_t|| through torch's own cell modules (nn.GRUCell, nn.LSTMCell) stepped by hand:
    an implementation of the diagnostic that shares no code with rnnlab's."""
    rnn = model.cell.to_torch()
    cell_cls = GATED[model.hparams.cell][2]
    inputs, states = x, []
    for k in range(rnn.num_layers):
        step = cell_cls(rnn.input_size if k == 0 else rnn.hidden_size, rnn.hidden_size)
        step.load_state_dict(
            {n[: -len(f"_l{k}")]: p for n, p in rnn.named_parameters() if n.endswith(f"_l{k}")}
        )
        h = torch.zeros(x.shape[0], rnn.hidden_size)
        state = h if model.hparams.cell == "gru" else (h, torch.zeros_like(h))
        states = []
        for t in range(x.shape[1]):
            state = step(inputs[:, t], state)
            h_t = state if model.hparams.cell == "gru" else state[0]
            h_t.retain_grad()
            states.append(h_t)
        inputs = torch.stack(states, 1)
    h = inputs
    h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], 1)
    pred = model.readout(x[:, -1], h_prev[:, -1], h[:, -1])
    nn.functional.mse_loss(pred, y[:, -1]).backward()
    return [0.0 if s.grad is None else s.grad.norm().item() for s in states]


@pytest.mark.parametrize("readout", choices.READOUTS)
@pytest.mark.parametrize("name", GATED)
def test_gradient_flow_is_dL_dh_t_of_the_output_state_and_spectra_are_undefined(name, readout):
    torch.manual_seed(0)
    model = Forecaster(cell=name, num_layers=2, readout=readout, **SMALL)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 6, 2, generator=gen), torch.randn(4, 6, 2, generator=gen)
    (found,) = diagnostics.diagnose(model.networks(), (x, y))
    want = _stepwise_grad_norms(model, x, y)
    assert found[M.GRAD_NORM_BY_STEP] == pytest.approx(want, rel=1e-4, abs=1e-9)
    assert sum(v > 0 for v in want) >= 5  # the gradient reaches back through the gates
    assert all(math.isnan(v) for v in found[M.SPECTRAL_RADIUS] + found[M.SIGMA_MAX])
    assert len(found[M.SPECTRAL_RADIUS]) == 2  # one (undefined) value per layer
    # replicas: each its own network's
    nets = forecasters(2, cell=name, num_layers=2, readout=readout, **SMALL)
    stacked = ReplicaNet(nets)
    xs, ys = torch.stack([x, x * 0.5]), torch.stack([y, y])
    per_replica = diagnostics.diagnose(diagnostics_networks(stacked), (xs, ys))
    for r, net in enumerate(nets):
        (alone,) = diagnostics.diagnose(net.networks(), (xs[r], ys[r]))
        assert per_replica[r][M.GRAD_NORM_BY_STEP] == pytest.approx(
            alone[M.GRAD_NORM_BY_STEP], rel=1e-4, abs=1e-9
        )


def diagnostics_networks(stacked: ReplicaNet):
    from rnnlab.models.network import Networks

    return Networks(stacked, stacked, stacked.readout)


@pytest.mark.parametrize("readout", choices.READOUTS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("name", GATED)
def test_each_replica_gives_its_cells_outputs_and_gradients(name, layers, readout):
    nets = forecasters(3, cell=name, num_layers=layers, readout=readout, **SMALL)
    stacked = ReplicaNet(nets)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 5, 6, 2, generator=gen), torch.randn(3, 5, 6, 2, generator=gen)
    out = stacked(x)
    ((out - y) ** 2).mean((1, 2, 3)).sum().backward()
    for r, net in enumerate(nets):
        alone = net(x[r])
        ((alone - y[r]) ** 2).mean().backward()
        torch.testing.assert_close(out[r], alone, rtol=1e-5, atol=1e-6)
        for pname, param in net.named_parameters():
            torch.testing.assert_close(
                stacked.param(pname).grad[r], param.grad, rtol=1e-4, atol=1e-6
            )


def test_replicas_train_as_their_own_runs():
    """replicas=3 of a GRU, trained by the real Trainer, against each seed's own run (an LSTM's
    pack below, likewise)."""
    kwargs = dict(cell="gru", init="orthogonal", **SMALL)
    model = ReplicaForecaster(replicas=3, seed=0, **kwargs)
    members = [SinCosDataModule(**DATA, seed=s) for s in range(3)]
    trainer(gradient_clip_val=0.05).fit(model, datamodule=ReplicaDataModule(members))
    for r in range(3):
        (alone,) = forecasters(1, seed=r, **kwargs)
        trainer(gradient_clip_val=0.05).fit(alone, datamodule=SinCosDataModule(**DATA, seed=r))
        for pname, param in alone.named_parameters():
            torch.testing.assert_close(model.net.param(pname)[r], param, rtol=2e-5, atol=1e-6)
        assert model.best_val_mse[r].item() == pytest.approx(
            alone.val_mse_best.compute().item(), rel=1e-5
        )


#: A pack of LSTMs differing in what a pack's networks may differ in.
PACK = [
    dict(seed=0, clip=None, lr=0.01, weight_decay=0.0, init="torch"),
    dict(seed=1, clip=0.05, lr=0.03, weight_decay=1e-3, init="orthogonal"),
    dict(seed=2, clip=0.05, lr=0.003, weight_decay=0.0, init="torch"),
]


def test_each_network_of_a_gated_pack_trains_as_in_its_own_run(compose_cfg):
    base = dict(cell="lstm", hidden_size=8, input_size=2, loss="last", nonlinearity="tanh")
    pack = PackForecaster([{**base, **n} for n in PACK])
    dm = ReplicaDataModule([SinCosDataModule(**DATA, seed=n["seed"]) for n in PACK])
    trainer().fit(pack, datamodule=dm)
    for r, net in enumerate(PACK):
        torch.manual_seed(net["seed"])
        alone = Forecaster(**base, **{k: v for k, v in net.items() if k not in ("seed", "clip")})
        own = SinCosDataModule(**DATA, seed=net["seed"])
        trainer(gradient_clip_val=net["clip"]).fit(alone, datamodule=own)
        for pname, param in alone.named_parameters():
            torch.testing.assert_close(pack.net.param(pname)[r], param, rtol=2e-5, atol=1e-6)
    # the cell splits packs: a gru job never shares one with a vanilla or an lstm job
    keys = {pack_key(compose_cfg(f"model={cell}")) for cell in choices.CELLS}
    assert len(keys) == len(choices.CELLS)
    assert pack_key(compose_cfg("model=gru", "model.init=orthogonal", "seed=3")) == pack_key(
        compose_cfg("model=gru")
    )


# -- real processes ------------------------------------------------------------------------


@pytest.mark.slow
def test_train_py_trains_each_gated_cell(tmp_path):
    def run(cell: str):
        return run_train(
            f"model={cell}", "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / cell}"
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = dict(zip(GATED, pool.map(run, GATED), strict=True))
    for cell, proc in procs.items():
        assert proc.returncode == 0, proc.stderr[-3000:]
        record = json.loads((tmp_path / cell / M.METRICS_FILE).read_text())
        assert record["status"] == "ok" and record["epochs"] == 2
        assert record[M.TEST_MSE] < record[M.PERSISTENCE_MSE]  # it learnt something in 2 epochs
        gates, H = choices.GATED_CELLS[cell], 32
        assert record["params"] == gates * H * (2 + H + 2) + 2 * (H + 1)  # nn.GRU's, a readout
        diag = record[M.DIAGNOSTICS]
        assert diag[M.SPECTRAL_RADIUS] == diag[M.SIGMA_MAX] == [None]  # undefined, per layer
        assert len(diag[M.GRAD_NORM_BY_STEP]) == 4 and all(g > 0 for g in diag[M.GRAD_NORM_BY_STEP])
        events = EventAccumulator(str(tmp_path / cell / "tb"))
        scalars = events.Reload().Tags()["scalars"]
        assert M.diagnostics_tag(M.GRAD_FIRST_OVER_LAST) in scalars
        assert not [t for t in scalars if M.SPECTRAL_RADIUS in t or M.SIGMA_MAX in t]
        model = Forecaster.load_from_checkpoint(tmp_path / cell / "checkpoints" / "best.ckpt")
        assert type(model.cell) is GATED[cell][0]
        assert f"{cell} cell" in proc.stdout


@pytest.mark.slow
def test_a_fused_sweep_of_gated_cells_equals_the_basic_launchers(tmp_path):
    import pandas as pd

    from tests.test_fused_e2e import SMALL as SMALL_SWEEP
    from tests.test_fused_e2e import assert_same_networks, sweep

    grid = (
        "model=gru,lstm",
        "model.init=torch,orthogonal",
        "replicas=2",
        "trainer.max_epochs=2",
        *SMALL_SWEEP,
    )
    proc = sweep(tmp_path / "fused", *grid, "hydra/launcher=fused")
    sweep(tmp_path / "basic", *grid)
    assert_same_networks(tmp_path / "fused", tmp_path / "basic")
    assert "4 jobs in 2 packs" in proc.stderr + proc.stdout  # one pack per cell
    table = pd.read_csv(tmp_path / "fused" / "networks.csv")
    assert len(table) == 8 and (table["status"] == "ok").all()
    spectra = [c for c in table if M.SPECTRAL_RADIUS in c or M.SIGMA_MAX in c]
    assert spectra and table[spectra].isna().all().all()  # undefined for gated cells: empty
    assert table[M.diagnostics_tag(M.GRAD_FIRST_OVER_LAST)].gt(0).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", GATED)
def test_a_compiled_gated_cell_computes_the_eager_ones_function(name):
    """``model.compile=true``: the gated step through torch.compile, outputs and gradients."""
    cls = GATED[name][0]
    torch.manual_seed(0)
    eager, compiled = cls(2, 8, 2), cls(2, 8, 2, compile=True)
    compiled.load_state_dict(eager.state_dict())
    assert compiled.recurrence.step is not None and eager.recurrence.step is None
    x = torch.randn(4, 6, 2)
    outs = []
    for cell in (eager, compiled):
        out, h_n = cell(x)
        _loss(out, h_n).backward()
        outs.append(out)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
    for p, q in zip(compiled.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-5)
