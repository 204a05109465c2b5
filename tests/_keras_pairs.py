"""Helpers for Keras-oracle tests of the non-recurrent layers: the same model built with Keras 3 and with
rnnstate from one `build(lib)` function, the same weights, then outputs, one SGD step and `.keras` files
compared."""
import keras
import numpy as np

import rnnstate
from rnnstate.models import load_model


def random_weights(model, rng, scale=0.5):
    """Random weights for a Keras model; variances (BatchNormalization) kept positive."""
    out = []
    for v in model.weights:
        a = (rng.standard_normal(tuple(v.shape)) * scale).astype("float32")
        if "variance" in v.path:
            a = np.abs(a) + 0.5
        out.append(a)
    return out


def close(got, want, atol=1e-5):
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g = g.detach().numpy() if hasattr(g, "detach") else np.asarray(g)
        w = w.detach().numpy() if hasattr(w, "detach") else np.asarray(w)
        np.testing.assert_allclose(g, w, atol=atol, rtol=1e-5)


def pair(build, rng):
    """(keras model, rnnstate model) with the same random weights."""
    km, rm = build(keras), build(rnnstate)
    w = random_weights(km, rng)
    km.set_weights(w)
    rm.set_weights(w)
    return km, rm


def sgd_step_matches(km, rm, x, y, lr=0.1):
    """One `train_on_batch` (SGD, mse) on both: the losses and every weight after the step agree
    (non-trainable ones too: BatchNormalization's moving statistics)."""
    km.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    rm.compile(optimizer=rnnstate.optimizers.SGD(learning_rate=lr), loss="mse")
    kl = km.train_on_batch(x, y)
    rl = rm.train_on_batch(x, y)
    np.testing.assert_allclose(np.asarray(rl).ravel()[0], np.asarray(kl).ravel()[0], rtol=1e-5, atol=1e-6)
    assert [w.name for w in rm.weights] == [w.name for w in km.weights]
    close(rm.get_weights(), km.get_weights())


def keras_files_both_ways(km, rm, x, tmp_path):
    """Keras saves -> rnnstate loads, and rnnstate saves -> Keras loads: same predictions."""
    want = km.predict(x, verbose=0)
    km.save(tmp_path / "k.keras")
    close(load_model(tmp_path / "k.keras").predict(x), want)
    rm.save(tmp_path / "r.keras")
    close(keras.models.load_model(tmp_path / "r.keras").predict(x, verbose=0), rm.predict(x))
