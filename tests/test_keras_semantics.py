"""Keras 3 habits rnnstate follows (issue 11): a state-returning last layer in Sequential, nested per-cell
states, Keras-2 style calls, numpy states for cells, TimeDistributed masks, Keras files whose masks are
operation nodes, input/output shapes, and errors that teach. Keras 3 (JAX) is the oracle."""
import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L
from rnnstate.models import load_model

from ._keras_pairs import close, pair

B, T, F, U = 2, 4, 3, 5


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((B, T, F)).astype("float32")


def test_sequential_with_state_returning_last_layer_predicts_like_keras(x):
    def build(lib):
        return lib.Sequential([lib.Input((T, F)), lib.layers.Dense(4), lib.layers.LSTM(U, return_state=True)])

    km, rm = pair(build, np.random.default_rng(1))
    got, want = rm.predict(x), km.predict(x, verbose=0)
    assert isinstance(got, list) and len(got) == len(want) == 3          # [output, h, c]
    close(got, want)
    assert rm.output_shape == [tuple(s) for s in km.output_shape] == [(None, U)] * 3


def test_stacked_cells_return_nested_states_in_a_model_and_files(x, tmp_path):
    def build(lib):
        inp = lib.Input((T, F))
        out, s1, s2 = lib.layers.RNN([lib.layers.LSTMCell(U), lib.layers.GRUCell(2)], return_state=True)(inp)
        return lib.Model(inp, [out, s1[1], s2])              # GRU cell: a bare tensor, as Keras

    km, rm = pair(build, np.random.default_rng(2))
    close(rm.predict(x), km.predict(x, verbose=0))
    res = rm.layers[1](x)
    (h1, c1), h2 = res.states
    close([res.output, c1], rm.predict(x)[:2])
    km.save(tmp_path / "k.keras")
    close(load_model(tmp_path / "k.keras").predict(x), km.predict(x, verbose=0))
    rm.save(tmp_path / "r.keras")
    close(keras.models.load_model(tmp_path / "r.keras").predict(x, verbose=0), rm.predict(x))


def test_keras2_list_call_is_initial_state(x, rng):
    h, c = (rng.standard_normal((B, U)).astype("float32") for _ in range(2))
    layer = L.LSTM(U, return_sequences=True)
    close(layer([x, h, c]), layer(x, initial_state=[h, c]))
    k = keras.layers.LSTM(U, return_sequences=True)
    k.build((None, T, F))
    k.set_weights(layer.get_weights())
    close(layer([x, h, c]), k(x, initial_state=[h, c]))
    inp, hi, ci = rnnstate.Input((T, F)), rnnstate.Input((U,)), rnnstate.Input((U,))
    m = rnnstate.Model([inp, hi, ci], L.LSTM(U)([inp, hi, ci]))         # symbolically too
    assert m.output_shape == (None, U)


def test_cell_called_on_numpy_states_like_keras(rng):
    xt = rng.standard_normal((B, F))                                     # float64, as numpy gives it
    h, c = rng.standard_normal((B, 3)), rng.standard_normal((B, 3))
    cell = L.LSTMCell(3)
    y, (h1, c1) = cell(xt, [h, c])
    kc = keras.layers.LSTMCell(3)
    kc.build((None, F))
    kc.set_weights(cell.get_weights())
    ky, (kh, kcc) = kc(xt.astype("float32"), [h.astype("float32"), c.astype("float32")])
    close([y, h1, c1], [ky, kh, kcc])


def test_time_distributed_mask_like_keras(x):
    m = np.array([[True, True, False, False], [True, False, False, False]])
    td, ktd = L.TimeDistributed(L.Dense(2)), keras.layers.TimeDistributed(keras.layers.Dense(2))
    td(x)
    ktd.build((None, T, F))
    ktd.set_weights(td.get_weights())
    close(td(x, mask=m), ktd(x, mask=m))
    with pytest.raises(ValueError, match=r"TimeDistributed .*`mask` must have shape \(batch, timesteps, ...\) "
                                         r"matching the input's first two axes \(2, 4\); received shape \(2, 3\)"):
        td(x, mask=m[:, :3])
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])

    def build(lib):                         # the mask passes through TimeDistributed to the LSTM
        inp = lib.Input((T,), dtype="int32")
        e = lib.layers.Embedding(5, F, mask_zero=True)(inp)
        return lib.Model(inp, lib.layers.LSTM(2)(lib.layers.TimeDistributed(lib.layers.Dense(3))(e)))

    km, rm = pair(build, np.random.default_rng(3))
    close(rm.predict(ids), km.predict(ids, verbose=0))


@pytest.fixture(scope="module")
def keras_op_node_model():
    """A Keras functional model whose LSTMs get masks computed by operation nodes (NotEqual, Any)."""
    ids, feats = keras.Input((T,), dtype="int32"), keras.Input((T, F))
    e = keras.layers.Embedding(6, F, mask_zero=True)(ids)
    a = keras.layers.LSTM(U)(e)                                          # Keras writes NotEqual -> mask
    b = keras.layers.LSTM(U)(keras.layers.Masking()(feats))
    c = keras.layers.GRU(2)(feats, mask=keras.ops.any(keras.ops.not_equal(feats, 0.0), axis=-1))
    km = keras.Model([ids, feats], [a, b, c])
    rng = np.random.default_rng(4)
    km.set_weights([(rng.standard_normal(w.shape) * 0.5).astype("float32") for w in km.get_weights()])
    return km


def test_keras_file_with_mask_op_nodes_loads_and_saves_back(keras_op_node_model, x, tmp_path):
    km = keras_op_node_model
    ids = np.array([[1, 2, 0, 0], [3, 4, 5, 0]])
    feats = x.copy()
    feats[0, 2:] = 0.0
    km.save(tmp_path / "k.keras")
    m = load_model(tmp_path / "k.keras")
    want = km.predict([ids, feats], verbose=0)
    close(m.predict([ids, feats]), want)
    m.save(tmp_path / "r.keras")
    close(keras.models.load_model(tmp_path / "r.keras").predict([ids, feats], verbose=0), want)
    assert {"NotEqual", "Any"} <= {type(l).__name__ for l in m.layers}


def test_input_and_output_shapes_like_keras():
    def build(lib):
        a, b = lib.Input((T, F)), lib.Input((None, 2))
        out, h, c = lib.layers.LSTM(U, return_state=True)(a)
        return lib.Model([a, b], [lib.layers.Dense(1)(out), lib.layers.GRU(3, return_sequences=True)(b), c])

    km, rm = build(keras), build(rnnstate)
    assert rm.input_shape == km.input_shape
    assert rm.output_shape == km.output_shape
    with pytest.raises(ValueError, match="Sequential '.*': has no `input_shape` yet"):
        rnnstate.Sequential([L.Dense(2)]).input_shape


def test_errors_that_teach():
    with pytest.raises(ValueError, match=r"GRU: argument `activation` .* received \(3, 1\)\. The second positional "
                                         r"argument is `activation`.*`input_shape=\(3, 1\)`"):
        L.GRU(4, (3, 1))
    with pytest.raises(TypeError, match="`return_cell_sequence` needs a cell state c, which only an LSTM has; a GRU's "
                                        "only state is h"):
        L.GRU(4, return_cell_sequence=True)
    res = L.GRU(4, return_state=True)(np.zeros((1, 2, 3), "float32"))
    with pytest.raises(AttributeError, match=r"no field `c`; its fields are output, h\. A GRU or SimpleRNN has one "
                                             r"state, h"):
        res.c
    layer = L.LSTM(2, use_cudnn=False)
    layer(np.zeros((1, 2, 3), "float32"))
    assert layer.last_path == "reference loop (use_cudnn=False was requested)"
