"""Merge layers over a list of inputs (Keras' ``keras.layers`` merging): Concatenate, Add, Subtract,
Multiply, Average, Maximum, Minimum, Dot, and their functional forms ``add([a, b])``, ``concatenate(...)``...

Element-wise merges broadcast like Keras: inputs of lower rank get unit axes inserted after the batch
axis. Masks (Keras 3): the output mask is the OR of the inputs' masks when every input has one, else none;
``Maximum`` / ``Minimum`` also fill a masked step of one input with the other's value before merging."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .. import _checks
from .base import Layer, to_mask


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


class _Merge(Layer):
    """Base of the element-wise merges: ``_op(a, b)`` folded over the inputs, left to right."""

    _min_inputs = 2
    _list_input = True

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape, self._min_inputs)
        rank = max(len(s) for s in input_shape)
        out = []
        padded = [tuple(s[:1]) + (1,) * (rank - len(s)) + tuple(s[1:]) for s in input_shape]
        for dims in zip(*padded):
            known = {d for d in dims if d is not None and d != 1}
            if len(known) > 1:
                raise _checks.merge_shapes(self, input_shape)
            out.append(known.pop() if known else (None if None in dims else 1))
        return tuple(out)

    def compute_mask(self, inputs, mask=None):
        """Keras: None if any input is unmasked, else the OR of the masks."""
        if mask is None or any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = out | m
        return out

    def _aligned(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < self._min_inputs:
            got = [tuple(x.shape) for x in inputs] if isinstance(inputs, (list, tuple)) else tuple(inputs.shape)
            _check_list(self, got, self._min_inputs)
        inputs = list(inputs)
        self.compute_output_shape([tuple(x.shape) for x in inputs])     # Keras' broadcasting rule, named errors
        rank = max(x.dim() for x in inputs)
        return [x.reshape(x.shape[:1] + (1,) * (rank - x.dim()) + x.shape[1:]) if x.dim() < rank else x
                for x in inputs]

    def forward(self, inputs, training=None):
        xs = self._aligned(inputs)
        out = xs[0]
        for x in xs[1:]:
            out = self._op(out, x)
        return self._finish(out, len(xs))

    def _finish(self, out, n):
        return out


class Add(_Merge):
    """Element-wise sum of the inputs."""

    @staticmethod
    def _op(a, b):
        return a + b


class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` (exactly two inputs)."""

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) and len(input_shape) != 2:
            raise _checks.error(self, f"expects exactly 2 inputs; received {len(input_shape)}.")
        return super().compute_output_shape(input_shape)

    def forward(self, inputs, training=None):
        if len(inputs) != 2:
            raise _checks.error(self, f"expects exactly 2 inputs; received {len(inputs)}.")
        a, b = self._aligned(inputs)
        return a - b


class Multiply(_Merge):
    """Element-wise product of the inputs."""

    @staticmethod
    def _op(a, b):
        return a * b


class Average(_Merge):
    """Element-wise mean of the inputs."""

    @staticmethod
    def _op(a, b):
        return a + b

    def _finish(self, out, n):
        return out / n


class _MaskedExtremum(_Merge):
    """Maximum / Minimum: as Keras, where one input is masked (its (B, T) mask False) the other
    input's value is used, so padding never wins."""

    _consumes_mask = True

    def forward(self, inputs, training=None, mask=None):
        xs = self._aligned(inputs)
        masks = list(mask) if isinstance(mask, (list, tuple)) else [None] * len(xs)
        if len(masks) != len(xs):
            raise _checks.error(self, f"argument `mask` must be a list of {len(xs)} masks (or None), one per "
                                      f"input; received {len(masks)}.")
        out, out_mask = None, None
        for x, m in zip(xs, masks):
            if m is not None:
                m = to_mask(self, m, x.device).unsqueeze(-1).expand_as(x)
            if out is None:
                out, out_mask = x, m
                continue
            if m is not None:
                x = torch.where(m, x, out)
            if out_mask is not None:
                out = torch.where(out_mask, out, x)
            out_mask = out_mask | m if (m is not None and out_mask is not None) else None
            out = self._op(out, x)
        return out


class Maximum(_MaskedExtremum):
    """Element-wise maximum of the inputs."""
    _op = staticmethod(torch.maximum)


class Minimum(_MaskedExtremum):
    """Element-wise minimum of the inputs."""
    _op = staticmethod(torch.minimum)


class Dot(Layer):
    """Batched dot product of two inputs along `axes` (an int, or one axis per input; never the batch
    axis), L2-normalised first with ``normalize=True`` (cosine similarity).

    Shapes: (B, X..., K) . (B, K, Y...) -> (B, X..., Y...), e.g. (B, Tq, F) . (B, Tv, F) with ``axes=2``
    -> (B, Tq, Tv); two (B, F) give (B, 1), as in Keras."""

    _config_args = ("axes", "normalize")
    _list_input = True

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
                raise _checks.error(self, f"argument `axes` must be an int or a list of 2 ints; received {axes!r}.")
            axes = list(axes)
        elif isinstance(axes, bool) or not isinstance(axes, int):
            raise _checks.error(self, f"argument `axes` must be an int or a list of 2 ints; received {axes!r}.",
                                TypeError)
        self.axes = axes
        self.normalize = bool(normalize)

    def _resolve(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) != 2:
            raise _checks.error(self, f"expects a list of exactly 2 inputs; received {shapes!r:.200}.")
        r1, r2 = len(shapes[0]), len(shapes[1])
        if r1 < 2 or r2 < 2:
            raise _checks.error(self, f"inputs must have at least 2 dimensions (batch, ...); received shapes "
                                      f"{[_checks.fmt_shape(s) for s in shapes]}.")
        if None not in (shapes[0][0], shapes[1][0]) and shapes[0][0] != shapes[1][0]:
            raise _checks.error(self, f"the inputs must have the same batch size; received shapes "
                                      f"{[_checks.fmt_shape(s) for s in shapes]}.")
        axes = [self.axes, self.axes] if isinstance(self.axes, int) else list(self.axes)
        axes = [a % r for a, r in zip(axes, (r1, r2))]
        if 0 in axes:
            raise _checks.error(self, f"argument `axes` can't include the batch axis 0; received {self.axes!r}.")
        d1, d2 = shapes[0][axes[0]], shapes[1][axes[1]]
        if d1 is not None and d2 is not None and d1 != d2:
            raise _checks.error(self, f"the dot axes must have equal sizes: axis {axes[0]} of the first input "
                                      f"has {d1}, axis {axes[1]} of the second has {d2} (shapes "
                                      f"{[_checks.fmt_shape(s) for s in shapes]}).")
        return axes

    def compute_output_shape(self, input_shape):
        a1, a2 = self._resolve(input_shape)
        s1 = [d for i, d in enumerate(input_shape[0]) if i != a1]
        s2 = [d for i, d in enumerate(input_shape[1]) if i not in (0, a2)]
        out = tuple(s1 + s2)
        return out if len(out) > 1 else out + (1,)

    def compute_mask(self, inputs, mask=None):
        if mask is None or any(m is None for m in mask):
            return None
        return mask[0] | mask[1]

    def forward(self, inputs, training=None):
        x, y = inputs if len(inputs) == 2 else (None, None)
        a1, a2 = self._resolve([tuple(t.shape) for t in inputs])
        if self.normalize:
            x, y = F.normalize(x, dim=a1, eps=1e-12), F.normalize(y, dim=a2, eps=1e-12)
        xm = x.movedim(a1, -1)                                    # (B, X..., K)
        ym = y.movedim(a2, 1)                                     # (B, K, Y...)
        B, K = xm.shape[0], xm.shape[-1]
        xs, ys = xm.shape[1:-1], ym.shape[2:]
        out = torch.bmm(xm.reshape(B, -1, K), ym.reshape(B, K, -1))   # (B, X, Y)
        out = out.reshape((B,) + tuple(xs) + tuple(ys))
        return out if out.dim() > 1 else out.unsqueeze(1)


def _check_list(layer, shapes, n=2):
    """`shapes`: the inputs (tensors) or their shapes; a list or tuple of at least `n`. Returns it."""
    if not isinstance(shapes, (list, tuple)) or len(shapes) < n:
        what = f"a {type(shapes).__name__}" if not isinstance(shapes, (list, tuple)) else f"{len(shapes)} input(s)"
        raise _checks.error(layer, f"argument `inputs` must be a list of at least {n} tensors; received {what}.")
    return shapes


# ---- functional forms (Keras' keras.layers.add, concatenate...) ----------------------------------------------
def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, **kwargs):
    """``Dot(axes=axes, **kwargs)(inputs)``."""
    return Dot(axes=axes, **kwargs)(inputs)
