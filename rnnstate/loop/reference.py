"""THE time loop. Every fast path in ``rnnstate.loop.fused`` is tested equal to it.

Shapes: B batch, T timesteps, F features, U units, G = gates * U.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class LoopResult(NamedTuple):
    outputs: torch.Tensor          # (B, T, U) in processing order (reversed when go_backwards)
    state: tuple                   # final state (a NamedTuple of (B, U) tensors)
    state_seqs: tuple | None       # per state, (B, T, U), when asked
    gates: tuple | None            # per gate, (B, T, U), when asked


def time_loop(cell, x, state, *, go_backwards=False, rec_mask=None, collect_states=False,
              collect_gates=False, mask=None, training=False, zero_output_for_mask=False) -> LoopResult:
    """Run `cell` over `x` (B, T, F) from `state`.

    Equivalent to::

        xw = cell.project_input(x)                         # (B, T, G): one matmul for all steps
        for t in (reversed(range(T)) if go_backwards else range(T)):
            y_t, state = cell.recurrent_step(xw[:, t], state)
            outputs.append(y_t)

    `mask` (B, T) bool (Keras semantics): where False, the step keeps the previous state and repeats
    the previous output (zeros before the first valid step; always zeros with
    ``zero_output_for_mask=True``). Cells without ``recurrent_step`` (Keras-contract custom cells) are called as
    ``cell(x_t, states) -> (y_t, new_states)``.
    """
    T = x.shape[1]
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    fast = hasattr(cell, "recurrent_step")
    if fast:
        xs = cell.project_input(x)                                   # (B, T, G)
    else:
        xs = x
        state = list(state)
    outs, seqs, gates = [], [], []
    y_prev = None
    for t in order:
        if fast:
            if collect_gates:
                y, new, g = cell.recurrent_step(xs[:, t], state, rec_mask=rec_mask, return_gates=True)
                gates.append(g)
            else:
                y, new = cell.recurrent_step(xs[:, t], state, rec_mask=rec_mask)
        else:
            y, new = _call_keras_cell(cell, xs[:, t], state, training)
        if mask is not None:
            m = mask[:, t]                                           # (B,), broadcast over each tensor's dims
            new = type(new)(*[_where(m, n, o) for n, o in zip(new, state)]) if fast else \
                [_where(m, n, o) for n, o in zip(new, state)]
            if y_prev is None or zero_output_for_mask:
                y_prev = torch.zeros_like(y)
            y = _where(m, y, y_prev)
            y_prev = y
        state = new
        outs.append(y)
        if collect_states:
            seqs.append(tuple(new))
    outputs = torch.stack(outs, 1)                                   # (B, T, U)
    state_seqs = tuple(torch.stack(s, 1) for s in zip(*seqs)) if collect_states else None
    gate_seqs = tuple(torch.stack(g, 1) for g in zip(*gates)) if (collect_gates and gates and gates[0]) else None
    if not fast:
        state = tuple(state)
    return LoopResult(outputs, state, state_seqs, gate_seqs)


def _where(m, new, old):
    """`new` where the sample's step is valid (m (B,) bool), else `old`; any state rank ((B, U), (B, *S, F))."""
    return torch.where(m.view(-1, *([1] * (new.dim() - 1))), new, old)


def _call_keras_cell(cell, x_t, states, training):
    try:
        import inspect
        takes_training = "training" in inspect.signature(cell.call if hasattr(cell, "call") else cell).parameters
    except (TypeError, ValueError):
        takes_training = False
    fn = cell.call if hasattr(cell, "call") else cell     # Keras' contract; torch modules: forward via __call__
    y, new = fn(x_t, states, training=training) if takes_training else fn(x_t, states)
    if not isinstance(new, (list, tuple)):
        new = [new]
    return y, list(new)
