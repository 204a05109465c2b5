"""Carried states of stateful layers and models: get, set, reset (all or some samples), peek.

Structures (B batch, U units; tensors are torch, detached copies):

=========================  =====================================================================
object                     ``get_states()`` returns
=========================  =====================================================================
RNN / LSTM / GRU layer     its state NamedTuple: ``LSTMState(h, c)``, ``GRUState(h)``, each (B, U)
Bidirectional              ``{"forward": LSTMState(h, c), "backward": LSTMState(h, c)}``
model                      ``{layer_name: <that layer's structure>}`` for its stateful layers, in
                           ``model.layers`` order
``as_list=True``           the same tensors in Keras' order: per layer its states (h, c),
                           Bidirectional forward then backward
=========================  =====================================================================

``set_states`` takes the same structures (or numpy arrays in them), or the Keras-ordered list.
A stateful layer's batch size is *declared* by the model input (``Input(batch_size=...)``,
``batch_input_shape``) or taken from its first call; a call or ``set_states`` with another batch
size raises, naming both. ``reset_states()`` zeroes the state (and forgets a batch size that was
only taken from a first call); ``reset_states(samples=done)`` zeroes only the samples where the
bool mask ``done`` is True (or the given indices): episode boundaries inside a batch.
"""
from __future__ import annotations

import collections
import contextlib

import numpy as np
import torch

from .. import _checks

__all__ = ["get_states", "set_states", "reset_states", "peek", "recurrent_layers", "flat_states"]


# ---- which layers ------------------------------------------------------------------------------------------
def _classes():
    from ..layers.rnn import RNN
    from ..layers.wrappers import Bidirectional
    return RNN, Bidirectional


def recurrent_layers(obj, stateful_only=False):
    """The recurrent layers (RNN and Bidirectional, not their insides) of a model, in ``model.layers``
    order (nested models included), or ``[obj]`` for a recurrent layer."""
    RNN, Bidi = _classes()
    if isinstance(obj, (RNN, Bidi)):
        found = [obj]
    elif hasattr(obj, "_all_layers"):
        found, seen = [], set()
        for l in obj._all_layers():
            if isinstance(l, (RNN, Bidi)) and id(l) not in seen:
                seen.add(id(l))
                found.append(l)
    else:
        found = []
    return [l for l in found if l.stateful] if stateful_only else found


def leaf_rnns(obj):
    """RNN layers that hold a state: Bidirectional contributes its forward and backward layers."""
    RNN, Bidi = _classes()
    out = []
    for l in recurrent_layers(obj):
        out.extend([l.forward_layer, l.backward_layer] if isinstance(l, Bidi) else [l])
    return out


# ---- one RNN layer -----------------------------------------------------------------------------------------
_TYPES: dict = {}


def state_type(layer):
    """The NamedTuple class of `layer`'s state (``LSTMState``...; made from the state names for Keras cells)."""
    st = getattr(layer.cell, "state_type", None)
    if st is not None:
        return st
    from ..layers.rnn import _state_names
    names = tuple(_state_names(layer.cell))
    t = _TYPES.get(names)
    if t is None:
        t = _TYPES[names] = collections.namedtuple("State", names)
    return t


def zero_state(layer, batch, device=None, dtype=torch.float32):
    return state_type(layer)(*[torch.zeros(s, device=device, dtype=dtype) for s in layer._state_shapes(batch)])


def to_state(layer, values, owner=None):
    """A NamedTuple / list / dict {name: value} / single array -> `layer`'s state NamedTuple, checked."""
    from ..layers.base import to_tensor
    owner = owner or layer
    st = state_type(layer)
    names = st._fields
    if isinstance(values, dict):
        missing = [n for n in names if n not in values]
        if missing or len(values) != len(names):
            raise _checks.state_count(owner, len(names), names, f"a dict with keys {list(values)}")
        values = [values[n] for n in names]
    elif isinstance(values, (list, tuple)):
        values = list(values)
    else:
        values = [values]
    if len(values) != len(names):
        raise _checks.state_count(owner, len(names), names, len(values))
    dev = layer._device()
    ts = []
    for v in values:
        if isinstance(v, (list, tuple, dict)):
            raise _checks.state_structure(owner, f"{len(names)} arrays ({', '.join(names)})",
                                          f"a nested {type(v).__name__}")
        try:
            t = to_tensor(v, layer._compute_dtype(), dev)
        except (TypeError, ValueError):
            t = None
        if t is None or not (t.is_floating_point() or t.dtype in (torch.int64, torch.int32, torch.bool)):
            raise _checks.state_structure(owner, f"{len(names)} float arrays ({', '.join(names)})",
                                          f"{type(v).__name__} {v!r:.60}")
        ts.append(t.to(layer._compute_dtype()))
    B = ts[0].shape[0] if ts[0].dim() >= 1 else None
    for name, t, want in zip(names, ts, layer._state_shapes(B)):
        if tuple(t.shape) != tuple(want):
            raise _checks.state_shape(owner, name, want, tuple(t.shape))
    return st(*ts)


def declare_batch(layer, batch):
    """Called with the batch size of a symbolic input: a stateful layer then runs at that batch size only."""
    if layer.stateful and batch is not None:
        layer.__dict__["_declared_batch"] = int(batch)


def _declared(layer):
    d = layer.__dict__.get("_declared_batch")
    if d is None:
        bis = getattr(layer, "_batch_input_shape", None)
        if bis is not None and bis[0] is not None:
            d = int(bis[0])
    return d


def known_batch(layer):
    d = _declared(layer)
    return d if d is not None else layer.__dict__.get("_first_batch")


def _validate_batch(layer, batch):
    """Raise if `layer` runs at another batch size than `batch`; changes nothing."""
    d = _declared(layer)
    if d is not None:
        if batch != d:
            raise _checks.stateful_batch(layer, d, batch, "declared")
        return
    first = layer.__dict__.get("_first_batch")
    if first is not None and batch != first:
        raise _checks.stateful_batch(layer, first, batch, "first call")


def _check_batch(layer, batch):
    _validate_batch(layer, batch)
    if _declared(layer) is None and layer.__dict__.get("_first_batch") is None:
        layer.__dict__["_first_batch"] = int(batch)


def carried_state(layer, batch, device, dtype):
    """A stateful layer's start state for a call on `batch` samples (checked), zeros when it holds none."""
    _check_batch(layer, batch)
    s = layer._states
    if s is None:
        return zero_state(layer, batch, device, dtype)
    if s[0].is_inference() and not torch.is_inference_mode_enabled():
        s = layer._states = type(s)(*[t.clone() for t in s])    # kept by predict; autograd may need it now
    if s[0].dtype != dtype:                                       # carried across model.to(dtype)
        s = layer._states = type(s)(*[t.to(dtype) for t in s])
    return s


def keep_state(layer, final):
    """Store `final` as the carried state, detached (truncated BPTT: the next call starts a new graph) and
    copied (an in-place change to a returned h can't reach it)."""
    layer._states = state_type(layer)(*[s.detach().clone() for s in final])


def _rnn_get(layer):
    if not layer.stateful:
        raise _checks.not_stateful(layer, "get_states")
    s = layer._states
    if s is None:
        B = known_batch(layer)
        if B is None:
            raise _checks.no_state_yet(layer)
        return zero_state(layer, B, layer._device())
    return state_type(layer)(*[t.detach().clone() for t in s])


def _rnn_prepare(layer, states):
    """Checked new states for `layer` (no change made): ``[(layer, state)]``."""
    if not layer.stateful:
        raise _checks.not_stateful(layer, "set_states")
    st = to_state(layer, states)
    _validate_batch(layer, st[0].shape[0])
    return [(layer, st)]


def _commit(prepared):
    """Assign prepared states; cannot fail (every check ran in `_rnn_prepare`)."""
    for layer, st in prepared:
        _check_batch(layer, st[0].shape[0])
        layer._states = st


def _rnn_set(layer, states):
    _commit(_rnn_prepare(layer, states))


def sample_mask(layer, samples, batch):
    """`samples` (bool mask (B,), 0/1 floats, or indices) -> bool tensor (B,) True where to reset."""
    a = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if a.dtype == bool or (a.dtype.kind == "f" and a.ndim == 1 and a.shape[0] == batch and
                           np.isin(a, (0.0, 1.0)).all()):
        if a.ndim != 1 or a.shape[0] != batch:
            raise _checks.reset_samples(layer, samples, batch)
        return torch.from_numpy(a.astype(bool))
    if a.dtype.kind in "iu" and a.ndim <= 1:
        idx = a.reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= batch):
            raise _checks.reset_samples(layer, samples, batch)
        m = np.zeros(batch, bool)
        m[idx] = True
        return torch.from_numpy(m)
    raise _checks.reset_samples(layer, samples, batch)


def _rnn_reset(layer, states=None, samples=None):
    if not layer.stateful:
        raise _checks.not_stateful(layer, "reset_states")
    if states is not None and samples is not None:
        raise _checks.states_and_samples(layer)
    if states is not None:
        _rnn_set(layer, states)
        return
    if samples is None:
        layer._states = None
        layer.__dict__.pop("_first_batch", None)
        return
    B = layer._states[0].shape[0] if layer._states is not None else known_batch(layer)
    if B is None:
        raise _checks.no_state_yet(layer)
    m = sample_mask(layer, samples, B)
    if layer._states is None:           # all zero already; the mask was still checked
        return
    keep = (~m).to(layer._states[0].device)                                   # (B,)
    layer._states = type(layer._states)(*[torch.where(keep.view(-1, *([1] * (s.dim() - 1))), s, torch.zeros_like(s))
                                          for s in layer._states])


# ---- Bidirectional -----------------------------------------------------------------------------------------
def _bidi_split(layer, states):
    n = len(layer.forward_layer.state_size)
    if isinstance(states, dict):
        if set(states) != {"forward", "backward"}:
            raise _checks.state_structure(layer, "a dict {'forward': state, 'backward': state}",
                                          f"a dict with keys {list(states)}")
        return states["forward"], states["backward"]
    if isinstance(states, (list, tuple)) and not hasattr(states, "_fields"):
        states = list(states)
        if len(states) == 2 and all(isinstance(s, (list, tuple, dict)) for s in states):
            return states[0], states[1]
        if len(states) == 2 * n:
            return states[:n], states[n:]
    names = list(state_type(layer.forward_layer)._fields)
    raise _checks.state_count(layer, 2 * n, [f"forward_{s}" for s in names] + [f"backward_{s}" for s in names],
                              len(states) if isinstance(states, (list, tuple)) else type(states).__name__)


# ---- public: layers and models -----------------------------------------------------------------------------
def get_states(obj, as_list=False):
    """The carried states of a stateful layer, Bidirectional or model (see the module table)."""
    RNN, Bidi = _classes()
    if isinstance(obj, RNN):
        s = _rnn_get(obj)
    elif isinstance(obj, Bidi):
        if not obj.stateful:
            raise _checks.not_stateful(obj, "get_states")
        s = {"forward": _rnn_get(obj.forward_layer), "backward": _rnn_get(obj.backward_layer)}
    else:
        layers = recurrent_layers(obj, stateful_only=True)
        if not layers:
            raise _checks.no_stateful_layers(obj, "get_states")
        s = {l.name: get_states(l) for l in layers}
    return flat_states(s) if as_list else s


def set_states(obj, states):
    """Set carried states from the structure `get_states` returns, or from the Keras-ordered list.
    Atomic: every layer's value is checked before any layer changes."""
    _commit(_prepare(obj, states))


def _prepare(obj, states):
    RNN, Bidi = _classes()
    if isinstance(obj, RNN):
        return _rnn_prepare(obj, states)
    if isinstance(obj, Bidi):
        if not obj.stateful:
            raise _checks.not_stateful(obj, "set_states")
        fw, bw = _bidi_split(obj, states)
        return _rnn_prepare(obj.forward_layer, fw) + _rnn_prepare(obj.backward_layer, bw)
    layers = recurrent_layers(obj, stateful_only=True)
    if not layers:
        raise _checks.no_stateful_layers(obj, "set_states")
    out = []
    for layer, value in _by_layer(obj, layers, states):
        out += _prepare(layer, value)
    return out


def _count(layer):
    RNN, Bidi = _classes()
    return 2 * len(layer.forward_layer.state_size) if isinstance(layer, Bidi) else len(layer.state_size)


def _by_layer(owner, layers, states):
    """A {name: structure} dict or a Keras-ordered list -> [(layer, that layer's structure)]."""
    if isinstance(states, dict):
        known = [l.name for l in layers]
        unknown = [k for k in states if k not in known]
        if unknown:
            raise _checks.state_keys(owner, unknown, known)
        return [(l, states[l.name]) for l in layers if l.name in states]
    if not isinstance(states, (list, tuple)):
        raise _checks.state_structure(owner, "a dict {layer_name: states} or a list in Keras' order",
                                      type(states).__name__)
    states = list(states)
    if len(states) == len(layers) and all(isinstance(s, (list, tuple, dict)) for s in states):
        return list(zip(layers, states))                  # one structure per layer
    want = sum(_count(l) for l in layers)
    if len(states) != want:
        names = [f"{l.name}.{f}" for l in layers for f in _flat_names(l)]
        raise _checks.state_count(owner, want, names, len(states))
    out, i = [], 0
    for l in layers:
        n = _count(l)
        out.append((l, states[i:i + n]))
        i += n
    return out


def _flat_names(layer):
    RNN, Bidi = _classes()
    if isinstance(layer, Bidi):
        f = state_type(layer.forward_layer)._fields
        return [f"forward_{n}" for n in f] + [f"backward_{n}" for n in f]
    return list(state_type(layer)._fields)


def reset_states(obj, states=None, samples=None):
    """Zero the carried states (all samples, or only `samples`), or set them to `states`."""
    RNN, Bidi = _classes()
    if isinstance(obj, RNN):
        _rnn_reset(obj, states, samples)
        return
    if isinstance(obj, Bidi):
        if not obj.stateful:
            raise _checks.not_stateful(obj, "reset_states")
        if states is not None and samples is not None:
            raise _checks.states_and_samples(obj)
        if states is not None:
            set_states(obj, states)         # atomic over both directions
            return
        _rnn_reset(obj.forward_layer, None, samples)
        _rnn_reset(obj.backward_layer, None, samples)
        return
    layers = recurrent_layers(obj, stateful_only=True)
    if not layers:
        raise _checks.no_stateful_layers(obj, "reset_states")
    if states is not None:
        set_states(obj, states)
        return
    if samples is not None:                 # check the mask against every layer before zeroing any
        for leaf in leaf_rnns(obj):
            if leaf.stateful:
                B = leaf._states[0].shape[0] if leaf._states is not None else known_batch(leaf)
                if B is None:
                    raise _checks.no_state_yet(leaf)
                sample_mask(leaf, samples, B)
    for l in layers:
        reset_states(l, samples=samples)


def flat_states(structure):
    """A states structure -> the list of its tensors in Keras' order."""
    if isinstance(structure, dict):
        return [t for v in structure.values() for t in flat_states(v)]
    if isinstance(structure, (list, tuple)):
        return [t for v in structure for t in flat_states(v)]
    return [structure]


@contextlib.contextmanager
def peek(obj):
    """``with peek(model): ...`` runs anything and then puts every stateful layer's state back."""
    saved = [(l, l._states, l.__dict__.get("_first_batch")) for l in leaf_rnns(obj) if l.stateful]
    try:
        yield
    finally:
        for l, s, first in saved:
            l._states = s
            if first is None:
                l.__dict__.pop("_first_batch", None)
            else:
                l.__dict__["_first_batch"] = first
