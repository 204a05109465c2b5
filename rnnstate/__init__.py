"""rnnstate: Keras-compatible recurrent layers on PyTorch, with sequences and states first-class."""
from . import activations, initializers, layers, models, utils
from ._state import GRUState, LSTMState, SimpleRNNState
from .layers import Input
from .models import Model, Sequential
from . import callbacks, export, losses, metrics, mixed_precision, optimizers, plot, regularizers, states
from .states import StateStore, Streamer

from ._version import __version__

__all__ = ["Input", "Model", "Sequential", "layers", "models", "initializers", "activations", "utils",
           "LSTMState", "GRUState", "SimpleRNNState", "states", "plot", "Streamer", "StateStore",
           "callbacks", "export", "losses", "metrics", "mixed_precision", "optimizers", "regularizers"]
