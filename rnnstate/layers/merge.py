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

    def compute_mask(self, inputs, mask=None):
        """Keras: unmasked inputs count as all-valid; the masks, broadcast to the inputs' shapes, are
        concatenated and reduced with ``any`` over the last axis."""
        if mask is None or all(m is None for m in mask):
            return None
        parts = [torch.ones_like(x, dtype=torch.bool) if m is None else
                 (m.unsqueeze(-1).expand_as(x) if m.dim() < x.dim() else m) for x, m in zip(inputs, mask)]
        return torch.cat(parts, self.axis).any(dim=-1)


class Add(Layer):
    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape)
        return tuple(input_shape[0])

    def compute_mask(self, inputs, mask=None):
        """Keras: None if any input is unmasked, else the OR of the masks."""
        if mask is None or any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = out | m
        return out

    def forward(self, inputs, training=None):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


def _check_list(layer, shapes):
    if not isinstance(shapes, list) or len(shapes) < 2:
        raise _checks.error(layer, f"expects a list of at least 2 inputs; received {shapes!r}.")
