"""Training-time noise: SpatialDropout1D and GaussianNoise (identity at inference, masks pass through)."""
from __future__ import annotations

import numbers

import torch

from .. import _checks
from ._weights import check_rank
from .base import Layer


class SpatialDropout1D(Layer):
    """Dropout of whole feature channels: when training, each (sample, channel) pair is zeroed for every
    timestep with probability `rate` (noise shape (B, 1, F)), the rest scaled by 1/(1-rate)."""

    _config_args = ("rate", "seed")

    def __init__(self, rate, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.rate = _checks.fraction(self, "rate", rate)
        self.seed = seed

    def get_config(self):
        cfg = super().get_config()
        cfg.pop("trainable", None)          # Keras' SpatialDropout1D takes no `trainable`
        return cfg

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 3, "(batch, timesteps, channels)")
        return tuple(input_shape)

    def forward(self, x, training=None):
        if x.dim() != 3:
            check_rank(self, tuple(x.shape), 3, "(batch, timesteps, channels)")
        if not self._is_training(training) or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        noise = (torch.rand((x.shape[0], 1, x.shape[2]), device=x.device) < keep).to(x.dtype) / keep
        return x * noise


class GaussianNoise(Layer):
    """Adds zero-mean Gaussian noise of standard deviation `stddev` when training (identity otherwise)."""

    _config_args = ("stddev", "seed")

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, numbers.Real) or stddev < 0:
            raise _checks.error(self, f"argument `stddev` must be a non-negative float; received {stddev!r}.")
        self.stddev = float(stddev)
        self.seed = seed

    def forward(self, x, training=None):
        if not self._is_training(training) or self.stddev == 0.0:
            return x
        return x + torch.randn_like(x) * self.stddev
