"""`StackedCells`: several cells run one after another inside each timestep (``RNN([cell_1, cell_2])``).

At step t, cell 1 reads x_t and cell k reads cell k-1's output; the layer outputs the last cell's
output. Equivalent to stacking ``RNN(cell_k, return_sequences=True)`` layers, in one time loop::

    for t in range(T):
        y = x[:, t]
        for k, cell in enumerate(cells):
            y, state_k[k] = cell.step(y, state_k[k])

Cells may be rnnstate cells (``LSTMCell``...), cells following rnnstate's protocol
(``step(x_t, state)``), or Keras-contract cells (``call(inputs, states) -> (output, new_states)``).

State: one flat NamedTuple of every cell's states in order, fields suffixed by the cell index:
``StackedState(h_0, c_0, h_1)`` for ``[LSTMCell, GRUCell]`` (what stateful layers carry and streams
pass). ``RNN([...], return_state=True)`` returns them nested per cell, as Keras 3:
``output, (h_0, c_0), h_1`` (a cell with one state gives that tensor, one with several its named
state: ``res.cell_0.c``, ``res.states[0].h``);
``initial_state`` takes either the flat list or Keras' nested one. Weights: each cell's, in order (as
Keras' ``StackedRNNCells``). Cell dropout is not supported here (it is applied by the RNN layer around
a single cell); use stacked ``LSTM`` layers for it.
"""
from __future__ import annotations

import collections

import torch

from .. import _checks
from ..cells.base import Cell
from .base import Layer

_TYPES: dict = {}


def _names(cell):
    from .rnn import _state_names
    return tuple(_state_names(cell))


def _sizes(cell):
    s = cell.state_size
    return list(s) if isinstance(s, (list, tuple)) else [s]


def _out_size(cell):
    return getattr(cell, "output_size", None) or _sizes(cell)[0]


class StackedCells(Cell):
    """A list of cells applied in sequence within each timestep (Keras' ``StackedRNNCells``)."""

    def __init__(self, cells, _owner=None, **kwargs):
        self._owner = _owner            # RNN([cells]): errors speak as that layer, about its `cell` argument
        super().__init__(**kwargs)
        arg = "cell" if _owner else "cells"
        cells = list(cells)
        if not cells:
            raise _checks.error(self, f"argument `{arg}` needs at least one cell; received an empty list.")
        for i, c in enumerate(cells):
            if isinstance(c, type) or not hasattr(c, "state_size") or not (
                    hasattr(c, "step") or hasattr(c, "call") or callable(c)):
                raise _checks.error(self, f"argument `{arg}` entry {i} must be a cell (with `state_size` and "
                                          f"`step(x_t, state)` or `call(inputs, states)`); received "
                                          f"{type(c).__name__}.", TypeError)
            if getattr(c, "dropout", 0.0) or getattr(c, "recurrent_dropout", 0.0):
                raise _checks.error(self, f"cell {i} has dropout={getattr(c, 'dropout', 0.0)}, recurrent_dropout="
                                          f"{getattr(c, 'recurrent_dropout', 0.0)}; dropout is not supported inside "
                                          f"stacked cells yet. Stack LSTM/GRU layers (`return_sequences=True`) "
                                          f"instead.", NotImplementedError)
            if isinstance(c, torch.nn.Module):
                self.add_module(f"cell_{i}", c)
        self.cells = cells
        fields = tuple(f"{n}_{i}" for i, c in enumerate(cells) for n in _names(c))
        t = _TYPES.get(fields)
        if t is None:
            t = _TYPES[fields] = collections.namedtuple("StackedState", fields)
        self.state_type = t
        self.state_size = [n for c in cells for n in _sizes(c)]
        self.output_size = _out_size(cells[-1])
        self.units = self.output_size
        self._owner = None
        self._counts = [len(_sizes(c)) for c in cells]
        self._first_fast = hasattr(cells[0], "recurrent_step") and hasattr(cells[0], "project_input")

    def _sublayers(self):
        return [c for c in self.cells if isinstance(c, Layer)]

    def build(self, input_shape):
        B, dim = input_shape[0], input_shape[-1]
        for c in self.cells:
            if isinstance(c, Layer):
                c._maybe_build((B, dim))
            elif hasattr(c, "build") and not getattr(c, "built", False):
                c.build((B, dim))
            dim = _out_size(c)

    def initial_state(self, batch_size, device=None, dtype=torch.float32):
        parts = []
        for c in self.cells:
            if hasattr(c, "initial_state"):
                parts.extend(c.initial_state(batch_size, device=device, dtype=dtype))
            else:
                parts.extend(torch.zeros(batch_size, n, device=device, dtype=dtype) for n in _sizes(c))
        return self.state_type(*parts)

    def nest_states(self, state):
        """Flat states -> one entry per cell, as Keras nests the states of ``RNN([cell_1, cell_2],
        return_state=True)``: a cell with one state gives that tensor, one with several its named state
        (``LSTMState(h, c)``; a plain list for cells without a state type)."""
        return [part[0] if len(part) == 1 else
                (c.state_type(*part) if getattr(c, "state_type", None) is not None else list(part))
                for c, part in zip(self.cells, self._split(state))]

    def _split(self, state):
        out, i = [], 0
        for n in self._counts:
            out.append(list(state[i:i + n]))
            i += n
        return out

    # ---- the time loop's fast-path protocol: x projection hoisted for the first cell --------------------------
    def project_input(self, x):
        return self.cells[0].project_input(x) if self._first_fast else x

    def recurrent_step(self, xw_t, state, rec_mask=None, return_gates=False):
        from ..loop.reference import _call_keras_cell
        y, new = xw_t, []
        for k, (c, st) in enumerate(zip(self.cells, self._split(state))):
            if k == 0 and self._first_fast:
                y, ns = c.recurrent_step(y, c.state_type(*st))
            elif hasattr(c, "step") and hasattr(c, "state_type"):
                y, ns = c.step(y, c.state_type(*st))
            else:
                y, ns = _call_keras_cell(c, y, st, False)
            new.extend(ns)
        new = self.state_type(*new)
        if return_gates:
            return y, new, ()
        return y, new

    def step(self, x_t, state):
        return self.recurrent_step(self.project_input(x_t), state)

    # ---- config -------------------------------------------------------------------------------------------------
    def get_config(self):
        cfg = super().get_config()
        cfg["cells"] = [{"class_name": type(c).__name__, "config": c.get_config()} for c in self.cells]
        return cfg

    @classmethod
    def from_config(cls, config):
        from .. import serialization
        config = dict(config)
        config["cells"] = [serialization.deserialize_layer(c) for c in config["cells"]]
        return cls(**config)
