"""`Layer`: a torch.nn.Module with Keras' lazy build, symbolic calls, names and weight lists.

A layer called on numpy arrays or torch tensors runs eagerly and returns torch tensors; called on
symbolic tensors (from ``rnnstate.Input``) it records a graph node and returns symbolic tensors.
Weights are exposed in Keras' layouts (``get_weights``/``set_weights``), whatever layout the
parameters are stored in (that conversion is each layer's ``_keras_weights``).
"""
from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import torch
from torch import nn

from .. import _checks
from .._symbolic import Node, SymbolicTensor, has_symbolic, map_structure

_NAME_COUNTS: dict[str, int] = defaultdict(int)


def snake_case(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def unique_name(base: str) -> str:
    n = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if n == 0 else f"{base}_{n}"


def to_tensor(x, dtype=torch.float32, device=None):
    """numpy / python / torch -> torch tensor. Floats (and bools) become `dtype`; integers stay int64
    when `dtype` is None (for Embedding)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        a = np.asarray(x)
        if a.dtype == object:
            raise TypeError(f"cannot convert an object array of shape {a.shape} to a tensor")
        t = torch.from_numpy(np.ascontiguousarray(a))
    if dtype is not None and t.dtype != dtype and (t.is_floating_point() or t.dtype == torch.bool or dtype.is_floating_point):
        t = t.to(dtype)
    elif dtype is None and t.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        t = t.long()
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def shape_of(x):
    """Static shape of a tensor/array/symbolic tensor, or a list of shapes for a list of them."""
    if isinstance(x, (list, tuple)) and not hasattr(x, "shape"):
        return [shape_of(v) for v in x]
    return tuple(x.shape)


class WeightRef:
    """A view of one weight in Keras layout: ``.name``, ``.shape``, ``.numpy()``, ``.assign(value)``.

    The underlying parameter may be stored in another layout (e.g. torch's gate order); `get` and
    `put` translate.
    """

    def __init__(self, layer, name, shape, get, put, trainable=True):
        self.layer, self.name, self.shape = layer, name, tuple(shape)
        self._get, self._put, self.trainable = get, put, trainable

    @property
    def path(self):
        return f"{self.layer.name}/{self.name}"

    def value(self) -> torch.Tensor:
        return self._get()

    def numpy(self) -> np.ndarray:
        return self._get().detach().cpu().numpy().copy()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a.astype(dtype) if dtype is not None else a

    def assign(self, value):
        value = np.asarray(value, dtype=np.float32)
        if tuple(value.shape) != self.shape:
            raise _checks.error(self.layer, f"weight `{self.name}` has shape {_checks.fmt_shape(self.shape)}; "
                                            f"received a value of shape {_checks.fmt_shape(value.shape)}.")
        with torch.no_grad():
            self._put(torch.from_numpy(np.ascontiguousarray(value)))

    def __repr__(self):
        return f"<Weight path={self.path} shape={self.shape}>"


class Layer(nn.Module):
    """Base of every rnnstate layer and model.

    Subclasses set ``_config_args`` (constructor arguments that `get_config` returns), implement
    ``build(input_shape)`` (create weights), ``forward(...)`` (eager torch computation),
    ``compute_output_shape(input_shape)`` and, if they hold weights, ``_keras_weights()``.
    """

    _config_args: tuple = ()
    _input_dtype = torch.float32   # eager numpy inputs are cast to this (None: keep integers)

    def __init__(self, *, name=None, trainable=True, dtype=None, input_shape=None, batch_input_shape=None,
                 batch_size=None, input_dim=None, **kwargs):
        super().__init__()
        if kwargs:
            raise _checks.unknown_kwargs(getattr(self, "_owner", None) or type(self).__name__, kwargs)
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.built = False
        self._trainable = bool(trainable)
        self._dtype_name = dtype or "float32"
        self._inbound_nodes: list[Node] = []
        self._torch_mode: bool | None = None      # set by .train()/.eval(); None = Keras default (inference)
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        else:
            self._batch_input_shape = None

    # ---- torch / Keras training flag -------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, Layer):
                m._torch_mode = mode
        return self

    def _is_training(self, training):
        if training is not None:
            return bool(training)
        return bool(self._torch_mode)

    # ---- build -----------------------------------------------------------------------------------
    def build(self, input_shape):
        """Create weights for `input_shape`. Layers without weights need not override it."""

    def _maybe_build(self, input_shape):
        if not self.built:
            self.__dict__.pop("_device_cache", None)
            self.build(input_shape)
            self.built = True
            self._build_shape = input_shape
            if not self._trainable:
                self.trainable = False

    # ---- calling -----------------------------------------------------------------------------------
    def __prepare_scriptable__(self):
        """torch.jit.script calls this first: rnnstate layers are Python (lazy build, Keras' call
        conventions, kernel choice), which TorchScript's compiler can't read; refuse with what works."""
        raise _checks.error(self, "can't be compiled by torch.jit.script (TorchScript can't read rnnstate's Python "
                                  "layers). Use torch.compile or torch.export (the compiled kernels are registered "
                                  "ops), or torch.jit.trace", TypeError)

    def __call__(self, *args, **kwargs):
        if has_symbolic(args) or has_symbolic(kwargs):
            return self._symbolic_call(args, kwargs)
        if args:
            args = (self._convert_input(args[0]),) + args[1:]
            if not self.built:
                self._maybe_build(shape_of(args[0]))
        return super().__call__(*args, **kwargs)

    def _convert_input(self, x):
        if isinstance(x, torch.Tensor):
            if self._input_dtype is not None and x.dtype != self._input_dtype and self._input_dtype.is_floating_point \
                    and not x.is_floating_point():
                return x.to(self._input_dtype)
            return x
        if isinstance(x, (list, tuple)) and not isinstance(x, np.ndarray):
            return type(x)(self._convert_input(v) for v in x) if not hasattr(x, "_fields") else x
        return to_tensor(x, self._input_dtype, self._device())

    def _device(self):
        dev = self.__dict__.get("_device_cache", False)
        if dev is False:
            dev = next((p.device for p in self.parameters()), None)
            self.__dict__["_device_cache"] = dev
        return dev

    def _apply(self, fn, *args, **kwargs):      # .to() / .cuda() / .float(): the device may change
        for m in self.modules():
            m.__dict__.pop("_device_cache", None)
        return super()._apply(fn, *args, **kwargs)

    # ---- masking (Keras 3 semantics; run by Model._run_graph) ---------------------------------------
    _mask_source = False      # True where the layer makes a mask (Embedding(mask_zero=True), Masking)
    _consumes_mask = False    # True where forward() takes `mask=` (recurrent layers and their wrappers)

    def compute_mask(self, inputs, mask=None):
        """The mask of this layer's output(s), given its input(s) and their mask: as in Keras, the input
        mask passes through unchanged unless a layer says otherwise."""
        return mask

    def _symbolic_call(self, args, kwargs):
        spec = self.compute_output_spec(*args, **kwargs)
        node = Node(self, args, kwargs, spec)
        self._inbound_nodes.append(node)
        return spec

    def compute_output_spec(self, inputs, *args, **kwargs):
        shape = shape_of(inputs)
        self._maybe_build(shape)
        dtype = inputs.dtype if isinstance(inputs, SymbolicTensor) else torch.float32
        return SymbolicTensor(self.compute_output_shape(shape), self._output_dtype(dtype))

    def _output_dtype(self, input_dtype):
        return torch.float32

    def compute_output_shape(self, input_shape):
        return input_shape

    # ---- graph introspection (Keras' layer.input / layer.output) -----------------------------------
    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"{_checks.who(self)} has never been called on a symbolic input, so it has no "
                                 f"`{what}`; call it on an `Input(...)` tensor first.")
        return self._inbound_nodes[0]

    @property
    def output(self):
        return self._first_node("output").structure

    @property
    def input(self):
        node = self._first_node("input")
        return node.args[0] if node.args else None

    # ---- weights -------------------------------------------------------------------------------------
    def _keras_weights(self) -> list[WeightRef]:
        """This layer's own weights in Keras order (not those of sublayers)."""
        return []

    def _sublayers(self) -> list["Layer"]:
        return []

    @property
    def weights(self) -> list[WeightRef]:
        out, seen = [], set()
        self._collect_weights(out, seen)
        return out

    def _collect_weights(self, out, seen):
        if id(self) in seen:
            return
        seen.add(id(self))
        out.extend(self._keras_weights())
        for sub in self._sublayers():
            sub._collect_weights(out, seen)

    # ---- regularization ---------------------------------------------------------------------------
    def _own_penalties(self) -> list:
        """Penalties of this layer's own weights (not sublayers'); see ``rnnstate.regularizers``."""
        return []

    def _regularization_losses(self) -> list:
        """Every penalty of this layer and its sublayers (each layer once, Keras' order): what ``fit``
        adds to the loss."""
        out, seen = [], set()
        self._collect_penalties(out, seen)
        return out

    def _collect_penalties(self, out, seen):
        if id(self) in seen:
            return
        seen.add(id(self))
        out.extend(self._own_penalties())
        for sub in self._sublayers():
            sub._collect_penalties(out, seen)

    @property
    def losses(self) -> list:
        """Keras' ``layer.losses`` / ``model.losses``: the current regularization penalties (scalars)."""
        return self._regularization_losses()

    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.trainable and self.trainable]

    @property
    def non_trainable_weights(self):
        return [w for w in self.weights if not (w.trainable and self.trainable)]

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for p in self.parameters():
            p.requires_grad_(self._trainable)

    def get_weights(self) -> list[np.ndarray]:
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            names = ", ".join(f"{w.name} {_checks.fmt_shape(w.shape)}" for w in own)
            raise _checks.error(self, f"`set_weights` expects a list of {len(own)} arrays ({names}); "
                                      f"received {len(weights)}." +
                                (" The layer is not built yet: call it on an input first." if not self.built else ""))
        arrays = []
        for i, (w, v) in enumerate(zip(own, weights)):
            a = np.asarray(v, dtype=np.float32)
            if tuple(a.shape) != w.shape:
                raise _checks.error(self, f"`set_weights` entry {i} (`{w.name}`) must have shape "
                                          f"{_checks.fmt_shape(w.shape)}; received shape {_checks.fmt_shape(a.shape)}.")
            arrays.append(a)
        for w, a in zip(own, arrays):   # validated all first: nothing is half-assigned
            w.assign(a)

    def count_params(self) -> int:
        if not self.built:
            raise _checks.error(self, "`count_params` needs the layer to be built; call it on an input "
                                      "(or give `input_shape`) first.")
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    # ---- config --------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": self._dtype_name}
        for k in self._config_args:
            cfg[k] = _serialize_value(getattr(self, k))
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def extra_repr(self):
        return f"name={self.name!r}"


def _serialize_value(v):
    from .. import activations, initializers, regularizers
    if isinstance(v, regularizers.Regularizer):
        return regularizers.serialize(v)
    if callable(v) and getattr(v, "__module__", "").endswith("activations"):
        return activations.serialize(v)
    if hasattr(v, "get_config") and type(v).__module__.endswith("initializers"):
        return initializers.serialize(v)
    if isinstance(v, tuple):
        return list(v)
    return v
