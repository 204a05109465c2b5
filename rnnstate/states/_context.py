"""The hook through which a run hands each recurrent layer its initial state and collects its final state.

A :class:`StateContext` is active for one thread at a time (``with ctx:``). While one is active,
``RNN.forward`` asks it for the layer's start state (``start``) and reports the state it ended in
(``finish``), and stateful layers leave their carried state alone. Nothing else in rnnstate knows
about streaming: the model runs its own graph, unchanged.

``ACTIVE`` counts active contexts in all threads, so a layer pays one integer test per call when
no context exists anywhere.
"""
from __future__ import annotations

import threading

ACTIVE = 0
_count_lock = threading.Lock()
_local = threading.local()


def current():
    """The context active in this thread, or None."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


class StateContext:
    """Give layers their start states and collect their final states.

    Args:
        states: ``{layer: state}``; a layer not in it starts as it would without a context (its
            ``initial_state`` argument, else zeros, or its carried state when ``use_stateful``).
        use_stateful: whether stateful layers without a given state start from their carried state.
        capture: also record each layer's input sequence and start state (for plots).
        strict: raise if a layer runs twice inside the context (its state would be ambiguous).
    """

    def __init__(self, states=None, *, use_stateful=False, capture=False, strict=True):
        self.states = dict(states or {})
        self.use_stateful = use_stateful
        self.capture = capture
        self.strict = strict
        self.final = {}        # layer -> final state (a NamedTuple)
        self.inputs = {}       # layer -> (input sequence (B, T, F), start state), when capture
        self.order = []        # layers in the order they ran

    def start(self, layer):
        return self.states.get(layer)

    def finish(self, layer, x, state0, final):
        if layer in self.final and self.strict:
            from .. import _checks
            raise _checks.layer_ran_twice(layer)
        if layer not in self.final:
            self.order.append(layer)
        self.final[layer] = final
        if self.capture:
            self.inputs[layer] = (x, state0)

    def __enter__(self):
        global ACTIVE
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        stack.append(self)
        with _count_lock:
            ACTIVE += 1
        return self

    def __exit__(self, *exc):
        global ACTIVE
        _local.stack.pop()
        with _count_lock:
            ACTIVE -= 1
        return False
