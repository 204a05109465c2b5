"""Custom cells in RNN(cell): Keras' contract (call(inputs, states)), rnnstate's own protocol
(step(x_t, state)), and stacked cells RNN([cell_1, cell_2]). Keras is the oracle where it has the same thing."""
from typing import NamedTuple

import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L
from rnnstate.cells import Cell
from rnnstate.layers.base import Layer
from rnnstate.layers.stacked import StackedCells

from .conftest import B, F, T, U, random_like_weights

ATOL = 1e-5
FAST = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}   # Keras weights are replaced


def _np(t):
    return t.detach().cpu().numpy()


# ---- the same two-state cell, written for Keras and for rnnstate (Keras' contract) ---------------------------
class KerasLeakyCell(keras.layers.Layer):
    """h_t = tanh(x W + h U); a_t = 0.5 a_{t-1} + 0.5 h_t; output a_t. States [h, a]."""

    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units, self.state_size, self.output_size = units, [units, units], units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

    def call(self, inputs, states):
        h, a = states
        h = keras.ops.tanh(keras.ops.matmul(inputs, self.kernel) + keras.ops.matmul(h, self.recurrent_kernel))
        a = 0.5 * a + 0.5 * h
        return a, [h, a]


class TorchLeakyCell(Layer):
    """The same cell as an rnnstate Layer written the Keras way (`call`, not `forward`)."""

    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units, self.state_size, self.output_size = units, [units, units], units

    def build(self, input_shape):
        self.kernel = torch.nn.Parameter(torch.zeros(input_shape[-1], self.units))
        self.recurrent_kernel = torch.nn.Parameter(torch.zeros(self.units, self.units))

    def call(self, inputs, states):
        h, a = states
        h = torch.tanh(inputs @ self.kernel + h @ self.recurrent_kernel)
        a = 0.5 * a + 0.5 * h
        return a, [h, a]


class PlainLeakyCell:
    """Not a Layer at all: any object with state_size, output_size, build and call."""

    def __init__(self, units):
        self.units, self.state_size, self.output_size = units, [units, units], units

    def build(self, input_shape):
        self.kernel = torch.zeros(input_shape[-1], self.units)
        self.recurrent_kernel = torch.zeros(self.units, self.units)
        self.built = True

    call = TorchLeakyCell.call


@pytest.mark.parametrize("cell_cls", [TorchLeakyCell, PlainLeakyCell])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_keras_contract_cell_matches_keras(cell_cls, go_backwards, rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    k = keras.layers.RNN(KerasLeakyCell(U), return_sequences=True, return_state=True, go_backwards=go_backwards,
                         unroll=True)
    k.build((None, T, F))
    w = random_like_weights(k.get_weights(), rng)
    k.set_weights(w)
    want = [np.asarray(v) for v in k(x)]
    cell = cell_cls(U)
    r = L.RNN(cell, return_sequences=True, return_state=True, go_backwards=go_backwards)
    r._maybe_build((None, T, F))
    with torch.no_grad():
        cell.kernel.copy_(torch.as_tensor(w[0]))
        cell.recurrent_kernel.copy_(torch.as_tensor(w[1]))
    got = r(x)
    assert got._fields == ("output", "h", "c")
    assert "reference loop" in r.last_path and "custom cell" in r.last_path
    for g, v in zip(got, want):
        np.testing.assert_allclose(_np(g), v, atol=ATOL)


class PairState(NamedTuple):
    h: torch.Tensor
    m: torch.Tensor


class RunningMaxCell(Cell):
    """rnnstate's own protocol: a `state_type` and `step(x_t, state) -> (y_t, new_state)`."""
    state_type = PairState

    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units, self.state_size, self.output_size = units, [units, units], units

    def build(self, input_shape):
        self.proj = torch.nn.Linear(input_shape[-1], self.units)

    def step(self, x_t, state):
        h = torch.tanh(self.proj(x_t) + state.h)
        m = torch.maximum(state.m, h)
        return m, PairState(h, m)


def test_rnnstate_cell_protocol_and_stateful(rng):
    x = torch.as_tensor(rng.standard_normal((B, T, F)), dtype=torch.float32)
    layer = L.RNN(RunningMaxCell(U), return_sequences=True, return_state=True, stateful=True)
    res = layer(x)
    state = PairState(torch.zeros(B, U), torch.zeros(B, U))
    for t in range(T):                                    # the documented equivalent loop
        y, state = layer.cell.step(x[:, t], state)
        np.testing.assert_allclose(_np(res.output[:, t]), _np(y), atol=1e-6)
    assert isinstance(layer.get_states(), PairState) and res._fields == ("output", "h", "m")
    np.testing.assert_allclose(_np(layer.get_states().m), _np(state.m), atol=1e-6)
    ys, s = rnnstate.states.Streamer(layer).run(x, chunk=2)             # streams like any layer
    np.testing.assert_allclose(_np(ys.output), _np(layer.cell and res.output), atol=1e-6)


def test_stacked_cells_match_keras(rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    k = keras.layers.RNN([keras.layers.LSTMCell(U, **FAST), keras.layers.GRUCell(U + 1, **FAST)], return_sequences=True, unroll=True,
                         return_state=True)
    k.build((None, T, F))
    w = random_like_weights(k.get_weights(), rng)
    k.set_weights(w)
    init = [[rng.standard_normal((B, U)).astype("float32")] * 2, [rng.standard_normal((B, U + 1)).astype("float32")]]
    k_out, k_lstm, k_gru = k(x, initial_state=init)
    r = L.RNN([L.LSTMCell(U), L.GRUCell(U + 1)], return_sequences=True, return_state=True)
    r(x)
    assert isinstance(r.cell, StackedCells) and [v.shape for v in r.weights] == [tuple(v.shape) for v in k.weights]
    r.set_weights(w)
    res = r(x, initial_state=init)                                       # Keras' nested initial_state works
    assert res._fields == ("output", "cell_0", "cell_1")               # nested per cell, as Keras
    out, (h0, c0), h1 = res                                             # unpacks like Keras' list
    assert res.states[0].h is h0 and res.cell_0.c is c0 and res.states[1] is h1
    np.testing.assert_allclose(_np(out), np.asarray(k_out), atol=ATOL)
    for g, v in zip([h0, c0, h1], [*k_lstm, *k_gru]):
        np.testing.assert_allclose(_np(g), np.asarray(v), atol=ATOL)
    flat = r(x, initial_state=[t for pair in init for t in pair])       # and the flat one
    np.testing.assert_allclose(_np(flat.output), _np(res.output), atol=0)
    again = L.RNN.from_config(r.get_config())                            # config round trip
    again(x)
    again.set_weights(r.get_weights())
    np.testing.assert_allclose(_np(again(x, initial_state=init).output), _np(res.output), atol=0)
    with pytest.raises(NotImplementedError, match="dropout is not supported inside stacked cells"):
        L.RNN([L.LSTMCell(U, dropout=0.1), L.LSTMCell(U)])


def test_stacked_cells_equal_stacked_layers_and_stream(rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    inp = rnnstate.Input(shape=(None, F))
    stacked = L.RNN([L.LSTMCell(U), L.SimpleRNNCell(U)], return_sequences=True)
    m = rnnstate.Model(inp, stacked(inp))
    l1, l2 = L.LSTM(U, return_sequences=True), L.SimpleRNN(U, return_sequences=True)
    l2(l1(x))
    l1.set_weights(stacked.get_weights()[:3])
    l2.set_weights(stacked.get_weights()[3:])
    np.testing.assert_allclose(_np(m(x)), _np(l2(l1(x))), atol=1e-6)
    ys, states = m.stream().run(x, chunk=2)
    np.testing.assert_allclose(_np(ys), _np(m(x)), atol=1e-6)
    assert states[stacked.name]._fields == ("h_0", "c_0", "h_1")
