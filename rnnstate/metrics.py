"""`rnnstate.metrics`: Keras' `keras.metrics` namespace (implemented in `rnnstate.training.metrics`)."""
from .training.metrics import *  # noqa: F401,F403
from .training.metrics import __all__  # noqa: F401
