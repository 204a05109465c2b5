"""Merge layers, their functional forms, Permute and the noise layers against Keras 3 (JAX)."""
import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L

from ._keras_pairs import close, keras_files_both_ways, pair, sgd_step_matches

B, T, F = 3, 5, 4
MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


@pytest.fixture(scope="module")
def xs():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((B, T, F)).astype("float32") for _ in range(3)]


@pytest.mark.parametrize("name", MERGES)
def test_merge_layers_and_functional_forms_match_keras(name, xs):
    n = 2 if name == "Subtract" else 3
    want = getattr(keras.layers, name)()(xs[:n])
    close(getattr(L, name)()(xs[:n]), want)
    close(getattr(L, name.lower())(xs[:n]), want)
    # broadcasting a lower-rank input (unit axes after the batch axis), as Keras
    close(getattr(L, name)()([xs[0], xs[1][:, 0]]), getattr(keras.layers, name)()([xs[0], xs[1][:, 0]]))


@pytest.mark.parametrize("axes,normalize,shapes", [(2, False, [(B, T, F), (B, 6, F)]), (1, True, [(B, T, F), (B, T, 2)]),
                                                   (-1, False, [(B, F), (B, F)]), ((1, 2), False, [(B, F), (B, 6, F)]),
                                                   ((2, 2), True, [(B, T, F), (B, 6, F)])])
def test_dot_matches_keras(axes, normalize, shapes):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(s).astype("float32") for s in shapes)
    want = keras.layers.Dot(axes, normalize=normalize)([a, b])
    close(L.Dot(axes, normalize=normalize)([a, b]), want)
    close(L.dot([a, b], axes=axes, normalize=normalize), want)
    assert L.Dot(axes).compute_output_shape(list(shapes)) == tuple(want.shape)


def test_concatenate_functional_form(xs):
    close(L.concatenate(xs[:2], axis=1), keras.layers.concatenate(xs[:2], axis=1))


def test_masks_through_merges_match_keras():
    """Output masks are the OR of the inputs' masks; Maximum / Minimum fill masked steps from the other
    input (Keras 3), which the LSTMs after them see."""
    a = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    b = np.array([[1, 2, 3, 0], [0, 0, 0, 0]])

    def build(lib):
        ia, ib = lib.Input((4,), dtype="int32"), lib.Input((4,), dtype="int32")
        e1 = lib.layers.Embedding(5, 3, mask_zero=True)(ia)
        e2 = lib.layers.Embedding(5, 3, mask_zero=True)(ib)
        outs = [lib.layers.LSTM(2, return_sequences=True)(lib.layers.maximum([e1, e2])),
                lib.layers.LSTM(2)(lib.layers.minimum([e1, e2])),
                lib.layers.LSTM(2)(lib.layers.add([e1, e2])),
                lib.layers.LSTM(2)(lib.layers.Average()([e1, e2])),
                lib.layers.LSTM(2)(lib.layers.Permute((2, 1))(lib.layers.Permute((2, 1))(e1)))]   # drops the mask
        return lib.Model([ia, ib], outs)

    km, rm = pair(build, np.random.default_rng(2))
    close(rm.predict([a, b]), km.predict([a, b], verbose=0))


def _model(lib):
    i1, i2 = lib.Input((T, F)), lib.Input((T, F))
    d = lib.layers.Dense(F)
    y = lib.layers.multiply([d(i1), i2])
    y = lib.layers.subtract([y, lib.layers.maximum([i1, i2])])
    y = lib.layers.Activation("tanh")(lib.layers.average([y, lib.layers.minimum([i1, i2])]))
    y = lib.layers.SpatialDropout1D(0.0)(lib.layers.GaussianNoise(0.0)(y))
    s = lib.layers.Dot(axes=(2, 2))([y, i1])                          # (B, T, T)
    p = lib.layers.Permute((2, 1))(y)                                  # (B, F, T)
    out = lib.layers.concatenate([lib.layers.Flatten()(s), lib.layers.Flatten()(p)])
    return lib.Model([i1, i2], lib.layers.Dense(2)(out))


@pytest.fixture(scope="module")
def models():
    return pair(_model, np.random.default_rng(3))


def test_merge_model_predicts_trains_and_saves_like_keras(models, xs, tmp_path):
    km, rm = models
    x = xs[:2]
    close(rm.predict(x), km.predict(x, verbose=0))
    assert rm.output_shape == km.output_shape == (None, 2)
    assert rm.input_shape == km.input_shape == [(None, T, F), (None, T, F)]
    keras_files_both_ways(km, rm, x, tmp_path)
    sgd_step_matches(km, rm, x, np.random.default_rng(4).standard_normal((B, 2)).astype("float32"))


def test_noise_layers_are_identity_at_inference_and_noisy_in_training(xs):
    x = torch.as_tensor(xs[0])
    sd, gn = L.SpatialDropout1D(0.5), L.GaussianNoise(0.3)
    assert torch.equal(sd(x), x) and torch.equal(gn(x), x)
    torch.manual_seed(0)
    y = sd(torch.ones(64, T, F), training=True)
    per_channel = y[:, 0, :]
    assert torch.equal(y, per_channel.unsqueeze(1).expand_as(y))     # whole channels dropped, every step
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0} and 0.3 < (per_channel == 0).float().mean() < 0.7
    noise = gn(torch.zeros(2000), training=True)
    assert abs(float(noise.std()) - 0.3) < 0.03


def test_merge_errors():
    with pytest.raises(ValueError, match="Subtract .*exactly 2 inputs"):
        L.Subtract()([np.zeros((1, 2))] * 3)
    with pytest.raises(ValueError, match="Dot .*axis 2 of the first input has 4, axis 2 of the second has 3"):
        L.Dot(2)([np.zeros((1, 2, 4)), np.zeros((1, 2, 3))])
    with pytest.raises(ValueError, match="Add .*inputs must have the same shape \(or shapes that broadcast"):
        L.Add()([rnnstate.Input((3,)), rnnstate.Input((4,))])
    with pytest.raises(ValueError, match="Permute .*permutation of 1..2"):
        L.Permute((0, 1))
