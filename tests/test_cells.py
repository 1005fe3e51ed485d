import pytest
import torch
from torch import nn

from rnnlab.config.errors import ConfigError
from rnnlab.models.cells import ConcatRNN, ScratchRNN, TorchRNN, initialize

CELLS = [ScratchRNN, ConcatRNN, TorchRNN]


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(
    ("input_size", "hidden_size", "seq_len"), [(2, 8, 4), (5, 32, 17), (1, 3, 1)]
)
def test_from_torch_matches_nn_rnn(
    cell_cls, nonlinearity, num_layers, input_size, hidden_size, seq_len
):
    torch.manual_seed(0)
    rnn = nn.RNN(input_size, hidden_size, num_layers, nonlinearity=nonlinearity, batch_first=True)
    cell = cell_cls.from_torch(rnn)
    x = torch.randn(3, seq_len, input_size)
    h0 = torch.randn(num_layers, 3, hidden_size)
    for args in ((x,), (x, h0)):
        expected_out, expected_h = rnn(*args)
        out, h_n = cell(*args)
        assert out.shape == expected_out.shape == (3, seq_len, hidden_size)
        assert h_n.shape == expected_h.shape == (num_layers, 3, hidden_size)
        assert (out - expected_out).abs().max() <= 1e-5
        assert (h_n - expected_h).abs().max() <= 1e-5


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
def test_gradients_match_nn_rnn(cell_cls):
    torch.manual_seed(1)
    rnn = nn.RNN(2, 16, 2, batch_first=True)
    cell = cell_cls.from_torch(rnn)
    x = torch.randn(4, 9, 2, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    rnn(x)[0].pow(2).sum().backward()
    cell(x2)[0].pow(2).sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
def test_unbatched_input_like_nn_rnn(cell_cls):
    rnn = nn.RNN(3, 5, batch_first=True)
    cell = cell_cls.from_torch(rnn)
    x = torch.randn(7, 3)
    out, h_n = cell(x)
    expected_out, expected_h = rnn(x)
    assert out.shape == expected_out.shape and h_n.shape == expected_h.shape
    assert torch.allclose(out, expected_out, atol=1e-6)


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
def test_relu_is_really_used(cell_cls):
    torch.manual_seed(0)
    tanh_rnn = nn.RNN(2, 8, nonlinearity="tanh", batch_first=True)
    relu_rnn = nn.RNN(2, 8, nonlinearity="relu", batch_first=True)
    relu_rnn.load_state_dict(tanh_rnn.state_dict())
    x = torch.randn(4, 6, 2)
    tanh_out, _ = cell_cls.from_torch(tanh_rnn)(x)
    relu_out, _ = cell_cls.from_torch(relu_rnn)(x)
    assert (tanh_out - relu_out).abs().max() > 0.1
    assert (relu_out >= 0).all() and (tanh_out < 0).any()


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
def test_constructor_contract(cell_cls):
    cell = cell_cls(input_size=2, hidden_size=6, num_layers=3, nonlinearity="relu")
    out, h_n = cell(torch.randn(5, 4, 2))
    assert out.shape == (5, 4, 6) and h_n.shape == (3, 5, 6)
    assert torch.equal(out[:, -1], h_n[-1])
    with pytest.raises(ValueError, match="sigmoid"):
        cell_cls(2, 6, nonlinearity="sigmoid")


def test_concat_cell_is_one_linear_over_hidden_and_input():
    cell = ConcatRNN(2, 4)
    (linear,) = cell.layers
    assert isinstance(linear, nn.Linear) and linear.in_features == 4 + 2
    x = torch.randn(1, 1, 2)
    h0 = torch.randn(1, 1, 4)
    expected = torch.tanh(linear(torch.cat([h0[0], x[:, 0]], dim=1)))  # seed 002's step
    assert torch.allclose(cell(x, h0)[0][:, 0], expected, atol=1e-6)


def test_scratch_cell_is_seed000():
    cell = ScratchRNN(3, 4)
    layer = cell.layers[0]
    x = torch.randn(2, 3, 3)
    prev = torch.zeros(2, 4)
    for t in range(3):  # seed 000's calulate_ht
        prev = torch.tanh(torch.add(layer.ih(x[:, t]), layer.hh(prev)))
    assert torch.allclose(cell(x)[1][0], prev, atol=1e-6)


SCHEMES = ["torch", "identity", "orthogonal"]  # the ones that draw


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _all_weights(cell) -> list[torch.Tensor]:
    return [w for k in range(cell.num_layers) for w in cell.layer_weights(k)]


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_to_torch_round_trip(cell_cls, nonlinearity, num_layers):
    torch.manual_seed(0)
    cell = cell_cls(3, 5, num_layers, nonlinearity)
    rnn = cell.to_torch()
    assert type(rnn) is nn.RNN and rnn.batch_first and rnn.nonlinearity == nonlinearity
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers) == (3, 5, num_layers)
    x = torch.randn(2, 6, 3)
    h0 = torch.randn(num_layers, 2, 5)
    for args in ((x,), (x, h0)):
        (out, h_n), (expected_out, expected_h) = cell(*args), rnn(*args)
        assert (out - expected_out).abs().max() <= 1e-5
        assert (h_n - expected_h).abs().max() <= 1e-5
    back = cell_cls.from_torch(rnn).state_dict()
    assert back.keys() == cell.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in cell.state_dict().items())


def test_torch_init_is_nn_rnns_own():
    """Drawn in nn.RNN's order: the same numbers nn.RNN's constructor draws from the same seed."""
    torch.manual_seed(3)
    ref = nn.RNN(2, 4, 2, batch_first=True)
    cell = ScratchRNN(2, 4, 2)
    initialize(cell, "torch", _seeded(3))
    assert all(torch.equal(a, b) for a, b in zip(_all_weights(cell), ref.parameters(), strict=True))


def test_torch_init_gives_every_cell_the_same_function():
    scratch, concat, torch_cell = (cls(3, 6, 2) for cls in CELLS)
    for cell in (scratch, concat, torch_cell):
        initialize(cell, "torch", _seeded(7))
    for a, b in zip(_all_weights(scratch), _all_weights(torch_cell), strict=True):
        assert torch.equal(a, b)
    for k in range(2):  # concat's one bias is b_ih + b_hh
        w_ih, w_hh, b_ih, b_hh = scratch.layer_weights(k)
        c_ih, c_hh, c_b, c_zero = concat.layer_weights(k)
        assert torch.equal(c_ih, w_ih) and torch.equal(c_hh, w_hh)
        assert torch.equal(c_b, b_ih + b_hh) and not c_zero.any()
    x = torch.randn(2, 5, 3)
    expected_out, expected_h = torch_cell(x)
    for cell in (scratch, concat):
        out, h_n = cell(x)
        assert torch.allclose(out, expected_out, atol=1e-6)
        assert torch.allclose(h_n, expected_h, atol=1e-6)


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
def test_init_schemes(cell_cls):
    H = 6
    cell = cell_cls(3, H, 2)

    initialize(cell, "identity", _seeded())
    for k in range(2):
        w_ih, w_hh, b_ih, b_hh = cell.layer_weights(k)
        assert torch.equal(w_hh, torch.eye(H)) and not b_ih.any() and not b_hh.any()
        assert 0 < w_ih.abs().max() < 0.01

    initialize(cell, "orthogonal", _seeded())
    for k in range(2):
        w_hh = cell.layer_weights(k)[1]
        assert torch.allclose(w_hh @ w_hh.T, torch.eye(H), atol=1e-5)

    initialize(cell, "torch", _seeded())
    bound = H**-0.5
    bias_bound = 2 * bound if cell_cls is ConcatRNN else bound  # concat's one bias: b_ih + b_hh
    for k in range(2):
        w_ih, w_hh, b_ih, b_hh = cell.layer_weights(k)
        assert w_ih.abs().max() <= bound and w_hh.abs().max() <= bound
        assert b_ih.abs().max() <= bias_bound and b_hh.abs().max() <= bound
        assert w_ih.unique().numel() > 1 and w_hh.unique().numel() > 1 and b_ih.unique().numel() > 1


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
def test_native_init_changes_nothing(cell_cls):
    cell = cell_cls(3, 4, 2)
    before = {k: v.clone() for k, v in cell.state_dict().items()}
    generator = _seeded()
    state = generator.get_state()
    initialize(cell, "native", generator)
    assert all(torch.equal(before[k], v) for k, v in cell.state_dict().items())
    assert torch.equal(generator.get_state(), state)


def test_unknown_init_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model\.init=xavier is not allowed"):
        initialize(ScratchRNN(2, 4), "xavier", _seeded())


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_nonlinearity_is_used_after_initialize(cell_cls, scheme):
    tanh_cell, relu_cell = cell_cls(2, 8, nonlinearity="tanh"), cell_cls(2, 8, nonlinearity="relu")
    initialize(tanh_cell, scheme, _seeded())
    initialize(relu_cell, scheme, _seeded())
    assert all(map(torch.equal, _all_weights(tanh_cell), _all_weights(relu_cell)))
    x = torch.randn(4, 6, 2)
    tanh_out, relu_out = tanh_cell(x)[0], relu_cell(x)[0]
    assert not torch.allclose(tanh_out, relu_out)
    assert (relu_out >= 0).all() and (tanh_out < 0).any()
