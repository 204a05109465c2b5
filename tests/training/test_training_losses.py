import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")   # the reference implementation

from rnnstate.training import losses  # noqa: E402

RNG = np.random.default_rng(0)


def _probs(shape):
    z = RNG.normal(size=shape).astype("float32")
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _onehot(shape):
    return np.eye(shape[-1], dtype="float32")[RNG.integers(0, shape[-1], size=shape[:-1])]


def _compare(ours, theirs, y_true, y_pred, sw=None):
    a = ours(torch.tensor(y_true), torch.tensor(y_pred), None if sw is None else torch.tensor(sw))
    b = theirs(y_true, y_pred, sample_weight=sw)
    np.testing.assert_allclose(a.detach().numpy(), np.asarray(b), rtol=1e-5, atol=1e-6)


def _regression_data(shape):
    return RNG.normal(size=shape).astype("float32"), RNG.normal(size=shape).astype("float32")


CASES = [
    # name, our class kwargs, keras class, data maker
    ("mse", {}, keras.losses.MeanSquaredError, _regression_data),
    ("mae", {}, keras.losses.MeanAbsoluteError, _regression_data),
    ("huber", {"delta": 0.7}, keras.losses.Huber, _regression_data),
    ("log_cosh", {}, keras.losses.LogCosh, _regression_data),
    ("mape", {}, keras.losses.MeanAbsolutePercentageError, _regression_data),
    ("msle", {}, keras.losses.MeanSquaredLogarithmicError, lambda s: (np.abs(_regression_data(s)[0]),
                                                                       np.abs(_regression_data(s)[1]))),
    ("poisson", {}, keras.losses.Poisson, lambda s: (np.abs(_regression_data(s)[0]), np.abs(_regression_data(s)[1]))),
    ("kl_divergence", {}, keras.losses.KLDivergence, lambda s: (_probs(s), _probs(s))),
    ("categorical_crossentropy", {}, keras.losses.CategoricalCrossentropy, lambda s: (_onehot(s), _probs(s))),
    ("categorical_crossentropy", {"label_smoothing": 0.1}, keras.losses.CategoricalCrossentropy,
     lambda s: (_onehot(s), _probs(s))),
    ("categorical_crossentropy", {"from_logits": True}, keras.losses.CategoricalCrossentropy,
     lambda s: (_onehot(s), RNG.normal(size=s).astype("float32") * 3)),
    ("binary_crossentropy", {}, keras.losses.BinaryCrossentropy,
     lambda s: (RNG.integers(0, 2, size=s).astype("float32"), RNG.uniform(size=s).astype("float32"))),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, keras.losses.BinaryCrossentropy,
     lambda s: (RNG.integers(0, 2, size=s).astype("float32"), RNG.normal(size=s).astype("float32") * 3)),
]


@pytest.mark.parametrize("name,kwargs,keras_cls,make", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4)], ids=["2d", "seq"])
def test_losses_match_keras(name, kwargs, keras_cls, make, shape):
    y_true, y_pred = make(shape)
    ours = losses.get(name) if not kwargs else type(losses.get(name))(**kwargs)
    theirs = keras_cls(**kwargs)
    _compare(ours, theirs, y_true, y_pred)
    _compare(ours, theirs, y_true, y_pred, RNG.uniform(0, 2, size=shape[:-1]).astype("float32"))
    if len(shape) == 3:   # per-sample weights on a sequence output broadcast over time steps
        sw = RNG.uniform(0, 2, size=shape[:1]).astype("float32")
        a = ours(torch.tensor(y_true), torch.tensor(y_pred), torch.tensor(sw))
        b = theirs(y_true, y_pred, sample_weight=np.repeat(sw[:, None], shape[1], axis=1))
        np.testing.assert_allclose(a.numpy(), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_crossentropy_clips_probabilities_like_keras():
    y_true = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], "float32")
    y_pred = np.array([[0.5, 0.0, 0.5], [1.0, 0.0, 0.0]], "float32")    # log(0) without the 1e-7 clip
    _compare(losses.CategoricalCrossentropy(), keras.losses.CategoricalCrossentropy(), y_true, y_pred)
    _compare(losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy(), y_true, y_pred)
    assert np.isclose(losses.categorical_crossentropy(torch.tensor(y_true), torch.tensor(y_pred))[0].item(),
                      -np.log(1e-7), rtol=1e-4)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_shape", [(6,), (6, 1), (3, 5)])
def test_sparse_categorical_crossentropy_matches_keras(from_logits, label_shape):
    classes = 4
    pred_shape = (label_shape[0], classes) if len(label_shape) < 2 or label_shape[1] == 1 else label_shape + (classes,)
    y_pred = RNG.normal(size=pred_shape).astype("float32") if from_logits else _probs(pred_shape)
    y_true = RNG.integers(0, classes, size=label_shape)
    sw = RNG.uniform(size=label_shape[:1]).astype("float32")
    ours = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    _compare(ours, theirs, y_true, y_pred)
    if len(label_shape) == 1 or label_shape[1] == 1:
        _compare(ours, theirs, y_true, y_pred, sw)


def test_sparse_ignore_class_and_reductions():
    y_pred = _probs((8, 3))
    y_true = RNG.integers(0, 3, size=(8,))
    y_true[:3] = 2
    ours = losses.SparseCategoricalCrossentropy(ignore_class=2)
    theirs = keras.losses.SparseCategoricalCrossentropy(ignore_class=2)
    _compare(ours, theirs, y_true, y_pred)
    y_true, y_pred = _regression_data((5, 3))
    sw = RNG.uniform(size=(5,)).astype("float32")
    for reduction in ("sum", "mean_with_sample_weight", None):
        _compare(losses.MeanSquaredError(reduction=reduction), keras.losses.MeanSquaredError(reduction=reduction),
                 y_true, y_pred, sw)


def test_functions_and_get():
    y_true, y_pred = _regression_data((4, 3))
    np.testing.assert_allclose(losses.mean_squared_error(torch.tensor(y_true), torch.tensor(y_pred)).numpy(),
                               np.asarray(keras.losses.mean_squared_error(y_true, y_pred)), rtol=1e-6)
    assert isinstance(losses.get("MSE"), losses.MeanSquaredError)
    assert isinstance(losses.get("CategoricalCrossentropy"), losses.CategoricalCrossentropy)
    custom = losses.get(lambda t, p: (t - p).abs().sum(-1))
    assert custom(torch.ones(2, 3), torch.zeros(2, 3)).item() == 3.0
    with pytest.raises(ValueError, match="Unknown loss 'msee'"):
        losses.get("msee")
    with pytest.raises(ValueError, match="one-hot targets shaped like the predictions"):
        losses.categorical_crossentropy(torch.zeros(4), torch.ones(4, 3) / 3)


@pytest.mark.parametrize("keras_loss", [keras.losses.Huber(delta=2.0), keras.losses.KLDivergence(),
                                        keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)])
def test_keras_loss_objects_are_converted(keras_loss):
    ours = losses.get(keras_loss)
    assert type(ours).__name__ == type(keras_loss).__name__
    y_true, y_pred = _onehot((4, 3)), _probs((4, 3)) * 2
    _compare(ours, keras_loss, y_true, y_pred)


@pytest.mark.parametrize("name", ["poisson", "kl_divergence", "binary_crossentropy", "mse"])
def test_rank_one_targets_for_single_unit_outputs(name):
    y_true = RNG.uniform(0.1, 1, size=(6,)).astype("float32")
    y_pred = RNG.uniform(0.1, 0.9, size=(6, 1)).astype("float32")
    keras_cls = {"poisson": keras.losses.Poisson, "kl_divergence": keras.losses.KLDivergence,
                 "binary_crossentropy": keras.losses.BinaryCrossentropy, "mse": keras.losses.MeanSquaredError}[name]
    _compare(losses.get(name), keras_cls(), y_true, y_pred)
