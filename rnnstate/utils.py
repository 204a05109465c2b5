"""Small utilities shared across rnnstate."""

import random

import numpy as np
import torch

from . import _logging

__all__ = ["set_random_seed", "enable_interactive_logging", "disable_interactive_logging",
           "is_interactive_logging_enabled", "plot_model", "model_to_dot"]


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


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=200, subgraph=False, show_layer_activations=False, show_trainable=False,
                 splines="ortho", **kwargs):
    """The model's layer graph as a ``pydot.Dot`` (needs ``pydot``); see :mod:`rnnstate.utils_plot`."""
    from .utils_plot import model_to_dot as impl
    return impl(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                rankdir=rankdir, expand_nested=expand_nested, dpi=dpi, subgraph=subgraph,
                show_layer_activations=show_layer_activations, show_trainable=show_trainable, splines=splines,
                **kwargs)


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
               expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False, splines="ortho",
               **kwargs):
    """Draw the model's layer graph into `to_file`, as ``keras.utils.plot_model`` (needs ``pydot`` and
    Graphviz's ``dot``: ``pip install rnnstate[plot]`` plus a system Graphviz); see :mod:`rnnstate.utils_plot`."""
    from .utils_plot import plot_model as impl
    return impl(model, to_file=to_file, show_shapes=show_shapes, show_dtype=show_dtype,
                show_layer_names=show_layer_names, rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                show_layer_activations=show_layer_activations, show_trainable=show_trainable, splines=splines,
                **kwargs)
