"""Weight regularizers: the same penalties as Keras, added to the training loss, saved with the model."""
import keras
import numpy as np
import pytest

import rnnstate
from rnnstate import layers as L
from rnnstate import regularizers

from .conftest import B, F, T, U, random_like_weights


def build(lib, kind):
    r = lib.regularizers
    inp = lib.Input((T, F))
    kw = {"kernel_regularizer": r.L2(0.1), "recurrent_regularizer": r.L1(0.05), "bias_regularizer": r.L1L2(0.01, 0.02)}
    if kind == "GRU":
        kw["reset_after"] = True
    h = getattr(lib.layers, kind)(U, **kw)(inp)
    out = lib.layers.Dense(2, kernel_regularizer="l2", bias_regularizer=r.L1(0.3))(h)
    return lib.Model(inp, out)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_penalties_and_training_loss_match_keras(kind, rng):
    km, rm = build(keras, kind), build(rnnstate, kind)
    w = random_like_weights(km.get_weights(), rng)
    km.set_weights(w)
    rm.set_weights(w)
    k_losses = [float(v) for v in km.losses]
    r_losses = [float(v.detach()) for v in rm.losses]
    np.testing.assert_allclose(r_losses, k_losses, rtol=1e-5)
    x = rng.standard_normal((B, T, F)).astype("float32")
    y = rng.standard_normal((B, 2)).astype("float32")
    km.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rm.compile(optimizer=rnnstate.optimizers.SGD(0.01), loss="mse")
    kl = km.train_on_batch(x, y)
    rl = rm.train_on_batch(x, y)
    np.testing.assert_allclose(rl, kl, rtol=1e-4)                 # data loss + penalties
    for a, b in zip(rm.get_weights(), km.get_weights()):           # the penalties' gradients too
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_regularizers_roundtrip_config_and_file(tmp_path, rng):
    m = build(rnnstate, "LSTM")
    cfg = m.layers[1].get_config()
    assert cfg["kernel_regularizer"]["class_name"] == "L2" and cfg["kernel_regularizer"]["config"] == {"l2": 0.1}
    path = tmp_path / "m.keras"
    m.save(path)
    back = rnnstate.models.load_model(path)
    np.testing.assert_allclose([float(v.detach()) for v in back.losses], [float(v.detach()) for v in m.losses],
                               rtol=1e-6)
    keras_back = keras.models.load_model(path)                     # Keras reads them too
    np.testing.assert_allclose(sorted(float(v) for v in keras_back.losses), sorted(float(v.detach()) for v in m.losses),
                               rtol=1e-5)


def test_regularizer_errors():
    with pytest.raises(ValueError, match=r"LSTM: argument `kernel_regularizer`: Unknown regularizer 'l3'"):
        L.LSTM(U, kernel_regularizer="l3")
    with pytest.raises(ValueError, match=r"argument `l2` must be a float >= 0; received -1.0"):
        regularizers.L2(-1)
    with pytest.raises(NotImplementedError, match=r"argument `kernel_constraint` is not supported yet"):
        L.LSTM(U, kernel_constraint="non_neg")
