"""Tests for rnnstate.activations, using keras.activations as the oracle."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest
import torch

from rnnstate import activations as A

keras = pytest.importorskip("keras")
KA = keras.activations

# The functions the spec requires, plus the extras this module also provides.
REQUIRED = [
    "tanh",
    "sigmoid",
    "relu",
    "linear",
    "softmax",
    "hard_sigmoid",
    "elu",
    "selu",
    "gelu",
    "softplus",
    "softsign",
    "swish",
    "silu",
    "exponential",
    "leaky_relu",
    "relu6",
    "log_softmax",
]
EXTRAS = ["log_sigmoid", "mish", "celu", "hard_silu", "hard_swish", "hard_tanh", "tanh_shrink"]
ALL = REQUIRED + EXTRAS


def _grid():
    x = np.concatenate(
        [np.linspace(-8.0, 8.0, 161), [-30.0, -20.0, -3.0, 0.0, 3.0, 20.0, 30.0]]
    ).astype(np.float32)
    return x.reshape(8, 21)


def _close(ours, ref):
    np.testing.assert_allclose(
        ours.detach().numpy(), np.asarray(ref), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("name", ALL)
def test_matches_keras_on_grid(name):
    x = _grid()
    if name == "exponential":
        x = np.clip(x, -20.0, 20.0)
    ours = A.get(name)(torch.from_numpy(x))
    assert ours.dtype == torch.float32
    assert ours.shape == x.shape
    _close(ours, KA.get(name)(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(negative_slope=0.1),
        dict(max_value=6.0),
        dict(max_value=2.5),
        dict(threshold=1.0),
        dict(threshold=-1.0),
        dict(negative_slope=0.3, max_value=4.0),
        dict(negative_slope=0.3, threshold=0.5),
        dict(negative_slope=0.3, max_value=4.0, threshold=-0.5),
    ],
)
def test_relu_kwargs_match_keras(kwargs):
    x = _grid()
    _close(A.relu(torch.from_numpy(x), **kwargs), KA.relu(x, **kwargs))


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("leaky_relu", dict(negative_slope=0.05)),
        ("elu", dict(alpha=0.5)),
        ("gelu", dict(approximate=True)),
        ("softmax", dict(axis=0)),
        ("log_softmax", dict(axis=0)),
        ("celu", dict(alpha=2.0)),
    ],
)
def test_keyword_variants_match_keras(name, kwargs):
    x = _grid()
    _close(getattr(A, name)(torch.from_numpy(x), **kwargs), getattr(KA, name)(x, **kwargs))


def test_keras3_specific_definitions():
    x = torch.tensor([-4.0, -3.0, -1.0, 0.0, 1.0, 3.0, 4.0])
    # Keras 3 hard_sigmoid is relu6(x + 3) / 6, not 0.2 x + 0.5.
    torch.testing.assert_close(
        A.hard_sigmoid(x), torch.tensor([0.0, 0.0, 1 / 3, 0.5, 2 / 3, 1.0, 1.0])
    )
    # Keras leaky_relu default slope is 0.2.
    torch.testing.assert_close(A.leaky_relu(torch.tensor([-1.0])), torch.tensor([-0.2]))
    # softmax is over the last axis.
    y = A.softmax(torch.randn(3, 4, 5))
    torch.testing.assert_close(y.sum(-1), torch.ones(3, 4))


def test_names_and_serialize_match_keras():
    for name in ALL:
        fn = A.get(name)
        assert A.serialize(fn) == KA.serialize(KA.get(name)), name
        assert fn.__name__ == A.serialize(fn)
        assert getattr(A, name) is fn
    assert A.swish is A.silu
    assert A.serialize(A.swish) == "silu"
    assert A.tanh.__name__ == "tanh"


def test_get_none_callable_and_dict():
    assert A.get(None) is A.linear
    assert A.serialize(None) == "linear"

    def custom(x):
        return x * 2

    assert A.get(custom) is custom
    # Keras' dict form of a serialized function.
    assert A.get({"module": "keras.activations", "class_name": "function",
                  "config": "tanh", "registered_name": "tanh"}) is A.tanh
    assert A.deserialize("relu") is A.relu
    for name in ALL:
        assert A.get(A.serialize(A.get(name))) is A.get(name)


def test_torch_equivalents_serialize():
    assert A.serialize(torch.tanh) == "tanh"
    assert A.serialize(torch.sigmoid) == "sigmoid"
    assert A.serialize(torch.nn.functional.relu) == "relu"


def test_unknown_name_raises():
    with pytest.raises(ValueError, match=r"Unknown activation 'tanhh'\. Expected one of: .*tanh"):
        A.get("tanhh")
    with pytest.raises(ValueError, match="Could not interpret activation"):
        A.get(3)


def test_serialize_unregistered_callable_raises():
    with pytest.raises(ValueError, match="cannot be serialized"):
        A.serialize(lambda x: x)
    # torch's leaky_relu has a different default slope, so it is not an alias.
    with pytest.raises(ValueError, match="cannot be serialized"):
        A.serialize(torch.nn.functional.leaky_relu)


def test_accepts_non_tensor_and_backprops():
    assert torch.is_tensor(A.tanh([0.0, 1.0]))
    x = torch.linspace(-5, 5, 11, requires_grad=True)
    for name in ALL:
        x.grad = None
        A.get(name)(x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all(), name
