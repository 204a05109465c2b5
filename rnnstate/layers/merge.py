"""Concatenate and Add: layers over a list of inputs."""
from __future__ import annotations

import torch

from .. import _checks
from .base import Layer


class Concatenate(Layer):
    _config_args = ("axis",)

    _list_input = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _checks.integer(self, "axis", axis)

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape)
        rank = len(input_shape[0])
        if not -rank <= self.axis < rank:
            raise _checks.concat_axis(self, self.axis, rank, input_shape)
        ax = self.axis % rank
        if any(len(s) != rank for s in input_shape):
            raise _checks.error(self, f"inputs must have the same rank; received shapes "
                                      f"{[_checks.fmt_shape(x) for x in input_shape]}.")
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
        self.compute_output_shape([tuple(x.shape) for x in _check_list(self, inputs)])
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
    _list_input = True

    def compute_output_shape(self, input_shape):
        """Keras: the shapes must broadcast (on each axis equal, 1 or None); the output has the
        broadcast shape."""
        _check_list(self, input_shape)
        rank = max(len(s) for s in input_shape)
        out = []
        for i in range(rank):
            dims = [s[len(s) - rank + i] for s in input_shape if len(s) - rank + i >= 0]
            known = {d for d in dims if d is not None and d != 1}
            if len(known) > 1:
                raise _checks.merge_shapes(self, input_shape)
            if known:
                out.append(known.pop())
            else:
                out.append(None if any(d is None for d in dims) else 1)
        return tuple(out)

    def compute_mask(self, inputs, mask=None):
        """Keras: None if any input is unmasked, else the OR of the masks."""
        if mask is None or any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = out | m
        return out

    def forward(self, inputs, training=None):
        self.compute_output_shape([tuple(x.shape) for x in _check_list(self, inputs)])
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


def _check_list(layer, shapes):
    if not isinstance(shapes, (list, tuple)) or len(shapes) < 2:
        what = f"a {type(shapes).__name__}" if not isinstance(shapes, (list, tuple)) else f"{len(shapes)} input(s)"
        raise _checks.error(layer, f"argument `inputs` must be a list of at least 2 tensors; received {what}.")
    return shapes
