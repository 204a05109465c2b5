"""States as values: get / set / reset carried states, peek, stream a model step by step, and keep
one state per stream key.

* ``get_states(obj, as_list=False)`` / ``set_states(obj, states)`` / ``reset_states(obj, samples=None)``
  for a stateful layer, a Bidirectional or a whole model (also available as methods).
* ``peek(model)``: a context that puts every stateful layer's state back afterwards.
* ``Streamer(model)`` / ``model.stream()``: ``y_t, states = stream.step(x_t, states)`` at any batch size.
* ``StateStore(model, max_streams=...)``: ``store.step(keys, x_t)`` for interleaved streams; save/load.

The modules import lazily (``rnnstate.layers`` imports ``_context`` while it is itself importing).
"""
from __future__ import annotations

import importlib

_NAMES = {
    "Streamer": "streaming", "StateStore": "store",
    "get_states": "access", "set_states": "access", "reset_states": "access", "peek": "access",
    "flat_states": "access", "recurrent_layers": "access",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    mod = _NAMES.get(name)
    if mod is None:
        raise AttributeError(f"module 'rnnstate.states' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
