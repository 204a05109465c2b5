"""Core layers: Input, Dense, Embedding, RepeatVector, Activation, Dropout, Flatten, Reshape, Permute."""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn
from torch.nn import functional as F

from .. import _checks, activations, initializers, regularizers
from .._symbolic import Node, SymbolicTensor
from .base import Layer, WeightRef, init_weight, probe_activation

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "int32": torch.int64,
           "int64": torch.int64, "bool": torch.bool, "bfloat16": torch.bfloat16}


class InputLayer(Layer):
    """Holds a model input. ``Input(...)`` makes one and returns its symbolic tensor."""

    _applies_policy = False     # its dtype is the input's; no mixed policy

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs):
        for k in ("input_shape", "batch_input_shape"):       # Keras 2 spellings
            if k in kwargs:
                v = tuple(kwargs.pop(k))
                if k == "input_shape":
                    shape = v
                else:
                    batch_shape = v
        kwargs.pop("sparse", None)
        kwargs.pop("ragged", None)
        super().__init__(name=name, **kwargs)     # its dtype may be an integer one: checked here
        self._compute_name = None                 # not the global policy's: the input's dtype, below
        if batch_shape is None:
            if shape is None:
                raise _checks.error(self, "needs `shape` (without the batch axis), e.g. Input(shape=(timesteps, "
                                          "features)); received none.")
            shape = _checks.shape(self, "shape", shape)
            batch_shape = (_checks.integer(self, "batch_size", batch_size, minimum=1, allow_none=True),) + shape
        else:
            batch_shape = _checks.shape(self, "batch_shape", batch_shape, allow_int=False)
        self.batch_shape = batch_shape
        dt = dtype or "float32"
        if isinstance(dt, dict):
            from ..serialization import _dtype_name
            dt = _dtype_name(dt)
        if isinstance(dt, torch.dtype):
            self.tensor_dtype = dt
        else:
            if dt not in _DTYPES:
                raise _checks.error(self, f"argument `dtype` must be one of {sorted(_DTYPES)}; received {dt!r}.")
            self.tensor_dtype = _DTYPES[dt]
        self._dtype_name = dt if isinstance(dt, str) else str(dt).replace("torch.", "")
        self.built = True
        self.output_tensor = SymbolicTensor(self.batch_shape, self.tensor_dtype, name=self.name)
        node = Node(self, (), {}, self.output_tensor)
        self._inbound_nodes.append(node)

    def forward(self, x, training=None):
        return x

    def _own_float_dtype(self, dtype):
        if self.tensor_dtype.is_floating_point:     # model.to(float64): float inputs are fed as float64
            self.tensor_dtype = self.output_tensor.dtype = dtype
            self._dtype_name = str(dtype).replace("torch.", "")

    def get_config(self):
        return {"name": self.name, "batch_shape": list(self.batch_shape), "dtype": self._dtype_name}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs):
    """A symbolic model input of shape ``(batch_size,) + shape``; ``None`` dims are free
    (``Input(shape=(None, F))`` accepts any number of timesteps)."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape,
                      **kwargs).output_tensor


class Dense(Layer):
    """``y = activation(x @ kernel + bias)`` on the last axis. Weights: kernel (F, U), bias (U,)."""

    _config_args = ("units", "activation", "use_bias", "kernel_initializer", "bias_initializer",
                    "kernel_regularizer", "bias_regularizer")

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        for k, v in (("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                     ("bias_constraint", bias_constraint)):
            if v is not None:
                raise _checks.error("Dense", f"argument `{k}` is not supported yet by rnnstate; received {v!r}.",
                                    NotImplementedError)
        super().__init__(**kwargs)
        self.units = _checks.positive_int(self, "units", units)
        self.activation = _checks.resolved(self, "activation", activations.get, activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _checks.resolved(self, "kernel_initializer", initializers.get_for_weight,
                                                   kernel_initializer)
        self.bias_initializer = _checks.resolved(self, "bias_initializer", initializers.get_for_weight,
                                                 bias_initializer)
        self.kernel_regularizer = _checks.resolved(self, "kernel_regularizer", regularizers.get, kernel_regularizer)
        self.bias_regularizer = _checks.resolved(self, "bias_regularizer", regularizers.get, bias_regularizer)

    def _own_penalties(self):
        if not self.built:
            return []
        out = []
        if self.kernel_regularizer is not None:
            out.append(self.kernel_regularizer(self.kernel))
        if self.bias_regularizer is not None and self.bias is not None:
            out.append(self.bias_regularizer(self.bias))
        return out

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise _checks.error(self, f"the last axis of the input must be known; received shape "
                                      f"{_checks.fmt_shape(input_shape)}.")
        self.input_dim = int(input_shape[-1])
        _checks.weights_fit(self, "units", self.units, f"with {self.input_dim} input features, the kernel "
                            f"({self.input_dim}, {self.units})", (self.input_dim + 1) * self.units)
        probe_activation(self, "activation", self.activation, self.units)
        self.kernel = nn.Parameter(init_weight(self, "kernel_initializer", lambda: self.kernel_initializer(
            (self.input_dim, self.units)), (self.input_dim, self.units)))          # (F, U), Keras layout
        self.bias = nn.Parameter(init_weight(self, "bias_initializer", lambda: self.bias_initializer((self.units,)),
                                             (self.units,))) if self.use_bias else None

    def _keras_weights(self):
        if not self.built:
            return []
        ws = [WeightRef(self, "kernel", self.kernel.shape, lambda: self.kernel.detach(), self.kernel.copy_)]
        if self.use_bias:
            ws.append(WeightRef(self, "bias", self.bias.shape, lambda: self.bias.detach(), self.bias.copy_))
        return ws

    def compute_output_shape(self, input_shape):
        if self.built:
            _check_last(self, self.input_dim, input_shape)
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=None):
        _check_last(self, self.input_dim, x.shape)
        return self.activation(F.linear(x, self.kernel.t(), self.bias))     # (..., U): one addmm


def _check_last(layer, expected, shape):
    if shape[-1] is not None and int(shape[-1]) != expected:
        raise _checks.error(layer, f"expects inputs whose last axis has {expected} features; received shape "
                                   f"{_checks.fmt_shape(tuple(shape))}.")


class Embedding(Layer):
    """Integer ids (B, T) -> vectors (B, T, output_dim). Weight: embeddings (input_dim, output_dim)."""

    _config_args = ("input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer", "mask_zero")
    _input_dtype = None

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, input_length=None, **kwargs):
        if input_length is not None and "input_shape" not in kwargs:     # Keras 2's spelling of the input shape
            kwargs["input_shape"] = (_checks.integer("Embedding", "input_length", input_length, minimum=1),)
        super().__init__(**kwargs)
        self.input_dim = _checks.positive_int(self, "input_dim", input_dim)
        self.output_dim = _checks.positive_int(self, "output_dim", output_dim)
        _checks.weights_fit(self, "input_dim", self.input_dim, f"with output_dim={self.output_dim}, the "
                            f"embeddings ({self.input_dim}, {self.output_dim})", self.input_dim * self.output_dim)
        self.embeddings_initializer = _checks.resolved(self, "embeddings_initializer", initializers.get_for_weight,
                                                       embeddings_initializer)
        self.embeddings_regularizer = _checks.resolved(self, "embeddings_regularizer", regularizers.get,
                                                       embeddings_regularizer)
        if embeddings_constraint is not None:
            raise _checks.error(self, f"argument `embeddings_constraint` is not supported yet by rnnstate; received "
                                      f"{embeddings_constraint!r:.100}. Pass None (the default).", NotImplementedError)
        self.mask_zero = bool(mask_zero)
        self._mask_source = self.mask_zero

    def _own_penalties(self):
        if not self.built or self.embeddings_regularizer is None:
            return []
        return [self.embeddings_regularizer(self.embeddings)]

    def compute_mask(self, inputs, mask=None):
        """With ``mask_zero=True``: ``inputs != 0`` (B, T), the steps later layers skip (Keras)."""
        return (inputs != 0) if self.mask_zero else None

    def build(self, input_shape):
        self.embeddings = nn.Parameter(init_weight(self, "embeddings_initializer", lambda: self.embeddings_initializer(
            (self.input_dim, self.output_dim)), (self.input_dim, self.output_dim)))

    def _keras_weights(self):
        if not self.built:
            return []
        return [WeightRef(self, "embeddings", self.embeddings.shape, lambda: self.embeddings.detach(),
                          self.embeddings.copy_)]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def forward(self, x, training=None):
        if x.is_floating_point():
            x = x.long()
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.input_dim):
            raise _checks.error(self, f"ids must be in [0, {self.input_dim}) (input_dim={self.input_dim}); "
                                      f"received ids from {int(x.min())} to {int(x.max())}.")
        return F.embedding(x, self.embeddings)


class Masking(Layer):
    """Marks the timesteps whose features all equal ``mask_value`` as padding: its output is the input
    with those steps zeroed, and its mask ``any(x != mask_value, axis=-1)`` (B, T) makes the recurrent
    layers after it skip them (Keras semantics: a skipped step keeps the state and repeats the previous
    output)."""

    _config_args = ("mask_value",)
    _mask_source = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise _checks.error(self, f"`mask_value` must be a number; received {mask_value!r}.")
        self.mask_value = float(mask_value)

    def compute_mask(self, inputs, mask=None):
        return (inputs != self.mask_value).any(dim=-1)

    def forward(self, x, training=None):
        keep = (x != self.mask_value).any(dim=-1, keepdim=True)
        return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


class RepeatVector(Layer):
    """(B, F) -> (B, n, F)."""

    _config_args = ("n",)

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = _checks.positive_int(self, "n", n)
        if self.n >= 1 << 62:
            raise _checks.error(self, f"argument `n` must be a positive integer below 2**62; received {n!r}.")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise _checks.error(self, f"expects a 2-D input (batch, features); received shape "
                                      f"{_checks.fmt_shape(input_shape)}.")
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, x, training=None):
        if x.dim() != 2:
            self.compute_output_shape(tuple(x.shape))
        return x.unsqueeze(1).expand(-1, self.n, -1)


class Activation(Layer):
    _config_args = ("activation",)

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _checks.resolved(self, "activation", activations.get, activation)

    def forward(self, x, training=None):
        try:
            return self.activation(x)
        except Exception as e:                  # noqa: BLE001 -- a user callable: name it
            if getattr(self.activation, "__module__", None) == activations.__name__:
                raise
            raise _checks.callable_failed(self, "activation", f"applied to a tensor of shape "
                                                              f"{_checks.fmt_shape(tuple(x.shape))}", e) from e


class Dropout(Layer):
    """Zeroes a fraction `rate` of inputs when training, scaling the rest by 1/(1-rate)."""

    _config_args = ("rate", "noise_shape", "seed")

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _checks.fraction(self, "rate", rate)
        self.noise_shape = None if noise_shape is None else _checks.shape(self, "noise_shape", noise_shape)
        self.seed = _checks.seed(self, seed)

    def forward(self, x, training=None):
        if not self._is_training(training) or self.rate == 0.0:
            return x
        if self.noise_shape is None:
            return F.dropout(x, self.rate, True)
        ns = self.noise_shape
        if len(ns) != x.dim() or any(d is not None and d != 1 and d != n for d, n in zip(ns, x.shape)):
            raise _checks.error(self, f"argument `noise_shape` {_checks.fmt_shape(ns)} must broadcast to the input "
                                      f"(same rank; on each axis the input's size, 1 or None); received an input of "
                                      f"shape {_checks.fmt_shape(tuple(x.shape))}.")
        shape = [x.shape[i] if d is None else d for i, d in enumerate(ns)]
        keep = 1.0 - self.rate
        return x * ((torch.rand(shape, device=x.device) < keep).to(x.dtype) / keep)


class Flatten(Layer):
    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else int(math.prod(rest))
        return (input_shape[0], n)

    def forward(self, x, training=None):
        return x.reshape(x.shape[0], -1)


class Reshape(Layer):
    _config_args = ("target_shape",)

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = _reshape_target(self, target_shape)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if n is not None and (n % known if -1 in self.target_shape else n != known):
            raise _checks.error(self, f"argument `target_shape` {_checks.fmt_shape(self.target_shape)} does not fit "
                                      f"an input of shape {_checks.fmt_shape(input_shape)} ({n} values per sample); "
                                      f"expected a shape holding {n} values.")
        free = None if n is None else n // known
        return (input_shape[0],) + tuple(free if d == -1 else d for d in self.target_shape)

    def forward(self, x, training=None):
        self.compute_output_shape(tuple(x.shape))
        return x.reshape((x.shape[0],) + self.target_shape)


class Permute(Layer):
    """Reorder the non-batch axes: ``dims`` is a permutation of 1..rank-1 (``Permute((2, 1))`` swaps
    time and features: (B, T, F) -> (B, F, T)). The output carries no mask (Keras)."""

    _config_args = ("dims",)

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
        ints = all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims)
        if not ints or sorted(dims) != list(range(1, len(dims) + 1)):
            raise _checks.error(self, f"argument `dims` must be a permutation of 1..{len(dims)} (the batch axis "
                                      f"0 is never moved); received {dims!r}.")
        self.dims = tuple(int(d) for d in dims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise _checks.error(self, f"expects a {len(self.dims) + 1}-D input for dims={self.dims}; received shape "
                                      f"{_checks.fmt_shape(input_shape)}.")
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def compute_mask(self, inputs, mask=None):
        return None

    def forward(self, x, training=None):
        if x.dim() != len(self.dims) + 1:
            self.compute_output_shape(tuple(x.shape))
        return x.permute((0,) + self.dims)


def _reshape_target(layer, target_shape):
    """Keras: a tuple of positive ints, with at most one -1 (inferred)."""
    dims = target_shape if isinstance(target_shape, (tuple, list)) else None
    if dims is None or any(isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1) for d in dims) \
            or list(dims).count(-1) > 1:
        exc = TypeError if dims is None else ValueError
        raise _checks.error(layer, f"argument `target_shape` must be a tuple of positive integers with at most one "
                                   f"-1 (an inferred axis); received {target_shape!r:.100}.", exc)
    return tuple(int(d) for d in dims)
