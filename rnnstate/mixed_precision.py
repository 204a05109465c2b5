"""Keras 3's dtype policies: ``rnnstate.mixed_precision.set_global_policy("mixed_bfloat16")``.

A policy names two dtypes: the *variable* dtype (what a layer's weights are held in) and the *compute*
dtype (what its inputs are cast to and its outputs are given in)::

    policy            variables   computation
    "float32"         float32     float32        (the default)
    "float64"         float64     float64
    "bfloat16"        bfloat16    bfloat16
    "float16"         float16     float16
    "mixed_bfloat16"  float32     bfloat16       matrix products in bfloat16, weights and their updates float32
    "mixed_float16"   float32     float16

A layer takes the global policy when it is created (``dtype=None``), or its own:
``LSTM(64, dtype="mixed_bfloat16")`` / ``dtype=Policy("float32")`` (Keras' advice for the last layer of
a mixed model, so that the softmax and the loss see float32). Under a mixed policy a layer casts its
floating inputs to the compute dtype, runs under ``torch.autocast`` with that dtype (weights are cast
for the matrix products, gradients flow to the float32 weights) and returns its outputs in the compute
dtype, as Keras does. Recurrent layers keep the recurrence's state and accumulation in float32 on their
mixed kernel (``layer.last_path`` names it) and return h, c in the compute dtype as Keras does.

Configs (``get_config``, ``.keras`` files) write a mixed policy as Keras 3 does,
``{"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}}``.
"""
from __future__ import annotations

import threading

import torch

from . import _checks

# name -> (variable dtype, compute dtype)
_POLICIES = {"float32": ("float32", "float32"), "float64": ("float64", "float64"),
             "float16": ("float16", "float16"), "bfloat16": ("bfloat16", "bfloat16"),
             "mixed_float16": ("float32", "float16"), "mixed_bfloat16": ("float32", "bfloat16")}
_TORCH = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _name_of(value, owner="DTypePolicy"):
    """A policy name from a name, a DTypePolicy (ours or Keras'), a Keras config dict or a torch dtype."""
    if isinstance(value, str):
        if value not in _POLICIES:
            raise _checks.policy_name(owner, value)
        return value
    if isinstance(value, torch.dtype):
        name = str(value).replace("torch.", "")
        if name not in _POLICIES:
            raise _checks.policy_name(owner, name)
        return name
    if isinstance(value, dict):
        from .serialization import _dtype_name
        return _name_of(_dtype_name(value), owner)
    name = getattr(value, "name", None)
    if type(value).__name__ in ("DTypePolicy", "FloatDTypePolicy") and isinstance(name, str):
        return _name_of(name, owner)
    raise _checks.policy_argument(owner, "dtype", value)


class DTypePolicy:
    """A dtype policy (Keras 3's ``keras.mixed_precision.DTypePolicy``): ``name``, ``compute_dtype``,
    ``variable_dtype`` (dtype names). ``DTypePolicy()`` / ``DTypePolicy(None)`` is the global policy."""

    def __init__(self, name=None):
        if name is None:
            name = global_policy().name
        if not isinstance(name, str):
            raise _checks.policy_name_type("DTypePolicy", name)
        self._name = _name_of(name)
        self._variable, self._compute = _POLICIES[self._name]

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        return self._compute

    @property
    def variable_dtype(self) -> str:
        return self._variable

    @property
    def is_mixed(self) -> bool:
        """Compute and variable dtypes differ."""
        return self._compute != self._variable

    @property
    def torch_compute_dtype(self) -> torch.dtype:
        return _TORCH[self._compute]

    @property
    def torch_variable_dtype(self) -> torch.dtype:
        return _TORCH[self._variable]

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and other._name == self._name

    def __hash__(self):
        return hash(self._name)

    def get_config(self) -> dict:
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


Policy = DTypePolicy

_GLOBAL = threading.local()        # per thread, like Keras' global state


def global_policy() -> DTypePolicy:
    """The policy layers created with ``dtype=None`` take (``"float32"`` unless set)."""
    p = getattr(_GLOBAL, "policy", None)
    return p if p is not None else _FLOAT32


def set_global_policy(policy) -> None:
    """Set the global policy: a name (``"mixed_bfloat16"``, ``"float32"``...) or a ``DTypePolicy``.
    Layers created afterwards with ``dtype=None`` take it; existing layers keep theirs."""
    if isinstance(policy, DTypePolicy):
        _GLOBAL.policy = policy
        return
    if not isinstance(policy, str) and type(policy).__name__ not in ("DTypePolicy", "FloatDTypePolicy"):
        raise _checks.policy_argument("set_global_policy", "policy", policy)
    _GLOBAL.policy = DTypePolicy(_name_of(policy, "set_global_policy"))


# Keras' other names for the same functions
dtype_policy = global_policy
set_dtype_policy = set_global_policy

_FLOAT32 = DTypePolicy("float32")


def serialize(policy: DTypePolicy) -> dict:
    """Keras 3's serialized form of a policy."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": policy.name}, "registered_name": None}


__all__ = ["DTypePolicy", "Policy", "global_policy", "set_global_policy", "dtype_policy", "set_dtype_policy"]


# ---- running a layer under its policy (called by Layer.__call__) ---------------------------------------------
class _State(threading.local):
    depth = 0          # > 0 inside a mixed layer's call (its autocast region)
    dtype = None       # that layer's compute dtype


_STATE = _State()


def active_dtype():
    """The compute dtype of the mixed layer whose call is running (None outside one): the recurrent kernels
    then run their mixed path (bf16 products, float32 state) rather than follow plain torch autocast."""
    return _STATE.dtype if _STATE.depth else None


def run_mixed(layer, call, args, kwargs):
    """`call(*args, **kwargs)` under torch.autocast with `layer`'s compute dtype; floating outputs are
    returned in it (Keras: a layer's outputs are in its compute dtype)."""
    dtype = _TORCH[layer._compute_name]
    x = args[0] if args else None
    device = x.device.type if isinstance(x, torch.Tensor) else "cpu"
    prev = _STATE.dtype
    _STATE.depth += 1
    _STATE.dtype = dtype
    try:
        with torch.autocast(device, dtype=dtype):
            out = call(*args, **kwargs)
    finally:
        _STATE.depth -= 1
        _STATE.dtype = prev
    return _cast(out, dtype)


def run_unmixed(call, args, kwargs):
    """A one-dtype layer (e.g. ``dtype="float32"``, Keras' advice for the last layer) called inside a mixed
    one: autocast off, so it computes in its own dtype."""
    x = args[0] if args else None
    device = x.device.type if isinstance(x, torch.Tensor) else "cpu"
    depth = _STATE.depth
    _STATE.depth = 0
    try:
        with torch.autocast(device, enabled=False):
            return call(*args, **kwargs)
    finally:
        _STATE.depth = depth


def _cast(out, dtype):
    if isinstance(out, torch.Tensor):
        return out.to(dtype) if out.is_floating_point() and out.dtype != dtype else out
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return type(out)(*[_cast(v, dtype) for v in out])
    if isinstance(out, (list, tuple)):
        return type(out)(_cast(v, dtype) for v in out)
    if isinstance(out, dict):
        return {k: _cast(v, dtype) for k, v in out.items()}
    return out
