"""Keras training API for rnnstate models on torch.optim.

``TrainingMixin`` (engine) gives a model ``compile``, ``fit``, ``evaluate``, ``predict``,
``train_on_batch``, ``test_on_batch`` and ``predict_on_batch``; the submodules hold the
Keras-style optimizers, losses, metrics and callbacks.
"""

from . import callbacks, losses, metrics, optimizers
from .callbacks import (Callback, CSVLogger, EarlyStopping, History, LambdaCallback, LearningRateScheduler,
                        ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN, TorchLRScheduler)
from .engine import TrainingMixin

__all__ = ["TrainingMixin", "callbacks", "losses", "metrics", "optimizers", "Callback", "CSVLogger",
           "EarlyStopping", "History", "LambdaCallback", "LearningRateScheduler", "ModelCheckpoint",
           "ReduceLROnPlateau", "TerminateOnNaN", "TorchLRScheduler"]
