"""Named states and named layer results.

States are NamedTuples (``LSTMState(h, c)``); layer results are NamedTuples whose field order is
exactly Keras' return order, so ``out, h, c = LSTM(4, return_state=True)(x)`` unpacks as in Keras
while ``res.h`` / ``res.c`` name the parts.

Return table (B batch, T timesteps, U units; ``output`` is (B, T, U) with ``return_sequences``,
else (B, U)):

====================================  ==========================================================
layer and flags                        returned, in order
====================================  ==========================================================
any, return_state=False                ``output`` (a single tensor, as in Keras)
LSTM, return_state=True                ``output, h, c``
GRU / SimpleRNN, return_state=True     ``output, h``
+ return_cell_sequence=True (LSTM)     ``..., c_seq`` (B, T, U), after the states
+ return_gate_sequences=True           LSTM ``..., gate_i, gate_f, gate_g, gate_o``; GRU
                                       ``..., gate_z, gate_r, gate_h`` each (B, T, U); last
Bidirectional(LSTM), return_state      ``output, forward_h, forward_c, backward_h, backward_c``
Bidirectional, merge_mode=None         ``forward_output, backward_output, *states``
====================================  ==========================================================
"""
from __future__ import annotations

from collections import namedtuple
from typing import NamedTuple

import torch


class LSTMState(NamedTuple):
    h: torch.Tensor
    c: torch.Tensor


class GRUState(NamedTuple):
    h: torch.Tensor


class SimpleRNNState(NamedTuple):
    h: torch.Tensor


class LSTMGates(NamedTuple):
    i: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    o: torch.Tensor


class GRUGates(NamedTuple):
    z: torch.Tensor
    r: torch.Tensor
    h: torch.Tensor


class _ResultMixin:
    """Extra views on a result: ``.state``, ``.gates``, ``.forward`` / ``.backward`` (Bidirectional)."""
    __slots__ = ()

    @property
    def gates(self):
        names = [f for f in self._fields if f.startswith("gate_")]
        if not names:
            raise AttributeError("this result holds no gate sequences; pass `return_gate_sequences=True`.")
        vals = [getattr(self, f) for f in names]
        return (LSTMGates if len(vals) == 4 else GRUGates)(*vals)

    def _direction(self, prefix):
        names = [f for f in self._fields if f.startswith(prefix) and f != prefix + "output"]
        if not names:
            raise AttributeError(f"this result holds no {prefix[:-1]} states; pass `return_state=True`.")
        vals = [getattr(self, f) for f in names]
        return LSTMState(*vals) if len(vals) == 2 else GRUState(*vals)

    @property
    def forward(self):
        return self._direction("forward_")

    @property
    def backward(self):
        return self._direction("backward_")

    @property
    def states(self):
        """Per-cell named states of ``RNN([cell_1, cell_2], return_state=True)``: ``res.states[0].h``."""
        cells = [f for f in self._fields if f.startswith("cell_")]
        if not cells:
            raise AttributeError("`states` lists per-cell states of stacked cells (RNN([cell, cell])); this "
                                 "result's fields are " + ", ".join(self._fields) + ".")
        return tuple(getattr(self, f) for f in cells)

    def __getattr__(self, name):
        """Only reached for a missing field: say which fields there are (``res.c`` on a GRU result)."""
        if name.startswith("__"):
            raise AttributeError(name)
        hint = ""
        if name in ("c", "c_seq") and "h" in self._fields:
            hint = (" A GRU or SimpleRNN has one state, h (its output); only an LSTM has a cell state c.")
        elif name in ("h", "c") and "h" not in self._fields:
            hint = " Pass `return_state=True` to get the final states."
        raise AttributeError(f"this result has no field `{name}`; its fields are {', '.join(self._fields)}.{hint}")

    @property
    def state(self):
        if "h" not in self._fields:
            raise AttributeError("this result holds no final state; pass `return_state=True`.")
        return LSTMState(self.h, self.c) if "c" in self._fields else GRUState(self.h)


_TYPES: dict[tuple, type] = {}


def result_type(fields: tuple) -> type:
    """A NamedTuple class for these field names (cached)."""
    fields = tuple(fields)
    t = _TYPES.get(fields)
    if t is None:
        base = namedtuple("RNNResult", fields)
        t = type("RNNResult", (_ResultMixin, base), {"__slots__": ()})
        _TYPES[fields] = t
    return t
