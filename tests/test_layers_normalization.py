"""LayerNormalization and BatchNormalization against Keras 3 (JAX) with the same weights: outputs,
masks, training vs inference, moving statistics updated by a training step, `.keras` files."""
import keras
import numpy as np
import pytest
import torch

from rnnstate import layers as L

from ._keras_pairs import close, keras_files_both_ways, pair, random_weights, sgd_step_matches

B, T, F = 3, 5, 4


@pytest.fixture(scope="module")
def x():
    return (np.random.default_rng(0).standard_normal((B, T, F)) * 2 + 1).astype("float32")


def _same(kl, rl, x, rng):
    kl(x)
    rl(x)
    w = random_weights(kl, rng)
    kl.set_weights(w)
    rl.set_weights(w)


@pytest.mark.parametrize("kw", [{}, {"axis": 1}, {"axis": [1, 2]}, {"center": False}, {"scale": False},
                                {"epsilon": 0.1}])
def test_layer_normalization_matches_keras(kw, x, rng):
    kl, rl = keras.layers.LayerNormalization(**kw), L.LayerNormalization(**kw)
    _same(kl, rl, x, rng)
    assert [w.name for w in rl.weights] == [w.name for w in kl.weights]
    close(rl(x), kl(x))


@pytest.mark.parametrize("kw", [{}, {"axis": 1}, {"center": False, "scale": False}, {"momentum": 0.5,
                                                                                     "epsilon": 0.01}])
def test_batch_normalization_matches_keras_in_both_modes(kw, x, rng):
    kl, rl = keras.layers.BatchNormalization(**kw), L.BatchNormalization(**kw)
    _same(kl, rl, x, rng)
    assert [(w.name, w.trainable) for w in rl.weights] == [(w.name, w.trainable) for w in kl.weights]
    close(rl(x), kl(x))                                         # inference: moving statistics
    close(rl(x, training=True), kl(x, training=True))           # training: batch statistics ...
    close(rl.get_weights(), kl.get_weights())                   # ... and the moving ones updated alike
    close(rl(x), kl(x))


def test_batch_normalization_masked_statistics_match_keras(x, rng):
    m = np.ones((B, T), bool)
    m[0, 3:] = False
    m[2, 1:] = False
    kl, rl = keras.layers.BatchNormalization(momentum=0.5), L.BatchNormalization(momentum=0.5)
    _same(kl, rl, x, rng)
    close(rl(x, training=True, mask=m), kl(x, training=True, mask=m))
    close(rl.get_weights(), kl.get_weights())


def test_batch_normalization_frozen_or_inference_does_not_update(x):
    bn = L.BatchNormalization()
    bn(x)
    before = bn.get_weights()
    bn(x)                                    # a plain call is inference (Keras)
    bn.trainable = False
    bn(x, training=True)                     # a frozen layer runs in inference mode (Keras)
    close(bn.get_weights(), before)
    bn.trainable = True
    bn.train()                               # torch's mode flag counts as training=True
    bn(x)
    assert not np.allclose(bn.get_weights()[2], before[2])
    assert isinstance(bn.moving_mean, torch.Tensor) and "moving_mean" in dict(bn.named_buffers())


def _model(lib):
    inp = lib.Input((T, F))
    y = lib.layers.BatchNormalization()(inp)
    y = lib.layers.Conv1D(6, 2, padding="causal")(y)
    y = lib.layers.LayerNormalization()(y)
    y = lib.layers.BatchNormalization(momentum=0.9)(y)
    return lib.Model(inp, lib.layers.Dense(2)(lib.layers.GlobalAveragePooling1D()(y)))


@pytest.fixture(scope="module")
def models():
    return pair(_model, np.random.default_rng(5))


def test_model_with_normalization_trains_and_saves_like_keras(models, x, tmp_path):
    km, rm = models
    close(rm.predict(x), km.predict(x, verbose=0))
    keras_files_both_ways(km, rm, x, tmp_path)
    y = np.random.default_rng(6).standard_normal((B, 2)).astype("float32")
    sgd_step_matches(km, rm, x, y)            # includes moving_mean / moving_variance after the step
    close(rm.predict(x), km.predict(x, verbose=0))
    n_trainable = sum(int(np.prod(w.shape)) for w in km.trainable_weights)
    assert sum(int(np.prod(w.shape)) for w in rm.trainable_weights) == n_trainable
    assert rm.count_params() == km.count_params()


def test_fit_updates_moving_statistics_and_native_file_keeps_them(x, tmp_path):
    from rnnstate.models import load_model
    import rnnstate
    m = rnnstate.Sequential([rnnstate.Input((T, F)), L.BatchNormalization(momentum=0.5), L.GlobalAveragePooling1D()])
    m.compile("sgd", "mse")
    m.fit(x, np.zeros((B, F), "float32"), epochs=2, verbose=0)
    mean = m.layers[0].get_weights()[2]
    assert np.abs(mean).max() > 0.1                 # moved from zeros towards the data mean (about 1)
    m.save(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(load_model(tmp_path / "m.safetensors").layers[0].get_weights()[2], mean)


def test_normalization_errors():
    with pytest.raises(ValueError, match="`momentum` must be a float in \\[0, 1\\]"):
        L.BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="`axis` must name non-batch axes"):
        L.LayerNormalization(axis=0)(np.zeros((2, 3), "float32"))
    bn = L.BatchNormalization()
    bn(np.zeros((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match="BatchNormalization .*built for 3-D inputs of shape \\(None, \\?, 4\\)"):
        bn(np.zeros((2, 3, 5), "float32"))
    with pytest.raises(NotImplementedError, match="renorm"):
        L.BatchNormalization(renorm=True)
