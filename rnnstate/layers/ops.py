"""The small tensor operations Keras 3 writes as graph nodes of functional models (``NotEqual``, ``Any``...).

A Keras 3 functional model whose recurrent layer received a computed mask (``Embedding(mask_zero=True)``
feeding an LSTM inside a ``Model``, ``Masking``, or ``mask=keras.ops.not_equal(ids, 0)`` written by hand)
stores that mask's computation as operation nodes (``{"module": "keras.src.ops.numpy", "class_name":
"NotEqual", ...}``). These classes rebuild them, so such files load (and save back in Keras' form). Each
takes its operands as call arguments, as the nodes do: ``NotEqual()(ids, 0)`` is ``ids != 0``.
"""
from __future__ import annotations

import torch

from .. import _checks
from .._symbolic import SymbolicTensor
from .base import Layer, to_tensor

_DTYPES = {"bool": torch.bool, "float32": torch.float32, "int32": torch.int64, "int64": torch.int64,
           "float16": torch.float16, "bfloat16": torch.bfloat16}


def _broadcast_shape(a, b):
    a, b = tuple(a), tuple(b)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    return tuple(None if (x is None or y is None) and 1 not in (x, y) else
                 (y if x == 1 else x) for x, y in zip(a, b))


class _Op(Layer):
    """An operation node: no weights, no config beyond its name and arguments, masks pass through."""

    _list_input = True       # takes a list of tensors ([query, value], ...)

    _input_dtype = None
    _applies_policy = False  # fixed output dtypes (Cast, comparisons): no mixed policy
    _op_args: tuple = ()
    keras_module = "keras.src.ops.numpy"

    def __init__(self, name=None, **kwargs):
        args = {k: kwargs.pop(k) for k in self._op_args if k in kwargs}
        kwargs.pop("trainable", None)
        if "dtype" not in self._op_args:
            kwargs.pop("dtype", None)
        super().__init__(name=name, **kwargs)
        for k in self._op_args:
            setattr(self, k, args.get(k, self._defaults.get(k)))
        self.built = True

    _defaults: dict = {}

    def get_config(self):
        return {"name": self.name, **{k: getattr(self, k) for k in self._op_args}}

    def _convert_input(self, x):
        return x if isinstance(x, torch.Tensor) else to_tensor(x, None, self._device())

    def compute_output_spec(self, *args, **kwargs):
        shapes = [a.shape for a in args if isinstance(a, SymbolicTensor)]
        shape = shapes[0]
        for s in shapes[1:]:
            shape = _broadcast_shape(shape, s)
        return SymbolicTensor(self._out_shape(shape), self._out_dtype(args))

    def _out_shape(self, shape):
        return shape

    def _out_dtype(self, args):
        return torch.bool


class _Binary(_Op):
    def forward(self, x, y, training=None):
        y = y if isinstance(y, torch.Tensor) else torch.as_tensor(y, device=x.device)
        return self._fn(x, y)


class NotEqual(_Binary):
    _fn = staticmethod(torch.ne)


class Equal(_Binary):
    _fn = staticmethod(torch.eq)


class LogicalAnd(_Binary):
    _fn = staticmethod(torch.logical_and)


class LogicalOr(_Binary):
    _fn = staticmethod(torch.logical_or)


class LogicalNot(_Op):
    def forward(self, x, training=None):
        return torch.logical_not(x)


class _Reduce(_Op):
    _op_args = ("axis", "keepdims")
    _defaults = {"axis": None, "keepdims": False}

    def _axes(self, rank):
        if self.axis is None:
            return list(range(rank))
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        return sorted(int(a) % rank for a in axes)

    def _out_shape(self, shape):
        axes = self._axes(len(shape))
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(shape))
        return tuple(d for i, d in enumerate(shape) if i not in axes)

    def forward(self, x, training=None):
        axes = self._axes(x.dim())
        if not axes:
            return x.bool()
        return self._fn(x.bool(), dim=axes, keepdim=bool(self.keepdims))


class Any(_Reduce):
    _fn = staticmethod(torch.any)


class All(_Reduce):
    _fn = staticmethod(torch.all)


class Cast(_Op):
    keras_module = "keras.src.ops.core"
    _op_args = ("dtype",)
    _defaults = {"dtype": "float32"}

    def _out_dtype(self, args):
        return self._torch_dtype()

    def _torch_dtype(self):
        name = self.dtype if isinstance(self.dtype, str) else None
        if name not in _DTYPES:
            raise _checks.error(self, f"argument `dtype` must be one of {sorted(_DTYPES)}; received {self.dtype!r}.")
        return _DTYPES[name]

    def forward(self, x, training=None):
        return x.to(self._torch_dtype())


OPS = {c.__name__: c for c in (NotEqual, Equal, LogicalAnd, LogicalOr, LogicalNot, Any, All, Cast)}
