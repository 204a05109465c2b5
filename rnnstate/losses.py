"""`rnnstate.losses`: Keras' `keras.losses` namespace (implemented in `rnnstate.training.losses`)."""
from .training.losses import *  # noqa: F401,F403
from .training.losses import __all__  # noqa: F401
