"""Adam's epsilon as Keras applies it ("epsilon hat", before bias correction): visible when gradients are
near epsilon. Oracle: keras.optimizers.Adam / AdamW on the same model, data and initial weights."""
import keras
import numpy as np
import pytest

import rnnstate as rs


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_tiny_gradients_follow_keras_adam(name):
    x = np.full((4, 1), 1e-7, "float32")                  # gradient of the kernel ~ 1e-7 ~ epsilon
    y = np.ones((4, 1), "float32")
    w0 = [np.zeros((1, 1), "float32"), np.zeros((1,), "float32")]
    ours = rs.Sequential([rs.Input((1,)), rs.layers.Dense(1)])
    ours.set_weights(w0)
    ours.compile(getattr(rs.optimizers, name)(0.01), "mse")
    theirs = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    theirs.set_weights(w0)
    theirs.compile(getattr(keras.optimizers, name)(0.01), "mse")
    for _ in range(5):
        ours.train_on_batch(x, y)
        theirs.train_on_batch(x, y)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9)
