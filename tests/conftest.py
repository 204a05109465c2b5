import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch

# Named, distinct sizes (B batch, T timesteps, F features, U units)
B, T, F, U = 3, 5, 4, 6


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_like_weights(weights, rng, scale=0.5):
    return [(rng.standard_normal(w.shape) * scale).astype("float32") for w in weights]
