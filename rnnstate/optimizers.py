"""`rnnstate.optimizers`: Keras' `keras.optimizers` namespace (implemented in `rnnstate.training.optimizers`)."""
from .training.optimizers import *  # noqa: F401,F403
from .training.optimizers import __all__  # noqa: F401
