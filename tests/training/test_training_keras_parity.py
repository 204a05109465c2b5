"""Same data, same initial weights, SGD(0.1), shuffle=False: rnnstate's loop and Keras' fit agree."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")   # the reference implementation

from _training_fakes import DenseModel  # noqa: E402
from rnnstate.training import optimizers  # noqa: E402

KERAS_JIT = True   # Keras compiles its train step once: faster than op by op here


def _pair(n_in, n_out, activation):
    keras.utils.set_random_seed(7)
    km = keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(n_out, activation=activation)])
    ours = DenseModel(n_in, n_out, activation=activation)
    kernel, bias = km.layers[0].get_weights()
    with torch.no_grad():
        ours.dense.weight.copy_(torch.tensor(kernel.T))
        ours.dense.bias.copy_(torch.tensor(bias))
    return km, ours


@pytest.mark.parametrize("loss,activation,n_out,metrics", [
    ("categorical_crossentropy", "softmax", 3, ["accuracy"]),
    ("mse", None, 2, ["mae"]),
    ("binary_crossentropy", "sigmoid", 1, ["accuracy"]),
])
def test_fit_epoch_matches_keras(loss, activation, n_out, metrics):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    if loss == "categorical_crossentropy":
        y = np.eye(3, dtype="float32")[rng.integers(0, 3, 40)]
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=(40, 1)).astype("float32")
    else:
        y = rng.normal(size=(40, n_out)).astype("float32")
    sw = rng.uniform(0.5, 1.5, size=(40,)).astype("float32")
    km, ours = _pair(4, n_out, activation)
    km.compile(keras.optimizers.SGD(learning_rate=0.1), loss=loss, metrics=metrics, weighted_metrics=metrics)
    ours.compile(optimizers.SGD(learning_rate=0.1), loss=loss, metrics=metrics, weighted_metrics=metrics)
    kw = dict(batch_size=8, epochs=2, shuffle=False, validation_split=0.2, sample_weight=sw, verbose=0)
    kh = km.fit(x, y, **kw).history
    oh = ours.fit(x, y, **kw).history
    assert sorted(oh) == sorted(kh) and f"weighted_{metrics[0]}" in oh
    for key in kh:
        np.testing.assert_allclose(oh[key], kh[key], rtol=1e-5, atol=1e-6, err_msg=key)
    kernel, bias = km.layers[0].get_weights()
    np.testing.assert_allclose(ours.dense.weight.detach().numpy(), kernel.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.dense.bias.detach().numpy(), bias, rtol=1e-5, atol=1e-6)
    ours_eval = ours.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    keras_eval = km.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert sorted(ours_eval) == sorted(keras_eval)
    for key in keras_eval:
        assert ours_eval[key] == pytest.approx(float(keras_eval[key]), rel=1e-5, abs=1e-6), key
    np.testing.assert_allclose(ours.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
