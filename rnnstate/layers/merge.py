"""Concatenate and Add: layers over a list of inputs."""
from __future__ import annotations

import torch

from .. import _checks
from .base import Layer


class Concatenate(Layer):
    _config_args = ("axis",)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape)
        rank = len(input_shape[0])
        ax = self.axis % rank
        dims = [s[ax] for s in input_shape]
        out = list(input_shape[0])
        out[ax] = None if any(d is None for d in dims) else sum(dims)
        for s in input_shape:
            if len(s) != rank or any(a is not None and b is not None and a != b and i != ax
                                     for i, (a, b) in enumerate(zip(s, input_shape[0]))):
                raise _checks.error(self, f"inputs must match except on axis {self.axis}; received shapes "
                                          f"{[_checks.fmt_shape(x) for x in input_shape]}.")
        return tuple(out)

    def forward(self, inputs, training=None):
        return torch.cat(list(inputs), self.axis)


class Add(Layer):
    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape)
        return tuple(input_shape[0])

    def forward(self, inputs, training=None):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


def _check_list(layer, shapes):
    if not isinstance(shapes, list) or len(shapes) < 2:
        raise _checks.error(layer, f"expects a list of at least 2 inputs; received {shapes!r}.")
