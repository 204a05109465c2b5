"""Right-padded masks on the fused kernels. No semantics of its own: the same numbers as
``rnnstate.loop.reference.time_loop`` with the mask (tested).

Keras' mask semantics: a masked step keeps the state and repeats the previous output (zeros before the
first valid step; always zeros with ``zero_output_for_mask``). For a right-padded mask, where row b is
valid for its first ``len_b`` steps, that is:

* forward: run the first ``len_b`` steps; the final state is the state after them (the initial state
  when ``len_b = 0``); outputs at ``t >= len_b`` repeat the output at ``len_b - 1`` (or are zeros);
* ``go_backwards``: the row is read from its end, so its first ``T - len_b`` processed steps are
  masked (outputs zeros, state unchanged) and then come the valid steps in reverse order: the packed
  run gets each row's valid part reversed, and its outputs land at processed positions
  ``T - len_b .. T - 1``.

Two ways to get there (``run``):

* full run, then select: the unmasked kernel over all T steps gives exactly the masked outputs at
  ``t < len_b`` (padding only comes after them); the final h is the output at ``len_b - 1`` and, for
  the LSTM, the final c comes from the compiled kernel's c sequence. Padded steps are computed and
  thrown away, at the fused kernel's speed (oneDNN trains packed sequences on a slower path);
* packed sequences (``torch.nn.utils.rnn``), when the LSTM's final c is needed and the compiled
  kernel can't give it (training, GPU): only the valid steps are run.

Other masks (left padding, holes) run on the reference loop.

Equivalent loop (forward, one row)::

    for t in range(len_b):
        y[t], state = cell.step(x[t], state)
    y[len_b:] = y[len_b - 1]            # zeros with zero_output_for_mask
"""
from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import fused


def right_padded_lengths(mask):
    """The lengths (B,) int64 when every row of `mask` (B, T) bool is valid steps then padding; else None."""
    if mask.shape[1] > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        return None
    return mask.sum(1)


def run(cell, x, state, lengths, *, go_backwards=False, training=False, zero_output_for_mask=False,
        need_state=True, last_only=False):
    """x (B, T, F), state NamedTuple of (B, U), lengths (B,) -> (outputs (B, T, U), final state, path).
    The final state is None when `need_state` is False and computing it would cost more. `last_only`
    (return_sequences=False): outputs is (B, 1, U), the last processed step's output only, which is the
    output of each row's last valid step in both directions (not gathering, nor differentiating, the
    whole sequence)."""
    B, T, F = x.shape
    steps = lengths.clamp(min=1)                 # at least one step per row; empty rows are fixed at the end
    t = torch.arange(T, device=x.device)
    if go_backwards:                             # each row's valid part, reversed: xs[b, k] = x[b, len_b - 1 - k]
        src = (steps[:, None] - 1 - t[None, :]).clamp(min=0)
        x = x.gather(1, src.unsqueeze(-1).expand(B, T, F))
    h_only = len(cell.state_names) == 1          # the state is h, which the outputs hold
    last = (steps - 1).view(B, 1, 1)
    if h_only or not need_state:                 # full run; h (GRU, SimpleRNN: the state) at len - 1
        out, _, _, _, kernel = fused.run_fast(cell, x, state, training=training)
        final = None
        if need_state:
            final = [out.gather(1, last.expand(B, 1, out.shape[2])).squeeze(1)]
        path = kernel.split(" (")[0] + " (right-padded mask: full run, outputs selected)"
    elif fused.compiled_reason(cell, x, state) is None:      # inference, CPU: c from the compiled loop
        out, _, seqs, _ = cell.run_compiled(x, state, want_states=True)
        U = out.shape[2]
        final = [s.gather(1, last.expand(B, 1, U)).squeeze(1) for s in seqs]
        path = fused.compiled_path(cell).split(" (")[0] + " (right-padded mask: full run, outputs and c selected)"
    else:
        out, final = _run_packed(cell, x, state, steps, training)
        path = fused.kernel_name(x.device, cell) + " (packed sequences: right-padded mask)"
    if last_only and not zero_output_for_mask:
        out = out.gather(1, last.expand(B, 1, out.shape[2]))
    else:
        out = _keras_outputs(out, lengths, steps, t, go_backwards, zero_output_for_mask)
    empty = lengths == 0
    if bool(empty.any()):                        # nothing valid: zeros out, the initial state kept
        out = torch.where(empty[:, None, None], 0.0, out)
        if final is not None:
            final = [torch.where(empty[:, None], s0, f) for s0, f in zip(state, final)]
    return out, (cell.state_type(*final) if final is not None else None), path


def _keras_outputs(out, lengths, steps, t, go_backwards, zero_output_for_mask):
    """Outputs of the valid steps (at 0 .. len_b - 1 of `out`) placed as Keras' masked run has them."""
    B, T, U = out.shape
    if go_backwards:                             # processed position p holds valid output p - (T - len_b)
        k = t[None, :] - (T - lengths[:, None])
        return torch.where((k >= 0).unsqueeze(-1), out.gather(1, k.clamp(min=0).unsqueeze(-1).expand(B, T, U)), 0.0)
    if zero_output_for_mask:
        return torch.where((t[None, :] < lengths[:, None]).unsqueeze(-1), out, 0.0)
    src = torch.minimum(t[None, :], (steps - 1)[:, None])  # padded steps repeat the last valid output
    return out.gather(1, src.unsqueeze(-1).expand(B, T, U))


def _run_packed(cell, x, state, steps, training):
    """Only the valid steps, through torch's packed sequences: (outputs (B, T, U), final state list)."""
    T = x.shape[1]
    packed = pack_padded_sequence(x, steps.cpu(), batch_first=True, enforce_sorted=False)
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    start = [s.index_select(0, order).unsqueeze(0) for s in state]
    data, final = cell.run_torch_packed(packed.data, packed.batch_sizes, start, training=training)
    final = [f.index_select(0, unorder) for f in final]
    out, _ = pad_packed_sequence(PackedSequence(data, packed.batch_sizes, order, unorder), batch_first=True,
                                 total_length=T)
    return out, final
