"""Small utilities shared across rnnstate."""

import random

import numpy as np
import torch

from . import _logging

__all__ = ["set_random_seed", "enable_interactive_logging", "disable_interactive_logging",
           "is_interactive_logging_enabled"]


def enable_interactive_logging():
    """Progress bars on (the default): ``verbose=1`` in fit / evaluate / predict draws a tqdm bar."""
    _logging.set_interactive(True)


def disable_interactive_logging():
    """Progress bars off, as ``keras.utils.disable_interactive_logging``: ``verbose=1`` then prints one line
    per epoch in ``fit`` (as ``verbose=2``) and nothing in ``evaluate`` / ``predict``."""
    _logging.set_interactive(False)


def is_interactive_logging_enabled():
    return _logging.is_interactive()


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
