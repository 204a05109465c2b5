"""Lambda: runs Python callables in memory; a saved model holding one loads only with safe_mode=False
(Keras' rule), in both directions with Keras' own files."""
import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L
from rnnstate.models import load_model

B, T, F = 2, 4, 3


def double_it(x):
    return x * 2


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((B, T, F)).astype("float32")


def test_lambda_runs_in_memory_with_inferred_shapes(x):
    inp = rnnstate.Input((None, F))
    last = L.Lambda(lambda t: t[:, -1])(inp)                          # (B, F): unknown T stays None
    both = L.Lambda(lambda ts, k: torch.cat(ts, -1) * k, arguments={"k": 3.0})([inp, inp])
    m = rnnstate.Model(inp, [last, both, L.Lambda(double_it, output_shape=(None, F))(inp)])
    assert m.output_shape == [(None, F), (None, None, 2 * F), (None, None, F)]
    got = m.predict(x)
    np.testing.assert_allclose(got[0], x[:, -1])
    np.testing.assert_allclose(got[1], np.concatenate([x, x], -1) * 3)
    np.testing.assert_allclose(got[2], x * 2)


def test_lambda_mask_semantics(x):
    """No mask after a Lambda unless `mask=` says so (Keras): the LSTM then sees every step."""
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])

    def build(lib, mask):
        inp = lib.Input((T,), dtype="int32")
        e = lib.layers.Embedding(5, F, mask_zero=True)(inp)
        kw = {"mask": (lambda i, m: m)} if mask else {}
        return lib.Model(inp, lib.layers.LSTM(2)(lib.layers.Lambda(lambda t: t * 1.0, **kw)(e)))

    for mask in (False, True):
        km, rm = build(keras, mask), build(rnnstate, mask)
        rm.set_weights(km.get_weights())
        np.testing.assert_allclose(rm.predict(ids), km.predict(ids, verbose=0), atol=1e-5)


def _keras_lambda_model():
    inp = keras.Input((T, F))
    y = keras.layers.Lambda(lambda t: t * 2.0)(keras.layers.Dense(F)(inp))
    return keras.Model(inp, keras.layers.LSTM(2)(y))


def test_keras_lambda_file_refused_unless_safe_mode_false(tmp_path, x):
    km = _keras_lambda_model()
    km.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="Lambda.*safe_mode=False"):
        load_model(tmp_path / "k.keras")
    m = load_model(tmp_path / "k.keras", safe_mode=False)               # the caller trusts the file
    np.testing.assert_allclose(m.predict(x), km.predict(x, verbose=0), atol=1e-5)


def test_rnnstate_lambda_file_both_ways(tmp_path, x):
    inp = rnnstate.Input((T, F))
    y = L.Lambda(lambda t: t * 2.0)(L.Dense(F)(inp))
    m = rnnstate.Model(inp, [L.LSTM(2)(y), L.Lambda(double_it)(inp)])
    m.save(tmp_path / "r.keras")
    m.save(tmp_path / "r.safetensors")
    for name in ("r.keras", "r.safetensors"):
        with pytest.raises(ValueError, match="safe_mode=False"):
            load_model(tmp_path / name)
        back = load_model(tmp_path / name, safe_mode=False)
        for g, w in zip(back.predict(x), m.predict(x)):
            np.testing.assert_allclose(g, w, atol=1e-6)
    with pytest.raises(ValueError, match="Lambda"):
        rnnstate.models.model_from_json(m.to_json())              # no opt-in there: always refused
    # Keras reads rnnstate's Python-lambda entries (a named function would need Keras' registration)
    only_lambda = rnnstate.Model(inp, m.outputs[0])
    only_lambda.save(tmp_path / "l.keras")
    km = keras.models.load_model(tmp_path / "l.keras", safe_mode=False)
    np.testing.assert_allclose(km.predict(x, verbose=0), only_lambda.predict(x), atol=1e-5)


def test_safe_mode_scope_is_restored_after_loading(tmp_path):
    from rnnstate import serialization
    _keras_lambda_model().save(tmp_path / "k.keras")
    load_model(tmp_path / "k.keras", safe_mode=False)
    assert serialization.in_safe_mode()


def test_lambda_errors():
    with pytest.raises(TypeError, match="Lambda .*`function` must be callable"):
        L.Lambda(3)
    with pytest.raises(ValueError, match="could not infer the output shape.*output_shape="):
        L.Lambda(lambda t: t.reshape(7))(rnnstate.Input((T, F)))
