"""Recurrent layers -> standard ONNX ``LSTM`` / ``GRU`` / ``RNN`` nodes, with Keras' semantics.

What each ONNX node computes, and how rnnstate's (Keras') results are taken from it:

* Layout: ONNX's default layout 0 (time-major ``X (T, B, F)``, ``Y (T, D, B, U)``, ``Y_h (D, B, U)``),
  the one every runtime implements; the graph transposes around the node.
* Gate order (rows of ``W (D, G*U, F)``, ``R (D, G*U, U)``, ``B (D, 2*G*U)`` = input then recurrent
  biases): LSTM ONNX ``i, o, f, c`` from torch ``i, f, g, o``; GRU ONNX ``z, r, h`` from torch ``r, z, n``,
  ``linear_before_reset=1`` for Keras' ``reset_after=True`` (``r * (h U_h + b_hh)``), ``0`` for
  ``reset_after=False`` (``(r * h) U_h``, no recurrent bias); SimpleRNN ``RNN`` with ``Tanh``/``Relu``/``Sigmoid``.
* ``go_backwards``: ONNX ``direction="reverse"`` keeps outputs at their input positions
  (``Y[t]`` = state after reading ``x[T-1] .. x[t]``); Keras gives them in processing order, so
  the output sequence is ``Y`` flipped in time; the final state is ``Y_h``.
* Bidirectional: one ``direction="bidirectional"`` node (forward then reverse), whose reverse
  ``Y`` already is in input order, which is what Keras merges (it flips the backward output back).
  A ``backward_layer`` of another kind or configuration, or stacked cells: one node per direction.
* Stacked cells (``RNN([cell_1, cell_2])``): one node per cell, each reading the previous one's ``Y``;
  under a mask or ``go_backwards`` every node gets the same ``sequence_lens`` / direction, which is
  what one time loop over all cells computes.
* Masks (right-padded: each row valid steps, then padding): ``sequence_lens`` = the mask's row sums,
  computed in the graph. Keras' masked results are then: forward sequences repeat the last valid
  output over the padding (zeros with ``zero_output_for_mask``); ``go_backwards`` sequences start
  with zeros; a row with no valid step outputs zeros and keeps its initial state. ``sequence_lens``
  is clamped to >= 1 (runtimes differ on 0) and such rows are fixed with ``Where``.
  A row whose mask is *not* right-padded (a hole, left padding) can't be computed by the standard
  ops: all of that row's results from the layer are NaN, never silently different numbers.
"""
from __future__ import annotations

import numpy as np

from .. import _checks
from ._graph import ExportError

_GATE_PERM = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}
_RNN_ACTS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}


# ---- cells ----------------------------------------------------------------------------------------------
def _cell_op(layer, cell):
    """(op_type, attributes) for one rnnstate cell, or ExportError with the reason."""
    from ..cells import GRUCell, LSTMCell, SimpleRNNCell
    for cls, op in ((LSTMCell, "LSTM"), (GRUCell, "GRU"), (SimpleRNNCell, "RNN")):
        if isinstance(cell, cls):
            break
    else:
        raise ExportError(f"{_checks.who(layer)}: its cell {type(cell).__name__} has no ONNX equivalent; only "
                          f"LSTMCell, GRUCell, SimpleRNNCell (and stacks of them) export.")
    for meth in ("recurrent_step", "project_input", "step"):
        if getattr(type(cell), meth) is not getattr(cls, meth):
            raise ExportError(f"{_checks.who(layer)}: its cell {type(cell).__name__} overrides `{meth}`, so its "
                              f"step may differ from the standard ONNX {op} op; it can't be exported.")
    act, rec = cell.activation_name, cell.recurrent_activation_name
    if op == "RNN":
        if act not in _RNN_ACTS:
            raise ExportError(f"{_checks.who(layer)}: activation {act!r} has no ONNX RNN counterpart that "
                              f"runtimes implement; supported: {sorted(_RNN_ACTS)}.")
        return op, {"acts": _RNN_ACTS[act]}
    if act != "tanh" or rec != "sigmoid":
        raise ExportError(f"{_checks.who(layer)}: ONNX {op} export supports activation='tanh' and "
                          f"recurrent_activation='sigmoid' (the activations every runtime implements); received "
                          f"activation={act!r}, recurrent_activation={rec!r}.")
    if op == "GRU":
        return op, {"linear_before_reset": int(cell.reset_after)}
    return op, {}


def _weights(cell, op):
    """torch layout -> ONNX W (G*U, F), R (G*U, U), B (2*G*U,) in ONNX gate order."""
    def arr(t, n):
        return np.zeros(n, np.float32) if t is None else t.detach().cpu().float().numpy()

    perm, U = _GATE_PERM[op], cell.units

    def reorder(a):
        return np.concatenate([a[p * U:(p + 1) * U] for p in perm], 0)
    G = len(perm) * U
    W, R = reorder(arr(cell.weight_ih, None)), reorder(arr(cell.weight_hh, None))
    B = np.concatenate([reorder(arr(cell.bias_ih, G)), reorder(arr(cell.bias_hh, G))])
    return W, R, B


def _node(ctx, layer, cells, X, seq_lens, inits, reverse, want_y, hint):
    """One ONNX node for 1 or 2 cells (2: bidirectional, forward cell first). `inits` per cell: list of
    (B, U) names (h[, c]). Returns (Y (T, D, B, U) or None, [[h, c?] per direction] as (B, U) names)."""
    b = ctx.b
    op, attrs = _cell_op(layer, cells[0])
    U = cells[0].units
    ws = [_weights(c, op) for c in cells]
    W = b.weight(np.stack([w[0] for w in ws]), f"{hint}/W")
    R = b.weight(np.stack([w[1] for w in ws]), f"{hint}/R")
    Bv = b.weight(np.stack([w[2] for w in ws]), f"{hint}/B")
    D = len(cells)
    direction = "bidirectional" if D == 2 else ("reverse" if reverse else "forward")

    def stack(k):
        parts = [b.unsqueeze(init[k], [0]) for init in inits]
        return parts[0] if D == 1 else b.op("Concat", parts, axis=0)
    ins = [X, W, R, Bv, seq_lens or "", stack(0)]
    if op == "LSTM":
        ins.append(stack(1))
    kw = dict(hidden_size=U, direction=direction)
    if op == "RNN":
        kw["activations"] = [attrs["acts"]] * D
    elif op == "GRU":
        kw["linear_before_reset"] = attrs["linear_before_reset"]
    outs = [f"{hint}/Y" if want_y else "", f"{hint}/Y_h_raw"] + ([f"{hint}/Y_c_raw"] if op == "LSTM" else [])
    outs = b.op_outputs(op, ins, outs, hint, **kw)
    Y = outs[0] or None
    finals = []
    for d in range(D):
        per = []
        for o in outs[1:]:
            v = b.squeeze(o, [0]) if D == 1 else b.op("Gather", [o, b.const(d)], axis=0)
            per.append(v)
        finals.append(per)
    return Y, finals


def _compatible(layer, a, b):
    """Whether two cells can share one bidirectional node."""
    if type(a) is not type(b) or a.units != b.units:
        return False
    return _cell_op(layer, a) == _cell_op(layer, b)


# ---- masks ----------------------------------------------------------------------------------------------
class MaskInfo:
    """What the recurrent nodes need from a (B, T) bool mask, built once per mask."""

    def __init__(self, ctx, mask):
        b = ctx.b
        mi = b.op("Cast", [mask], "mask/int", to=6)                                    # INT32
        lens = b.op("ReduceSum", [mi, b.const([1])], "mask/lengths", keepdims=0)          # (B,)
        self.seq_lens = b.op("Max", [lens, b.const(1, np.int32)], "mask/sequence_lens")   # >= 1
        self.any = b.unsqueeze(b.op("Greater", [lens, b.const(0, np.int32)]), [1], "mask/any")   # (B, 1)
        prev = b.op("Slice", [mask, b.const([0]), b.const([-1]), b.const([1])])
        nxt = b.op("Slice", [mask, b.const([1]), b.const([np.iinfo(np.int64).max]), b.const([1])])
        holes = b.op("Cast", [b.op("And", [b.op("Not", [prev]), nxt])], to=6)
        nholes = b.op("ReduceSum", [holes, b.const([1])], keepdims=1)                     # (B, 1); 0 when T = 1
        self.bad = b.op("Greater", [nholes, b.const(0, np.int32)], "mask/not_right_padded")   # (B, 1)
        self.bad3 = b.unsqueeze(self.bad, [2])
        self.last = b.op("Slice", [mask, b.const([-1]), b.const([np.iinfo(np.int64).max]), b.const([1])])  # (B, 1)
        self.mask3 = b.unsqueeze(mask, [2], "mask/3d")                                    # (B, T, 1)
        self.nan = b.const(np.nan, np.float32)

    def poison(self, b, v, rank):
        return b.where(self.bad if rank == 2 else self.bad3, self.nan, v)


# ---- layers ---------------------------------------------------------------------------------------------
def _cells_of(layer):
    from ..layers.stacked import StackedCells
    cell = layer.cell
    return list(cell.cells) if isinstance(cell, StackedCells) else [cell]


def _check_layer(layer):
    if getattr(layer, "return_cell_sequence", False) or getattr(layer, "return_gate_sequences", False):
        raise ExportError(f"{_checks.who(layer)}: return_cell_sequence / return_gate_sequences have no ONNX "
                          f"counterpart (the standard ops return only the h sequence and the final states).")
    for c in _cells_of(layer):
        _cell_op(layer, c)


def _state_fields(layer):
    from ..layers.rnn import _state_names
    return list(_state_names(layer.cell))


def _initials(ctx, layer, given, prefix):
    """(B, U) initial states: given by the graph, else new graph inputs ``<prefix>/initial_<field>``."""
    fields, sizes = _state_fields(layer), layer.state_size
    if given is not None:
        if len(given) != len(fields):
            raise ExportError(f"{_checks.who(layer)}: initial_state has {len(given)} tensors; expected "
                              f"{len(fields)} ({fields}).")
        return list(given), [None] * len(fields)
    names = []
    for f, n in zip(fields, sizes):
        names.append(ctx.b.add_input(f"{prefix}/initial_{f}", 1, ["batch", int(n)]))
    return names, names


def _run_layer(ctx, layer, X, m, inits, want_seq, hint):
    """Every cell of `layer` (stacked cells: one node each). Returns (Y (T, B, U) in input order or None,
    raw final states (B, U) in the layer's flat field order, the last cell's final h = the last output)."""
    cells = _cells_of(layer)
    counts = [2 if _cell_op(layer, c)[0] == "LSTM" else 1 for c in cells]
    finals, i, Y, h_last = [], 0, None, None
    for k, (cell, n) in enumerate(zip(cells, counts)):
        last = k == len(cells) - 1
        h = hint if len(cells) == 1 else f"{hint}/cell_{k}"
        Yk, fin = _node(ctx, layer, [cell], X, m.seq_lens if m else None, [inits[i:i + n]], layer.go_backwards,
                        want_seq or not last, h)
        finals += fin[0]
        h_last = fin[0][0]
        i += n
        if Yk is not None:
            Y = ctx.b.squeeze(Yk, [1], f"{h}/Y_tbu")
            X = Y
    return (Y if want_seq else None), finals, h_last


def _keras_results(ctx, layer, Y, raw, h_last, inits, m, want_seq, hint, input_order=False):
    """Keras' (output sequence or last output, final states) from a node's raw results. The sequence is
    in processing order (reversed for ``go_backwards``), or with `input_order` in input order (what
    Bidirectional merges: it flips its backward layer's output back)."""
    b = ctx.b
    seq = last = None
    if want_seq:
        seq = b.transpose(Y, [1, 0, 2], f"{hint}/sequence")                          # (B, T, U)
        if m is not None:
            zeros_after = b.where(m.mask3, seq, b.zero())
            if layer.go_backwards or layer.zero_output_for_mask:
                seq = zeros_after
            else:                                 # padding repeats the last valid output (zeros if none)
                fill = b.unsqueeze(b.where(m.any, h_last, b.zero()), [1])
                seq = b.where(m.mask3, seq, fill)
        if layer.go_backwards != input_order:
            seq = b.flip(seq, 1, f"{hint}/sequence_flipped")
    else:
        last = h_last
        if m is not None:
            keep = m.last if (layer.zero_output_for_mask and not layer.go_backwards) else m.any
            last = b.where(keep, h_last, b.zero())
    finals = raw if m is None else [b.where(m.any, f, s0) for f, s0 in zip(raw, inits)]
    if m is not None:
        seq = m.poison(b, seq, 3) if seq is not None else None
        last = m.poison(b, last, 2) if last is not None else None
        finals = [m.poison(b, f, 2) for f in finals]
    return (seq if want_seq else last), finals


def _state_outputs(ctx, layer, finals, input_names, prefix):
    fields = _state_fields(layer)
    for f, v, n, inp in zip(fields, finals, layer.state_size, input_names):
        ctx.add_state(prefix, f, inp, f"{prefix}/Y_{f}", v, int(n))


def convert_rnn(ctx, layer, x, initial, mask, prefix):
    """An RNN layer (LSTM/GRU/SimpleRNN/RNN(cells)) -> its results in ``layer._fields`` order."""
    _check_layer(layer)
    b = ctx.b
    m = ctx.mask_info(mask) if mask is not None else None
    inits, input_names = _initials(ctx, layer, initial, prefix)
    X = b.transpose(x, [1, 0, 2], f"{prefix}/X_tbf")
    Y, raw, h_last = _run_layer(ctx, layer, X, m, inits, layer.return_sequences, prefix)
    out, finals = _keras_results(ctx, layer, Y, raw, h_last, inits, m, layer.return_sequences, prefix)
    _state_outputs(ctx, layer, finals, input_names, prefix)
    return [out] + (finals if layer.return_state else [])


def convert_bidirectional(ctx, layer, x, initial, mask, prefix):
    fw, bw = layer.forward_layer, layer.backward_layer
    _check_layer(fw)
    _check_layer(bw)
    b = ctx.b
    m = ctx.mask_info(mask) if mask is not None else None
    n = len(fw.state_size)
    given = (None, None) if initial is None else (list(initial[:n]), list(initial[n:]))
    if initial is not None and len(initial) != 2 * n:
        raise ExportError(f"{_checks.who(layer)}: initial_state has {len(initial)} tensors; expected {2 * n}.")
    (i_fw, n_fw), (i_bw, n_bw) = (_initials(ctx, fw, given[0], f"{prefix}/forward"),
                                  _initials(ctx, bw, given[1], f"{prefix}/backward"))
    X = b.transpose(x, [1, 0, 2], f"{prefix}/X_tbf")
    want = layer.return_sequences
    fc, bc = _cells_of(fw), _cells_of(bw)
    if (len(fc) == 1 and len(bc) == 1 and fw.go_backwards != bw.go_backwards and _compatible(fw, fc[0], bc[0])):
        order = (fw, bw) if not fw.go_backwards else (bw, fw)        # ONNX: forward direction first
        inits = {id(fw): i_fw, id(bw): i_bw}
        Y, finals = _node(ctx, layer, [_cells_of(l)[0] for l in order], X, m.seq_lens if m else None,
                          [inits[id(l)] for l in order], False, want, prefix)
        res = {}
        for d, l in enumerate(order):
            Yd = b.op("Gather", [Y, b.const(d)], f"{prefix}/Y_dir{d}", axis=1) if want else None
            res[id(l)] = (Yd, finals[d], finals[d][0])
    else:                                                               # stacked cells, other pairings
        res = {id(fw): _run_layer(ctx, fw, X, m, i_fw, want, f"{prefix}/forward"),
               id(bw): _run_layer(ctx, bw, X, m, i_bw, want, f"{prefix}/backward")}
    out_fw, st_fw = _keras_results(ctx, fw, *res[id(fw)], i_fw, m, want, f"{prefix}/forward")
    # Keras flips the backward layer's output sequence back into input order
    out_bw, st_bw = _keras_results(ctx, bw, *res[id(bw)], i_bw, m, want, f"{prefix}/backward", input_order=True)
    _state_outputs(ctx, fw, st_fw, n_fw, f"{prefix}/forward")
    _state_outputs(ctx, bw, st_bw, n_bw, f"{prefix}/backward")
    mode = layer.merge_mode
    if mode is None:
        outs = [out_fw, out_bw]
    elif mode == "concat":
        outs = [b.op("Concat", [out_fw, out_bw], f"{prefix}/concat", axis=-1)]
    elif mode == "sum":
        outs = [b.op("Add", [out_fw, out_bw], f"{prefix}/sum")]
    elif mode == "mul":
        outs = [b.op("Mul", [out_fw, out_bw], f"{prefix}/mul")]
    else:
        outs = [b.op("Mul", [b.op("Add", [out_fw, out_bw]), b.const(0.5, np.float32)], f"{prefix}/ave")]
    return outs + (st_fw + st_bw if layer.return_state else [])

