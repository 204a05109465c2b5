"""Small utilities shared across rnnstate."""

import random

import numpy as np
import torch

__all__ = ["set_random_seed"]


def set_random_seed(seed):
    """Seed python ``random``, numpy and torch at once (like ``keras.utils.set_random_seed``).

    After this call, unseeded initializers (whose default seed is drawn from
    torch's global RNG), dropout masks and any other global-RNG draws are
    reproducible.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            f"Expected `seed` argument to be an integer. Received: seed={seed!r}"
        )
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
