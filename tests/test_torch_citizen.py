"""rnnstate models as ordinary torch modules: position-keyed state_dicts, parameters built under
inference_mode/no_grad are trainable."""
import numpy as np
import pytest
import torch

import rnnstate as rs
from rnnstate import layers

B, T, F, U = 3, 5, 4, 6


def _functional():
    inp = rs.Input((T, F))
    seq, h, c = layers.LSTM(U, return_sequences=True, return_state=True)(inp)
    out = layers.Dense(2)(layers.GRU(U)(seq, initial_state=[h]))
    return rs.Model(inp, out)


def _sequential():
    return rs.Sequential([rs.Input((T, F)), layers.SimpleRNN(U), layers.Dense(2)])


@pytest.mark.parametrize("make", [_functional, _sequential])
def test_state_dict_keys_by_position_and_exchangeable(make):
    a = make()
    layers.LSTM(3), layers.Dense(7), layers.GRU(2)      # bump the process-wide name counters in between
    b = make()
    assert list(a.state_dict()) == list(b.state_dict())
    assert all(k.split(".")[0].isdigit() for k in a.state_dict())
    # the key's position is the layer's position in `model.layers` (as in nn.Sequential)
    for k, v in a.state_dict().items():
        pos, rest = int(k.split(".")[0]), k.split(".", 1)[1]
        assert a.layers[pos].state_dict()[rest] is not None
        assert torch.equal(a.layers[pos].state_dict()[rest], v)
    x = np.random.default_rng(0).normal(size=(B, T, F)).astype("float32")
    assert not np.allclose(a.predict(x, verbose=0), b.predict(x, verbose=0))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_sequential_built_lazily_keeps_position_keys():
    m = rs.Sequential([layers.LSTM(U), layers.Dense(1)])
    m.predict(np.zeros((B, T, F), "float32"), verbose=0)
    assert sorted(m.state_dict()) == ["0.cell.bias_ih", "0.cell.weight_hh", "0.cell.weight_ih",
                                      "1.bias", "1.kernel"]


@pytest.mark.parametrize("ctx", [torch.inference_mode, torch.no_grad])
@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_built_under_inference_mode_is_trainable(ctx, cls):
    x = torch.randn(B, T, F)
    lazy, ref = cls(U), cls(U)
    with ctx():
        lazy(x)                                     # first call builds the weights
    ref(x)
    ref.set_weights(lazy.get_weights())
    for p in lazy.parameters():
        assert p.requires_grad and not p.is_inference()
    lazy(x).square().sum().backward()
    ref(x).square().sum().backward()
    for p, q in zip(lazy.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_models_export_and_keep_position_keys():
    """torch's tools walk submodules by name: the positional children are ordinary submodules."""
    from torch.export import Dim
    m = _functional()
    x = torch.randn(B, T, F)
    ep = torch.export.export(m, (x,), dynamic_shapes=({0: Dim("batch")},))
    torch.testing.assert_close(ep.module()(x[:2]), m(x[:2]))
    assert dict(m.named_children())["1"] is m.layers[1]


def test_model_predicted_under_inference_mode_then_fits():
    m = rs.Sequential([rs.Input((T, F)), layers.LSTM(U), layers.Dense(1)])
    x = np.random.default_rng(1).normal(size=(8, T, F)).astype("float32")
    with torch.inference_mode():
        m.predict(x, verbose=0)
    before = [w.copy() for w in m.get_weights()]
    m.compile("sgd", "mse")
    m.fit(x, np.ones((8, 1), "float32"), epochs=1, batch_size=8, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, m.get_weights()))
