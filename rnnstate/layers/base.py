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
from .. import mixed_precision as _mp
from .._symbolic import Node, SymbolicTensor, has_symbolic, map_structure

_NAME_COUNTS: dict[str, int] = defaultdict(int)


def snake_case(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()     # as Keras: Conv1D -> conv1d


def unique_name(base: str) -> str:
    n = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if n == 0 else f"{base}_{n}"


# Keras' floating dtype names -> torch dtypes: a layer's `dtype` (variables and computation alike).
FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def to_tensor(x, dtype=torch.float32, device=None, owner=None, arg="inputs"):
    """numpy / python / torch -> torch tensor. Floats (and bools) become `dtype`; integers (and bools)
    become int64 when `dtype` is None (for Embedding). Complex numbers, strings, objects and ragged
    lists are refused with a TypeError naming `owner` and `arg` (never silently cast)."""
    if isinstance(x, torch.Tensor):
        t = x
        if t.is_complex():
            raise _checks.input_kind(owner or "rnnstate", arg, "c", tuple(t.shape))
    else:
        try:
            a = np.asarray(x)
        except ValueError:                       # numpy >= 1.24: a ragged nested list
            raise _checks.input_kind(owner or "rnnstate", arg, "O", (len(x),) if hasattr(x, "__len__") else ())
        if a.dtype.kind not in "biuf":
            raise _checks.input_kind(owner or "rnnstate", arg, a.dtype.kind, a.shape)
        if dtype is None and (a.dtype.kind == "b" or (a.dtype.kind == "u" and a.dtype.itemsize >= 2)):
            if a.dtype == np.uint64 and a.size and int(a.max()) > np.iinfo(np.int64).max:
                raise _checks.error(owner or "rnnstate", f"argument `{arg}` holds integers above "
                                                         f"{np.iinfo(np.int64).max}; received up to {int(a.max())}.")
            a = a.astype(np.int64)
        elif a.dtype.kind == "u" and a.dtype.itemsize > 1:         # torch has no full uint16/32/64 support
            a = a.astype(np.float64)
        t = torch.from_numpy(np.ascontiguousarray(a))
    if dtype is not None and t.dtype != dtype and (t.is_floating_point() or t.dtype == torch.bool or dtype.is_floating_point):
        t = t.to(dtype)
    elif dtype is None and t.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool, torch.uint16,
                                       torch.uint32):
        t = t.long()
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def to_mask(owner, mask, device=None, arg="mask"):
    """A (B, T) mask as a bool tensor: bools as they are, numbers as ``!= 0`` (Keras casts masks to bool).
    Python lists and int/float arrays are accepted; anything else is refused naming `owner` and `arg`."""
    if isinstance(mask, torch.Tensor):
        m = mask
        if m.is_complex():
            raise _checks.input_kind(owner, arg, "c", tuple(m.shape), "booleans (or 0/1 numbers)")
    else:
        try:
            a = np.asarray(mask)
        except ValueError:
            raise _checks.input_kind(owner, arg, "O", (), "booleans (or 0/1 numbers)")
        if a.dtype.kind not in "biuf":
            raise _checks.input_kind(owner, arg, a.dtype.kind, a.shape, "booleans (or 0/1 numbers)")
        m = torch.from_numpy(np.ascontiguousarray(a))
    if m.dtype != torch.bool:
        m = m != 0
    if device is not None and m.device != device:
        m = m.to(device)
    return m


def _numbers_only(x) -> bool:
    """A (nested) Python list/tuple holding only numbers: one array given as a list."""
    if isinstance(x, (list, tuple)):
        return len(x) > 0 and not hasattr(x, "_fields") and all(_numbers_only(v) for v in x)
    return isinstance(x, (int, float, complex, bool, np.number, np.bool_))


def init_weight(owner, arg, make, shape):
    """``make()`` (an initializer called for `shape`, Keras layout) as a float32 tensor, checked: a callable
    that raises, returns another shape or non-finite values is reported naming `owner` and `arg`."""
    shape = tuple(int(d) for d in shape)
    try:
        w = make()
        w = w.detach() if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w, dtype=np.float32))
        w = w.to(torch.float32)
    except Exception as e:                      # noqa: BLE001 -- a user callable: anything can happen
        raise _checks.callable_failed(owner, arg, f"initializing a weight of shape {_checks.fmt_shape(shape)}", e) \
            from e
    if tuple(w.shape) != shape:
        raise _checks.callable_result(owner, arg, "initial values", shape, f"shape {_checks.fmt_shape(tuple(w.shape))}")
    if w.numel() and w.device.type != "meta" and not bool(torch.isfinite(w).all()):   # (meta: the dry build)
        raise _checks.callable_result(owner, arg, "finite initial values", shape, "NaN or inf values")
    return w


def probe_activation(owner, arg, fn, units):
    """A user callable given as an activation must map (B, units) to (B, units); checked once at build on
    zeros (the registered activations are known to)."""
    from .. import activations
    if getattr(fn, "__module__", None) == activations.__name__:
        return
    try:
        with torch.no_grad():
            y = fn(torch.zeros(2, units))
    except Exception as e:                      # noqa: BLE001 -- a user callable
        raise _checks.callable_failed(owner, arg, f"applied to a (batch, {units}) tensor", e) from e
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (2, units):
        got = f"shape {_checks.fmt_shape(tuple(y.shape))}" if isinstance(y, torch.Tensor) else f"a {type(y).__name__}"
        raise _checks.callable_result(owner, arg, "outputs (an element-wise function)", (2, units), got)


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
        """The value as a numpy array in the weight's dtype (bfloat16, which numpy lacks: float32, exactly)."""
        t = self._get().detach().cpu()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a.astype(dtype) if dtype is not None else a

    def assign(self, value):
        value = _float_array(value)
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
        owner = getattr(self, "_owner", None) or type(self).__name__
        self.name = _checks.layer_name(owner, name) or unique_name(snake_case(type(self).__name__))
        self.built = False
        self._trainable = bool(trainable)
        policy = _mp.global_policy() if dtype is None else None
        self._dtype_explicit = dtype is not None or policy.name != "float32"
        self._set_policy(self._check_dtype(dtype) if dtype is not None else policy.name)
        self._inbound_nodes: list[Node] = []
        self._torch_mode: bool | None = None      # set by .train()/.eval(); None = Keras default (inference)
        batch_size = _checks.integer(self, "batch_size", batch_size, minimum=1, allow_none=True)
        if input_dim is not None and input_shape is None:
            input_shape = (_checks.integer(self, "input_dim", input_dim, minimum=1),)
        if batch_input_shape is not None:
            self._batch_input_shape = _checks.shape(self, "batch_input_shape", batch_input_shape, allow_int=False)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + _checks.shape(self, "input_shape", input_shape)
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

    # ---- dtype ---------------------------------------------------------------------------------------
    # One rule (Keras': layers cast their inputs to their dtype): floating inputs, numpy or torch, are
    # converted to the layer's compute dtype -- its floating parameters' dtype, or before it has any, its
    # `dtype` (Keras' argument; `.to(dtype)`/`.double()` on a layer or model set it too; a layer built on a
    # symbolic `Input(dtype=...)` without its own `dtype` takes the input's). Integer inputs of layers that
    # take ids (Embedding: ``_input_dtype = None``) stay integers.
    #
    # Mixed policies (rnnstate.mixed_precision, Keras' dtype="mixed_bfloat16"): the weights are held in the
    # variable dtype (`_dtype_name`), inputs are cast to the compute dtype (`_compute_name`, None when the
    # same), the call runs under torch.autocast with it and floating outputs come back in it.
    def _check_dtype(self, dtype) -> str:
        """A policy name from Keras' `dtype` argument (a name, a DTypePolicy or its config, a torch dtype)."""
        if isinstance(dtype, torch.dtype):
            dtype = dtype_name(dtype)
        if isinstance(dtype, dict):
            from ..serialization import _dtype_name
            dtype = _checks.resolved(self, "dtype", _dtype_name, dtype)
        if isinstance(dtype, str) and dtype in _mp._POLICIES:
            return dtype
        if isinstance(dtype, str) or not hasattr(dtype, "compute_dtype"):
            raise _checks.error(self, f"argument `dtype` must be one of {sorted(FLOAT_DTYPES)}, a mixed policy "
                                      f"('mixed_bfloat16', 'mixed_float16'), a `DTypePolicy` or the torch dtype; "
                                      f"received {dtype!r}.")
        return _mp._name_of(dtype, _checks.who(self))

    def _set_policy(self, name: str):
        variable, compute = _mp._POLICIES[name]
        self._dtype_name = variable
        self._compute_name = compute if compute != variable else None
        self.__dict__.pop("_dtype_cache", None)

    @property
    def dtype_policy(self):
        """Keras' ``layer.dtype_policy``: a ``rnnstate.mixed_precision.DTypePolicy``."""
        return _mp.DTypePolicy(self._policy_name())

    def _policy_name(self) -> str:
        if self._compute_name is None:
            return self._dtype_name
        return "mixed_" + self._compute_name

    @property
    def compute_dtype(self) -> str:
        """Keras' ``layer.compute_dtype``: the dtype name inputs are cast to and outputs are given in."""
        return dtype_name(self._compute_dtype())

    @property
    def variable_dtype(self) -> str:
        """Keras' ``layer.variable_dtype``: the dtype name the weights are held in."""
        return self._dtype_name


    def _compute_dtype(self) -> torch.dtype:
        dt = self.__dict__.get("_dtype_cache")
        if dt is None and self._compute_name is not None:
            dt = self.__dict__["_dtype_cache"] = FLOAT_DTYPES[self._compute_name]
        elif dt is None:
            dt = next((p.dtype for p in self.parameters() if p.is_floating_point()), None) \
                or FLOAT_DTYPES.get(self._dtype_name, torch.float32)
            self.__dict__["_dtype_cache"] = dt
        return dt

    def _set_float_dtype(self, dtype: torch.dtype):
        """This layer and the layers inside it compute in (and build their weights in) `dtype`."""
        for m in self.modules():
            if isinstance(m, Layer):
                m._own_float_dtype(dtype)

    def _own_float_dtype(self, dtype: torch.dtype):
        self._set_policy(dtype_name(dtype))      # .to(dtype) / .double(): one dtype, no mixed policy

    def to(self, *args, **kwargs):
        dtype = torch._C._nn._parse_to(*args, **kwargs)[1]
        if dtype is not None and dtype.is_floating_point:
            self._set_float_dtype(dtype)
        return super().to(*args, **kwargs)

    def double(self):
        return self.to(torch.float64)

    def float(self):
        return self.to(torch.float32)

    def half(self):
        return self.to(torch.float16)

    def bfloat16(self):
        return self.to(torch.bfloat16)

    # ---- build -----------------------------------------------------------------------------------
    def build(self, input_shape):
        """Create weights for `input_shape`. Layers without weights need not override it."""

    def _maybe_build(self, input_shape):
        if not self.built:
            self.__dict__.pop("_device_cache", None)
            self.__dict__.pop("_dtype_cache", None)
            # weights are ordinary trainable parameters even when the first call (the build) runs
            # under torch.inference_mode() (which would make them inference tensors) or no_grad
            with torch.inference_mode(False), torch.enable_grad():
                self.build(input_shape)
                dt = FLOAT_DTYPES.get(self._dtype_name, torch.float32)
                if dt != torch.float32:   # weights are initialised in float32, then held in the layer's dtype
                    nn.Module._apply(self, lambda t: t.to(dt) if t.is_floating_point() else t)
            self.__dict__.pop("_dtype_cache", None)
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
        if not self._applies_policy:
            return super().__call__(*args, **kwargs)
        if self._compute_name is None:
            if _mp._STATE.depth:              # a one-dtype layer inside a mixed one: autocast off
                return _mp.run_unmixed(super().__call__, args, kwargs)
            return super().__call__(*args, **kwargs)
        return _mp.run_mixed(self, super().__call__, args, kwargs)

    # Whether a mixed policy applies to the call (autocast, outputs in the compute dtype). Models hold layers
    # with policies of their own, and operation nodes (Cast, Equal...) have fixed output dtypes: False.
    _applies_policy = True

    _list_input = False      # True where the call takes a list of tensors (Concatenate, Add)

    def _convert_input(self, x, single=False):
        """One rule for numpy arrays and torch tensors: floating inputs become the layer's compute dtype
        (Keras casts inputs to the layer's dtype); ids for Embedding (``_input_dtype = None``) stay integers."""
        want = self._compute_dtype() if self._input_dtype is not None else None
        if isinstance(x, torch.Tensor):
            if x.is_complex():
                raise _checks.input_kind(self, "inputs", "c", tuple(x.shape))
            if want is None:
                if not x.is_floating_point() and x.dtype not in (torch.int64, torch.int32):
                    return x.long()             # ids (Embedding): bool, int8, uint8... as int64
                return x
            return x.to(want) if x.dtype != want else x
        if isinstance(x, (list, tuple)) and not isinstance(x, np.ndarray):
            if (single or not self._list_input) and _numbers_only(x):     # a nested list of numbers: one array
                return to_tensor(x, want, self._device(), owner=self)
            if not self._list_input and not hasattr(x, "_fields"):
                raise _checks.error(self, f"argument `inputs` must be one array or tensor; received a "
                                          f"{type(x).__name__} of {len(x)} entries. (Initial states go in "
                                          f"`initial_state=`; layers of several inputs are Concatenate, Add, "
                                          f"Model.)", TypeError)
            return type(x)(self._convert_input(v, single=self._list_input) for v in x) \
                if not hasattr(x, "_fields") else x
        return to_tensor(x, want, self._device(), owner=self)

    def _device(self):
        dev = self.__dict__.get("_device_cache", False)
        if dev is False:
            dev = next((p.device for p in self.parameters()), None)
            self.__dict__["_device_cache"] = dev
        return dev

    def _apply(self, fn, *args, **kwargs):      # .to() / .cuda() / .float(): the device may change
        for m in self.modules():
            m.__dict__.pop("_device_cache", None)
            m.__dict__.pop("_dtype_cache", None)
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
        dtype = self._adopt_input_dtype(inputs)
        self._maybe_build(shape)
        return SymbolicTensor(self.compute_output_shape(shape), self._output_dtype(dtype))

    def _adopt_input_dtype(self, inputs) -> torch.dtype:
        """Before the build: a layer without its own `dtype` takes a floating symbolic input's dtype
        (Input(dtype="float64") -> LSTM(4) computes in float64). Returns the input's dtype."""
        first = inputs[0] if isinstance(inputs, (list, tuple)) and inputs else inputs
        dtype = first.dtype if isinstance(first, SymbolicTensor) else torch.float32
        mixed_source = getattr(getattr(first, "layer", None), "_compute_name", None) is not None
        if not self.built and not self._dtype_explicit and dtype.is_floating_point and dtype != torch.float32 \
                and not mixed_source:       # a mixed layer's output: the next layer keeps its own policy (Keras)
            self._set_float_dtype(dtype)
        return dtype

    def _output_dtype(self, input_dtype):
        return self._compute_dtype()

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
            a = _float_array(v)
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
        cfg = {"name": self.name, "trainable": self.trainable,
               "dtype": self._dtype_name if self._compute_name is None else _mp.serialize(self.dtype_policy)}
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


def _float_array(v) -> np.ndarray:
    """A weight value as a numpy float array: float16/32/64 kept (copied into the weight's dtype on
    assignment), anything else (ints, bools, lists) as float32."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        v = v.float() if v.dtype == torch.bfloat16 else v
    a = np.asarray(v)
    return a if a.dtype.kind == "f" else a.astype(np.float32)
