"""Keras 3 (JAX backend) is the oracle: same weights -> same numbers at 1e-5, over the flag grid."""
import itertools

import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L

from .conftest import B, F, T, U, random_like_weights

CASES = [
    ("LSTM", {}),
    ("GRU", {"reset_after": True}),
    ("GRU", {"reset_after": False}),
    ("SimpleRNN", {}),
    ("LSTM", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("SimpleRNN", {"activation": "relu"}),
    ("LSTM", {"use_bias": False}),
]


def _n_states(kind):
    return 2 if kind == "LSTM" else 1


def _keras_run(kind, kw, weights, x, go_backwards, init):
    layer = getattr(keras.layers, kind)(U, return_sequences=True, return_state=True, go_backwards=go_backwards, **kw)
    layer.build((None, T, F))
    layer.set_weights(weights)
    out = layer(x, initial_state=init) if init is not None else layer(x)
    return [np.asarray(o) for o in out]


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{'-'.join(f'{a}={b}' for a, b in kw.items())}" for k, kw in CASES])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("with_init", [False, True])
def test_layer_matches_keras(kind, kw, go_backwards, with_init, rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    ref_layer = getattr(keras.layers, kind)(U, **kw)
    ref_layer.build((None, T, F))
    weights = random_like_weights(ref_layer.get_weights(), rng)
    init = [rng.standard_normal((B, U)).astype("float32") for _ in range(_n_states(kind))] if with_init else None
    k_seq, *k_states = _keras_run(kind, kw, weights, x, go_backwards, init)

    for return_sequences, return_state in itertools.product([False, True], [False, True]):
        for path in ("auto", "loop"):
            layer = getattr(L, kind)(U, return_sequences=return_sequences, return_state=return_state,
                                     go_backwards=go_backwards, path=path, **kw)
            layer(np.zeros((1, T, F), "float32"))
            layer.set_weights(weights)
            res = layer(x, initial_state=init) if init is not None else layer(x)
            expected_out = k_seq if return_sequences else k_seq[:, -1]
            if return_state:
                assert isinstance(res, tuple) and len(res) == 1 + _n_states(kind)
                out, *states = res
                assert res.output is out and res.h is states[0]
                for got, want in zip(states, k_states):
                    np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-5, rtol=1e-5)
            else:
                assert isinstance(res, torch.Tensor)
                out = res
            np.testing.assert_allclose(out.detach().numpy(), expected_out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_weights_roundtrip_keras_layout(kind, rng):
    ref = getattr(keras.layers, kind)(U)
    ref.build((None, T, F))
    w = random_like_weights(ref.get_weights(), rng)
    layer = getattr(L, kind)(U)
    layer(np.zeros((1, T, F), "float32"))
    assert [tuple(a.shape) for a in layer.get_weights()] == [tuple(a.shape) for a in ref.get_weights()]
    assert [v.name for v in layer.weights] == [v.name for v in ref.weights]
    layer.set_weights(w)
    for a, b in zip(layer.get_weights(), w):
        np.testing.assert_array_equal(a, b)
    assert layer.count_params() == ref.count_params()
    assert len(layer.trainable_weights) == len(ref.trainable_weights)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_matches_keras(merge_mode, kind, return_sequences, rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    ref = keras.layers.Bidirectional(getattr(keras.layers, kind)(U, return_sequences=return_sequences,
                                                                return_state=True), merge_mode=merge_mode)
    ref.build((None, T, F))
    w = random_like_weights(ref.get_weights(), rng)
    ref.set_weights(w)
    k_out = [np.asarray(o) for o in ref(x)]

    bi = L.Bidirectional(getattr(L, kind)(U, return_sequences=return_sequences, return_state=True),
                         merge_mode=merge_mode)
    bi(np.zeros((1, T, F), "float32"))
    bi.set_weights(w)
    res = bi(x)
    assert len(res) == len(k_out)
    for got, want in zip(res, k_out):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-5, rtol=1e-5)
    n = _n_states(kind)
    np.testing.assert_allclose(res.forward.h.detach().numpy(), k_out[-2 * n], atol=1e-5)
    np.testing.assert_allclose(res.backward.h.detach().numpy(), k_out[-n], atol=1e-5)


def test_bidirectional_initial_state_matches_keras(rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    init = [rng.standard_normal((B, U)).astype("float32") for _ in range(4)]
    ref = keras.layers.Bidirectional(keras.layers.LSTM(U, return_sequences=True))
    ref.build((None, T, F))
    w = random_like_weights(ref.get_weights(), rng)
    ref.set_weights(w)
    want = np.asarray(ref(x, initial_state=init))
    bi = L.Bidirectional(L.LSTM(U, return_sequences=True))
    bi(np.zeros((1, T, F), "float32"))
    bi.set_weights(w)
    np.testing.assert_allclose(bi(x, initial_state=init).detach().numpy(), want, atol=1e-5)


def test_functional_model_matches_keras_predict(rng):
    """A small encoder-decoder-ish graph with a Dense output used as initial c, compared end to end."""
    def build(lib):
        inp = lib.Input(shape=(T, F))
        seq, h, c = lib.layers.LSTM(U, return_sequences=True, return_state=True)(inp)
        c2 = lib.layers.Dense(U, activation="tanh")(h)
        out = lib.layers.GRU(U, return_sequences=True)(seq)
        y = lib.layers.LSTM(U)(out, initial_state=[h, c2])
        y = lib.layers.Dense(2, activation="softmax")(y)
        return lib.Model(inp, [y, h, c])

    km, rm = build(keras), build(rnnstate)
    assert [type(l).__name__ for l in rm.layers] == [type(l).__name__ for l in km.layers]
    w = random_like_weights(km.get_weights(), rng)
    km.set_weights(w)
    rm.set_weights(w)
    x = rng.standard_normal((7, T, F))          # float64 in, cast to float32 like Keras
    for got, want in zip(rm.predict(x, verbose=0), km.predict(x, verbose=0)):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    assert rm.count_params() == km.count_params()


def test_sequential_matches_keras(rng):
    def build(lib):
        return lib.Sequential([lib.layers.Embedding(10, 4), lib.layers.LSTM(U, return_sequences=True),
                               lib.layers.TimeDistributed(lib.layers.Dense(3)), lib.layers.Flatten(),
                               lib.layers.RepeatVector(2), lib.layers.SimpleRNN(U),
                               lib.layers.Dense(1, activation="sigmoid")])

    km, rm = build(keras), build(rnnstate)
    x = rng.integers(0, 10, size=(5, T))
    km.predict(x, verbose=0)
    rm.predict(x, verbose=0)
    w = random_like_weights(km.get_weights(), rng)
    km.set_weights(w)
    rm.set_weights(w)
    np.testing.assert_allclose(rm.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-5)
    assert len(rm.layers) == len(km.layers)
