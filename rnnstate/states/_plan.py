"""The one-step plan of a streamed model: what ``Streamer.step`` and ``StateStore.step`` run for one
timestep when every layer of the model has a one-step form.

Built once from the model's graph (``build``): a flat list of per-layer step functions over numbered
value slots, in the graph's topological order. Per step there is no graph walk, no layer ``__call__``,
no state context: inputs lose their time axis, each recurrent layer runs its cell's compiled one-step
kernel (``LSTMCell / GRUCell / SimpleRNNCell.stream_step_fn``: ``torch.ops.rnnstate.lstm_step``,
``gru_step``, ``rnn_step``), Dense layers one ``addmm`` (+ activation), Embedding one lookup, and the
outputs with a time axis get it back. Weights are looked up in the layers at every step (a plan sees
weights updated, replaced or cast, like the layers do), so a plan never goes stale.

What a plan covers (else ``build`` returns the reason, and the streamer runs the model graph):

* layers: LSTM / GRU / SimpleRNN whose cell has a compiled kernel for its configuration (not
  ``go_backwards``, no c/gate sequences; ``return_state`` and ``return_sequences`` either way),
  Dense (also inside TimeDistributed), Embedding (``mask_zero=False``), Activation, Dropout /
  GaussianNoise / SpatialDropout1D (identity in inference), Concatenate on the last axis, Add /
  Subtract / Multiply / Average;
* Sequential or functional graphs of those (a DAG; several inputs and outputs), each recurrent layer
  called once, with no ``initial_state`` from the graph and no mask;
* inputs: sequences (float (B, T, F), or token ids (B, T)) given as one step, (B, F) / (B,) or
  (B, 1, F) / (B, 1); on CPU, in inference (``training=False, grad=False``).

Float inputs of another dtype are converted to the weights' dtype, as the layers convert them. A call
the plan can't take (a chunk of several steps, states not in the structure the streamer returns) runs
the model graph instead, with the same numbers; so does a call whose step raises (invalid inputs: a
wrong feature count, ids out of range), where the graph path gives the clear error.
"""
from __future__ import annotations

import numpy as np
import torch

from .._symbolic import SymbolicTensor, pack_like



class StepPlan:
    """One timestep of a model (or of one recurrent layer) as a flat list of step functions.

    ``run(x, states)`` -> ``(outputs, new_states)`` as the streamer returns them, or None when this
    call can't run on the plan (then nothing was changed)."""

    def __init__(self, ops, n_slots, inputs, outputs, out_timed, structure, recurrent, single, label):
        self.ops = ops                  # [op(vals, states, new)] in topological order
        self.n_slots = n_slots
        self.inputs = inputs            # [(slot, rank of the sequence input: 3 float, 2 ids)]
        self.outputs = outputs          # [slot] per flat model output
        self.out_timed = out_timed      # [bool]: the output has a time axis (rank 3)
        self.structure = structure      # the model's output structure (pack_like), or the layer's packer
        self.recurrent = recurrent      # [(layer name, state type, state size)], model order
        self.names = tuple(r[0] for r in recurrent)
        self.single = single            # a single layer: states are its NamedTuple, not a dict
        self.label = label
        self._zeros = {}
        self.run = self.run_single if single else self.run_graph

    # ---- per step ----------------------------------------------------------------------------------------
    def _inputs(self, x):
        """The step's inputs without their time axis, and whether they had one; None if not one step."""
        if len(self.inputs) == 1:
            xs = [x[0] if type(x) in (list, tuple) and len(x) == 1 else x]
        elif type(x) in (list, tuple) and len(x) == len(self.inputs):
            xs = list(x)
        else:
            return None
        timed = None
        dtype = self.weight_ref().dtype
        for k, ((_, rank), v) in enumerate(zip(self.inputs, xs)):
            if type(v) is np.ndarray:
                if rank == 3 and v.dtype not in (np.float32, np.float64) or rank == 2 and v.dtype.kind not in "iu":
                    return None
                v = torch.from_numpy(v)
            elif type(v) is not torch.Tensor:
                return None
            if rank == 2 and v.is_floating_point():
                return None
            if rank == 3 and v.dtype != dtype:            # the layers' rule: floats take the weights' dtype
                v = v.to(dtype)
            d = v.dim()
            if d == rank:
                if v.shape[1] != 1:
                    return None
                v, t = v.squeeze(1), True
            elif d == rank - 1:
                t = False
            else:
                return None
            if timed is not None and t != timed:
                return None
            timed = t
            xs[k] = v
        return xs, timed

    def _states(self, states, B, ref):
        """The start state of each recurrent layer (zeros where none is given), or None when `states`
        is not in the structure a step returns (a dict of state NamedTuples; for a single layer its
        NamedTuple)."""
        rec = self.recurrent
        if states is None:
            return self._zero(B, ref)
        if self.single:
            return [states] if type(states) is rec[0][1] else None
        if type(states) is not dict:
            return None
        out, found = [], 0
        zeros = None
        for i, (name, st_type, _) in enumerate(rec):
            st = states.get(name)
            if st is None:
                zeros = zeros or self._zero(B, ref)
                out.append(zeros[i])
            elif type(st) is st_type:
                out.append(st)
                found += 1
            else:
                return None
        return out if found == len(states) else None       # unknown keys: the general path names them

    def _zero(self, B, ref):
        key = (B, ref.dtype, ref.device)
        z = self._zeros.get(key)
        if z is None:
            if len(self._zeros) > 8:
                self._zeros.clear()
            z = self._zeros[key] = [st(*[ref.new_zeros(B, n) for _ in st._fields]) for _, st, n in self.recurrent]
        return z

    def run_single(self, x, states):
        """``run`` for a single recurrent layer: the same checks, fewer calls."""
        if type(x) is np.ndarray:
            if x.dtype not in (np.float32, np.float64):
                return None
            x = torch.from_numpy(x)
        elif type(x) is not torch.Tensor:
            return None
        dtype = self.weight_ref().dtype
        if x.dtype != dtype:                      # the layers' rule: floats take the weights' dtype
            if not x.is_floating_point():
                return None
            x = x.to(dtype)
        d = x.dim()
        if d == 3:                                # the kernels take a (B, 1, F) step as it is
            if x.shape[1] != 1:
                return None
            timed = True
        elif d == 2:
            timed = False
        else:
            return None
        if states is None:
            states = self._zero(x.shape[0], x)[0]
        elif type(states) is not self.recurrent[0][1]:
            return None
        try:
            y, st = self.step_fn(x, states)       # the kernel runs below autograd: no grad to switch off
        except (RuntimeError, IndexError, ValueError, TypeError):
            return None
        if timed and self.out_timed[0]:
            y = y.unsqueeze(1)
        return (y if self.structure is None else self.structure((y, *st))), st

    def run_graph(self, x, states):
        """``run`` for a model: the ops over the value slots."""
        got = self._inputs(x)
        if got is None:
            return None
        xs, timed = got
        start = self._states(states, xs[0].shape[0], _float_ref(xs, self))
        if start is None:
            return None
        vals = [None] * self.n_slots
        for (slot, _), v in zip(self.inputs, xs):
            vals[slot] = v
        new = list(start)
        prev = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            for op in self.ops:
                op(vals, start, new)
        except (RuntimeError, IndexError, ValueError, TypeError):
            return None                  # the general path runs the same call and gives the clear error
        finally:
            torch._C._set_grad_enabled(prev)
        outs = [vals[s] for s in self.outputs]
        if timed:
            outs = [o.unsqueeze(1) if t else o for o, t in zip(outs, self.out_timed)]
        y = outs[0] if self.structure is None else pack_like(self.structure, outs)
        return y, dict(zip(self.names, new))


def _float_ref(xs, plan):
    """A tensor whose dtype and device the zero states take: the first float input, else the first
    recurrent layer's weights (token inputs)."""
    for v in xs:
        if v.is_floating_point():
            return v
    return plan.weight_ref()


# ---- building ----------------------------------------------------------------------------------------------
def _classes():
    from ..layers import core, merge, noise, wrappers
    from ..layers.rnn import RNN
    identity = (core.Dropout, noise.GaussianNoise, noise.SpatialDropout1D)
    merges = {merge.Add: "add", merge.Subtract: "sub", merge.Multiply: "mul", merge.Average: "avg"}
    return RNN, core, merge, wrappers, identity, merges


def _recurrent_reason(layer):
    """Why a recurrent layer has no one-step form (None when it has)."""
    cell = layer.cell
    if not hasattr(cell, "stream_step_fn"):
        return f"its cell {type(cell).__name__} declares no compiled one-step kernel"
    if not getattr(cell, "built", False):
        return "it is not built yet"
    if layer.return_cell_sequence or layer.return_gate_sequences:
        return "it returns its c/gate sequences"
    reason = layer._static_reason()
    if reason is not None:
        return reason
    if cell.streaming_step() is None:
        from .. import _ext
        return _ext.unavailable_reason() or "no compiled one-step kernel for its configuration"
    return None


def _device_reason(module):
    for p in module.parameters():
        if p.device.type != "cpu":
            return f"its weights are on {p.device} (the compiled step kernels are CPU-only)"
        if p.dtype not in (torch.float32, torch.float64):
            return f"its weights are {p.dtype} (the compiled step kernels take float32/float64)"
    return None


def _recurrent_op(layer, fn, i, o, r, extra):
    """(vals, start, new): vals[o] = y; new[r] = state; returned states into their slots."""
    if not extra:
        def op(v, s, n):
            v[o], n[r] = fn(v[i], s[r])
    else:
        def op(v, s, n):
            y, st = fn(v[i], s[r])
            v[o], n[r] = y, st
            for k, slot in extra:
                v[slot] = st[k]
    return op


def _dense_op(layer, i, o):
    from ..cells.base import _act_name
    p = layer._parameters
    act = None if _act_name(layer.activation) == "linear" else layer.activation
    addmm, mm = torch.addmm, torch.mm
    if layer.bias is not None and act is None:
        def op(v, s, n):
            v[o] = addmm(p["bias"], v[i], p["kernel"])
    elif layer.bias is not None:
        def op(v, s, n):
            v[o] = act(addmm(p["bias"], v[i], p["kernel"]))
    elif act is None:
        def op(v, s, n):
            v[o] = mm(v[i], p["kernel"])
    else:
        def op(v, s, n):
            v[o] = act(mm(v[i], p["kernel"]))
    return op


def _embedding_op(layer, i, o):
    p = layer._parameters
    emb = torch.nn.functional.embedding

    def op(v, s, n):
        v[o] = emb(v[i], p["embeddings"])
    return op


def _activation_op(fn, i, o):
    def op(v, s, n):
        v[o] = fn(v[i])
    return op


def _merge_op(kind, ins, o):
    if kind == "cat":
        cat = torch.cat

        def op(v, s, n):
            v[o] = cat([v[j] for j in ins], -1)
    else:
        def op(v, s, n):
            acc = v[ins[0]]
            for j in ins[1:]:
                b = v[j]
                acc = acc + b if kind in ("add", "avg") else acc - b if kind == "sub" else acc * b
            v[o] = acc / len(ins) if kind == "avg" else acc
    return op


def build_layer(layer):
    """(plan, None) for one recurrent layer streamed on its own, or (None, reason)."""
    reason = _recurrent_reason(layer) or _device_reason(layer)
    if reason is not None:
        return None, f"{_who(layer)}: {reason}"
    fn = layer.cell.stream_step_fn()
    pack = layer._pack if layer.return_state else None           # (y, *states) -> the layer's result
    rec = [(layer.name, layer.cell.state_type, layer.cell.units)]
    plan = StepPlan([], 1, [(0, 3)], [0], [layer.return_sequences], pack, rec, True,
                    f"compiled-{layer.cell.kernel_label} step (streaming fast path)")
    plan.step_fn = fn
    plan.weight_ref = lambda: layer.cell.weight_hh
    return plan, None


def build_model(model, recurrent_layers):
    """(plan, None) for a model whose every layer has a one-step form, or (None, reason)."""
    RNN, core, merge, wrappers, identity, merges = _classes()
    if not getattr(model, "_graph_ready", True) or not hasattr(model, "_nodes"):
        return None, "the model has no graph yet (a Sequential never called)"
    if model._masking:
        return None, "a layer makes a mask (Embedding(mask_zero=True) or Masking): a masked step keeps its state"
    reason = _device_reason(model)
    if reason is not None:
        return None, f"the model: {reason}"
    slot_of = {}
    inputs = []
    for t in model.inputs:
        rank = len(t.shape)
        floating = t.dtype.is_floating_point if isinstance(t.dtype, torch.dtype) else True
        if not ((rank == 3 and floating) or (rank == 2 and not floating)):
            return None, (f"input '{t.layer.name}' of shape {tuple(t.shape)} is not a sequence ((B, T, F) floats "
                          f"or (B, T) token ids)")
        slot_of[id(t)] = len(slot_of)
        inputs.append((slot_of[id(t)], rank))
    n_slots = [len(slot_of)]

    def new_slot(t):
        slot_of[id(t)] = n_slots[0]
        n_slots[0] += 1
        return slot_of[id(t)]

    rec_index = {l: k for k, l in enumerate(recurrent_layers)}
    seen_rec = set()
    ops, labels = [], []
    for node in model._nodes:
        layer = node.layer
        kwargs = {k: v for k, v in (node.kwargs or {}).items() if v is not None and k != "training"}
        if kwargs:
            return None, f"{_who(layer)} is called with {sorted(kwargs)} (e.g. an initial_state from the graph)"
        args = node.args or ()
        if len(args) != 1:
            return None, f"{_who(layer)} is called on {len(args)} arguments"
        arg = args[0]
        if isinstance(arg, (list, tuple)):
            if not all(isinstance(a, SymbolicTensor) and id(a) in slot_of for a in arg):
                return None, f"{_who(layer)} is called on a list that is not of graph tensors"
            ins = [slot_of[id(a)] for a in arg]
            i = None
        elif isinstance(arg, SymbolicTensor) and id(arg) in slot_of:
            ins, i = None, slot_of[id(arg)]
        else:
            return None, f"{_who(layer)} is called on a constant"
        outs = node.outputs
        if isinstance(layer, RNN):
            why = _recurrent_reason(layer)
            if why is not None:
                return None, f"{_who(layer)}: {why}"
            if layer in seen_rec or layer not in rec_index:
                return None, f"{_who(layer)} is called more than once in the graph"
            seen_rec.add(layer)
            if i is None:
                return None, f"{_who(layer)} is called on a list"
            o = new_slot(outs[0])
            extra = [(k, new_slot(t)) for k, t in enumerate(outs[1:])] if layer.return_state else []
            if len(outs) != 1 + len(extra):
                return None, f"{_who(layer)} returns {len(outs)} values"
            ops.append(_recurrent_op(layer, layer.cell.stream_step_fn(), i, o, rec_index[layer], extra))
            labels.append(f"compiled-{layer.cell.kernel_label} step")
            continue
        if len(outs) != 1:
            return None, f"{_who(layer)} returns {len(outs)} values"
        inner = layer.layer if type(layer) is wrappers.TimeDistributed else layer     # one step: the layer itself
        if type(inner) is core.Dense and i is not None:
            ops.append(_dense_op(inner, i, new_slot(outs[0])))
            labels.append("Dense")
        elif type(layer) is core.Embedding and i is not None and not layer.mask_zero:
            ops.append(_embedding_op(layer, i, new_slot(outs[0])))
            labels.append("Embedding")
        elif type(layer) is core.Activation and i is not None:
            ops.append(_activation_op(layer.activation, i, new_slot(outs[0])))
            labels.append("Activation")
        elif type(layer) in identity and i is not None:
            slot_of[id(outs[0])] = i            # inference: the identity, no op
        elif type(layer) is merge.Concatenate and ins is not None and layer.axis in (-1, len(outs[0].shape) - 1):
            ops.append(_merge_op("cat", ins, new_slot(outs[0])))
            labels.append("Concatenate")
        elif type(layer) in merges and ins is not None:
            ops.append(_merge_op(merges[type(layer)], ins, new_slot(outs[0])))
            labels.append(type(layer).__name__)
        else:
            return None, f"{_who(layer)} has no one-step form in the step plan"
    missing = [l for l in recurrent_layers if l not in seen_rec]
    if missing:
        return None, f"{_who(missing[0])} is not in the model's own graph (a nested model)"
    outputs = [slot_of[id(t)] for t in model.outputs]
    out_timed = [len(t.shape) == 3 for t in model.outputs]
    structure = None if isinstance(model._output_structure, SymbolicTensor) else model._output_structure
    rec = [(l.name, l.cell.state_type, l.cell.units) for l in recurrent_layers]
    label = "step plan (" + ", ".join(dict.fromkeys(labels)) + ")"
    plan = StepPlan(ops, n_slots[0], inputs, outputs, out_timed, structure, rec, False, label)
    plan.weight_ref = lambda: recurrent_layers[0].cell.weight_hh
    return plan, None


def _who(layer):
    from .. import _checks
    return _checks.who(layer)


__all__ = ["StepPlan", "build_layer", "build_model"]
