"""`Lambda`: wrap a Python callable as a layer, with Keras' safety rule for saved models.

In memory a Lambda simply runs ``function(inputs, **arguments)`` on torch tensors. Saved (``.keras``,
``.safetensors``, ``to_json``) its function is written as Keras writes it: a Python lambda as
``{"class_name": "__lambda__", "config": {"code": <base64 marshal of the bytecode>, ...}}``, a named
function as ``{"module", "class_name": "function", "config": <name>}``. Loading either means running
code from the file, so it is refused unless the caller opts in with ``load_model(..., safe_mode=False)``
(``rnnstate.serialization.safe_mode_scope(False)``), exactly as Keras refuses it. With the opt-in, a
lambda's bytecode is rebuilt (only readable by the Python version that wrote it) with ``torch``,
``np``, ``F`` (torch.nn.functional) and ``math`` as globals, and a named function is imported from
its module. Nothing else in rnnstate ever unmarshals, unpickles, imports or evaluates file content.
"""
from __future__ import annotations

import base64
import math
import types

import numpy as np
import torch
from torch.nn import functional as F

from .. import _checks
from .._symbolic import SymbolicTensor, map_structure
from .base import Layer, shape_of

_LAMBDA_GLOBALS = {"torch": torch, "np": np, "numpy": np, "F": F, "math": math}


class Lambda(Layer):
    """``Lambda(function, output_shape=None, mask=None, arguments=None)``.

    Call: ``function(inputs, **arguments)`` (inputs: a tensor or a list of tensors, torch tensors).
    ``output_shape``: the output's shape without the batch axis, or a callable ``input_shape ->
    output_shape``; when None it is found by running `function` once on zeros (unknown dims tried at
    two sizes). ``mask``: None (the output has no mask, as in Keras), a fixed mask, or a callable
    ``(inputs, mask) -> mask``.
    """

    _list_input = True       # takes a list of tensors ([query, value], ...)

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise _checks.error(self, f"argument `function` must be callable; received {type(function).__name__}.",
                                TypeError)
        if arguments is not None and not isinstance(arguments, dict):
            raise _checks.error(self, f"argument `arguments` must be a dict of keyword arguments; received "
                                      f"{type(arguments).__name__}.", TypeError)
        self.function = function
        self._output_shape = tuple(output_shape) if isinstance(output_shape, list) else output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})

    def forward(self, inputs, training=None, mask=None):
        return self.function(inputs, **self.arguments)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    # ---- shapes ---------------------------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        if self._output_shape is not None:
            batch = input_shape[0][0] if isinstance(input_shape, list) else input_shape[0]
            return (batch,) + tuple(self._output_shape)
        return self._traced_shape(input_shape)

    def compute_output_spec(self, inputs, *args, **kwargs):
        if self._output_shape is not None:
            return SymbolicTensor(self.compute_output_shape(shape_of(inputs)))
        out = self._trace(inputs)
        return map_structure(lambda s: SymbolicTensor(s), out) if isinstance(out, list) else SymbolicTensor(out)

    def _traced_shape(self, input_shape):
        return self._trace(map_structure(lambda s: SymbolicTensor(s), input_shape)
                           if isinstance(input_shape, list) else SymbolicTensor(input_shape))

    def _trace(self, inputs):
        """Run the function on zeros with unknown dims set to 2, then 3: dims that change are None."""
        def run(n):
            def zeros(t):
                return torch.zeros(tuple(n if d is None else d for d in t.shape), device="cpu",
                                   dtype=t.dtype if isinstance(t, SymbolicTensor) else torch.float32)
            with torch.no_grad():
                try:
                    y = self.function(map_structure(zeros, inputs), **self.arguments)
                except Exception as e:
                    raise _checks.error(self, f"could not infer the output shape by running `function` on zeros "
                                              f"({type(e).__name__}: {e}); pass `output_shape=`.") from None
            return [tuple(t.shape) for t in y] if isinstance(y, (list, tuple)) else tuple(y.shape)

        a, b = run(2), run(3)

        def merge(x, y):
            return tuple(p if p == q else None for p, q in zip(x, y))
        return [merge(x, y) for x, y in zip(a, b)] if isinstance(a, list) else merge(a, b)

    # ---- config ---------------------------------------------------------------------------------------------
    def get_config(self):
        cfg = super().get_config()
        cfg["function"] = _function_to_config(self, self.function)
        if self._output_shape is not None:
            cfg["output_shape"] = _function_to_config(self, self._output_shape) if callable(self._output_shape) \
                else list(self._output_shape)
        if self.mask is not None:
            if not callable(self.mask):
                raise _checks.error(self, "a fixed (non-callable) `mask` can't be saved; use a callable.")
            cfg["mask"] = _function_to_config(self, self.mask)
        cfg["arguments"] = self.arguments
        return cfg

    @classmethod
    def from_config(cls, config):
        from .. import serialization
        config = dict(config)
        who = f"Lambda '{config.get('name', '?')}'"
        if serialization.in_safe_mode():
            raise ValueError(f"{who}: the model holds a `Lambda` layer, whose function is Python code stored in "
                             f"the file; loading it would run that code, so it is refused by default (as in "
                             f"Keras). If you trust the file, pass `safe_mode=False` to `load_model`.")
        for key in ("function", "output_shape", "mask"):
            v = config.get(key)
            if isinstance(v, dict):
                config[key] = _function_from_config(who, key, v)
        if isinstance(config.get("arguments"), dict) and set(config["arguments"]) == {"class_name", "config"} \
                and config["arguments"].get("class_name") == "__dict__":
            config["arguments"] = config["arguments"]["config"]
        return cls(**config)


def _function_to_config(layer, fn):
    if isinstance(fn, types.LambdaType) and fn.__name__ == "<lambda>":
        import marshal
        code = base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii")
        closure = tuple(c.cell_contents for c in fn.__closure__) if fn.__closure__ else None
        return {"class_name": "__lambda__", "config": {"code": code, "defaults": fn.__defaults__,
                                                         "closure": closure}}
    name = getattr(fn, "__name__", None)
    module = getattr(fn, "__module__", None)
    if isinstance(fn, types.FunctionType) and name and module:
        return {"module": module, "class_name": "function", "config": name, "registered_name": "function"}
    raise _checks.error(layer, f"can't save the callable {fn!r:.80}: only Python functions and lambdas can be "
                               f"written to a config.")


def _function_from_config(who, key, cfg):
    """Only reached with safe mode off (the caller's explicit opt-in)."""
    kind = cfg.get("class_name")
    inner = cfg.get("config")
    if kind == "__lambda__" and isinstance(inner, dict) and isinstance(inner.get("code"), str):
        import marshal
        try:
            code = marshal.loads(base64.decodebytes(inner["code"].encode("ascii")))
        except (ValueError, EOFError, TypeError) as e:
            raise ValueError(f"{who}: the `{key}` bytecode can't be read ({e}); it was probably written by another "
                             f"Python version.") from None
        if not isinstance(code, types.CodeType):
            raise ValueError(f"{who}: the `{key}` entry holds no Python code.")
        defaults = tuple(inner["defaults"]) if isinstance(inner.get("defaults"), list) else inner.get("defaults")
        closure = inner.get("closure")
        cells = tuple(types.CellType(v) for v in closure) if closure else None
        if len(code.co_freevars) != len(cells or ()):
            raise ValueError(f"{who}: the `{key}` closure has {len(cells or ())} value(s); the code needs "
                             f"{len(code.co_freevars)}.")
        return types.FunctionType(code, dict(_LAMBDA_GLOBALS, __builtins__=__builtins__), None, defaults, cells)
    if kind == "function" and isinstance(inner, str) and isinstance(cfg.get("module"), str):
        import importlib
        try:
            fn = getattr(importlib.import_module(cfg["module"]), inner)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"{who}: can't find the function {cfg['module']}.{inner} ({e}).") from None
        if not callable(fn):
            raise ValueError(f"{who}: {cfg['module']}.{inner} is not callable.")
        return fn
    raise ValueError(f"{who}: unsupported `{key}` entry {cfg!r:.120}.")
