"""Conv1D and the 1-D pooling layers against Keras 3 (JAX) with the same weights."""
import itertools

import keras
import numpy as np
import pytest

import rnnstate
from rnnstate import layers as L

from ._keras_pairs import close, keras_files_both_ways, pair, random_weights, sgd_step_matches

B, T, F = 2, 9, 4


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((B, T, F)).astype("float32")


def _same_weights(klayer, rlayer, x, rng):
    klayer(x)
    rlayer(x)
    w = random_weights(klayer, rng)
    klayer.set_weights(w)
    rlayer.set_weights(w)


CONV = [dict(padding=p, strides=s, dilation_rate=d, groups=g, use_bias=b)
        for p, (s, d, g), b in itertools.product(["valid", "same", "causal"],
                                                 [(1, 1, 1), (3, 1, 2), (1, 2, 2)],
                                                 [True])] + [dict(use_bias=False, activation="relu")]


@pytest.mark.parametrize("kw", CONV, ids=[",".join(f"{k}={v}" for k, v in kw.items()) for kw in CONV])
def test_conv1d_matches_keras(kw, x, rng):
    kl, rl = keras.layers.Conv1D(6, 3, **kw), L.Conv1D(6, 3, **kw)
    _same_weights(kl, rl, x, rng)
    assert [tuple(w.shape) for w in rl.weights] == [tuple(w.shape) for w in kl.weights]   # (K, F/G, O)
    close(rl(x), kl(x))
    assert rl.compute_output_shape((None, T, F)) == kl.compute_output_shape((None, T, F))


def test_conv1d_channels_first_matches_keras(x, rng):
    xc = np.ascontiguousarray(x.transpose(0, 2, 1))
    kl = keras.layers.Conv1D(5, 2, padding="same", data_format="channels_first")
    rl = L.Conv1D(5, 2, padding="same", data_format="channels_first")
    _same_weights(kl, rl, xc, rng)
    close(rl(xc), kl(xc))


@pytest.mark.parametrize("cls", ["MaxPooling1D", "AveragePooling1D"])
@pytest.mark.parametrize("pool,strides,padding", [(2, None, "valid"), (3, 2, "valid"), (3, 2, "same"),
                                                  (2, 1, "same"), (4, 3, "same")])
def test_pooling_matches_keras(cls, pool, strides, padding, x):
    kl = getattr(keras.layers, cls)(pool, strides, padding)
    rl = getattr(L, cls)(pool, strides, padding)
    close(rl(x), kl(x))
    assert rl.compute_output_shape((None, T, F)) == kl.compute_output_shape((None, T, F))


@pytest.mark.parametrize("cls", ["GlobalAveragePooling1D", "GlobalMaxPooling1D"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_pooling_matches_keras(cls, keepdims, data_format, x):
    kl = getattr(keras.layers, cls)(data_format=data_format, keepdims=keepdims)
    rl = getattr(L, cls)(data_format=data_format, keepdims=keepdims)
    close(rl(x), kl(x))


def test_global_average_pooling_uses_the_mask_like_keras(x):
    """Keras averages only unmasked steps; GlobalMaxPooling1D ignores the mask (Keras too)."""
    ids = np.array([[3, 1, 2, 0, 0, 0], [4, 0, 0, 0, 0, 0]])

    def build(lib):
        inp = lib.Input((6,), dtype="int32")
        e = lib.layers.Embedding(5, 3, mask_zero=True)(inp)
        return lib.Model(inp, [lib.layers.GlobalAveragePooling1D()(e), lib.layers.GlobalMaxPooling1D()(e),
                               lib.layers.Dense(2)(lib.layers.GlobalAveragePooling1D()(lib.layers.LSTM(3, return_sequences=True)(e)))])

    km, rm = pair(build, np.random.default_rng(1))
    close(rm.predict(ids), km.predict(ids, verbose=0))
    m = np.array([[True, False, True] + [True] * 6, [False] * 8 + [True]])
    close(L.GlobalAveragePooling1D()(x, mask=m), keras.layers.GlobalAveragePooling1D()(x, mask=m))


def test_conv_and_pooling_drop_the_mask_like_keras():
    """A Conv1D after Embedding(mask_zero=True) passes no mask on (Keras: the layer doesn't support
    masking), so the LSTM after it sees every step."""
    ids = np.array([[3, 1, 2, 0, 0, 0], [4, 0, 0, 0, 0, 0]])

    def build(lib):
        inp = lib.Input((6,), dtype="int32")
        e = lib.layers.Embedding(5, 3, mask_zero=True)(inp)
        y = lib.layers.Conv1D(4, 2, padding="causal")(e)
        return lib.Model(inp, [lib.layers.LSTM(3)(y), lib.layers.LSTM(3)(lib.layers.MaxPooling1D(2)(e))])

    km, rm = pair(build, np.random.default_rng(2))
    close(rm.predict(ids), km.predict(ids, verbose=0))


def _cnn_lstm(lib):
    inp = lib.Input((T, F))
    y = lib.layers.Conv1D(6, 3, padding="causal", activation="relu", dilation_rate=2)(inp)
    y = lib.layers.Conv1D(6, 3, padding="same", groups=2)(y)
    y = lib.layers.MaxPooling1D(2, padding="same")(y)
    y = lib.layers.AveragePooling1D(2, strides=1)(y)
    seq = lib.layers.LSTM(5, return_sequences=True)(y)
    a = lib.layers.GlobalAveragePooling1D()(seq)
    m = lib.layers.GlobalMaxPooling1D()(seq)
    return lib.Model(inp, lib.layers.Dense(2)(lib.layers.Concatenate()([a, m])))


@pytest.fixture(scope="module")
def cnn_lstm():
    return pair(_cnn_lstm, np.random.default_rng(3))


def test_cnn_lstm_model_predicts_trains_and_saves_like_keras(cnn_lstm, x, tmp_path):
    km, rm = cnn_lstm
    close(rm.predict(x), km.predict(x, verbose=0))
    assert rm.output_shape == km.output_shape and rm.input_shape == km.input_shape
    assert [rm.layers[i].compute_output_shape((None, T, F)) for i in (1,)] == \
        [km.layers[i].compute_output_shape((None, T, F)) for i in (1,)]
    keras_files_both_ways(km, rm, x, tmp_path)
    y = np.random.default_rng(4).standard_normal((B, 2)).astype("float32")
    sgd_step_matches(km, rm, x, y)


def test_conv1d_errors_name_layer_and_argument():
    with pytest.raises(ValueError, match="Conv1D .*`padding` must be one of"):
        L.Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match="`filters` \\(3\\) must be divisible by `groups` \\(2\\)"):
        L.Conv1D(3, 3, groups=2)
    with pytest.raises(ValueError, match="expects a 3-D input"):
        L.Conv1D(2, 3)(np.zeros((2, 4), "float32"))
    conv = L.Conv1D(2, 3)
    conv(np.zeros((1, 5, 4), "float32"))
    with pytest.raises(ValueError, match="built for inputs with 4 channels"):
        conv(np.zeros((1, 5, 3), "float32"))
    with pytest.raises(ValueError, match="`pool_size` must be a positive integer"):
        L.MaxPooling1D(0)


def test_summary_shows_conv_and_pooling_shapes(cnn_lstm):
    lines = []
    cnn_lstm[1].summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 9, 6)" in text and "(None, 5, 6)" in text and "(None, 4, 6)" in text
