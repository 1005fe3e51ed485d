import pytest
import torch
from torch import nn

from rnnlab.cells import ConcatRNN, ScratchRNN, TorchRNN

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
