"""`rnnstate.callbacks`: Keras' `keras.callbacks` namespace (implemented in `rnnstate.training.callbacks`
and, for `TensorBoard`, `rnnstate.training.tensorboard`)."""
from .training.callbacks import *  # noqa: F401,F403
from .training.callbacks import __all__ as _base_all
from .training.tensorboard import TensorBoard  # noqa: F401

__all__ = list(_base_all) + ["TensorBoard"]
