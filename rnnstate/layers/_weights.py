"""Small shared helpers for layers that own weights: make a parameter from a Keras initializer, expose a
tensor as a Keras-layout :class:`WeightRef`, and read Keras' ``data_format`` / padding arguments."""
from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from .base import WeightRef, init_weight

DATA_FORMATS = ("channels_last", "channels_first")


def param(initializer, shape, owner="rnnstate", arg="initializer") -> nn.Parameter:
    """A float32 parameter of `shape` (Keras layout) drawn from a Keras initializer; an initializer that fails
    for this shape (``Orthogonal`` on a vector, a ``Constant`` array of another shape) or gives non-finite
    values is reported naming `owner` and its argument `arg`."""
    return nn.Parameter(init_weight(owner, arg, lambda: initializer(tuple(shape)), shape))


def ref(layer, name, attr=None, trainable=True) -> WeightRef:
    """A WeightRef for the parameter or buffer ``layer.<attr>`` (default: `name`), stored in Keras layout:
    reads detach, writes copy in place (looked up at each access, so `.to(device)` is safe)."""
    attr = attr or name
    return WeightRef(layer, name, getattr(layer, attr).shape, lambda: getattr(layer, attr).detach(),
                     lambda v: getattr(layer, attr).copy_(v), trainable=trainable)


def data_format(layer, value):
    """Keras' ``data_format``: None means ``"channels_last"`` (Keras' default image data format)."""
    return _checks.one_of(layer, "data_format", value or "channels_last", DATA_FORMATS)


def int_tuple(layer, arg, value, n=1):
    """An int or a tuple of `n` ints (Keras' ``kernel_size=3`` or ``(3,)``) -> a tuple of positive ints."""
    vals = tuple(value) if isinstance(value, (list, tuple)) else (value,) * n
    if len(vals) != n:
        raise _checks.error(layer, f"argument `{arg}` must be an integer or a tuple of {n} integer(s); "
                                   f"received {value!r}.")
    return tuple(_checks.positive_int(layer, arg, v, _checks.INT32_MAX) for v in vals)   # (torch's C int)


def check_rank(layer, shape, rank, what):
    if len(shape) != rank:
        raise _checks.error(layer, f"expects a {rank}-D input {what}; received shape {_checks.fmt_shape(shape)} "
                                   f"({len(shape)}-D).")
