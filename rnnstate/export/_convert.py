"""The walk over a Model's graph: one converter per layer type, masks propagated as in
``Model._run_graph_masked`` (Keras 3 rules). Anything without a converter raises ExportError."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import _checks, activations
from .._symbolic import SymbolicTensor, flatten, has_symbolic
from . import _recurrent
from ._graph import ExportError

FLOAT, INT64, BOOL = 1, 7, 9
_ELEM = {torch.float32: FLOAT, torch.int64: INT64, torch.bool: BOOL}
SUPPORTED = ("LSTM", "GRU", "SimpleRNN", "RNN (of LSTM/GRU/SimpleRNN cells)", "Bidirectional", "Dense", "Embedding",
             "Masking", "Dropout", "Activation", "TimeDistributed(Dense/Activation/Dropout)", "Concatenate", "Add")


class Context:
    """Shared state of one export: the builder, the recurrent states found, mask helpers."""

    def __init__(self, builder):
        self.b = builder
        self.states = []             # [{"layer", "state", "input", "output", "units"}] in graph order
        self._masks = {}

    def add_state(self, prefix, field, input_name, output_name, value, units):
        self.b.reserve(output_name)
        self.states.append({"layer": prefix, "state": field, "input": input_name, "output": output_name,
                            "value": value, "units": units})

    def mask_info(self, mask):
        mi = self._masks.get(mask)
        if mi is None:
            mi = self._masks[mask] = _recurrent.MaskInfo(self, mask)
        return mi


def dims(shape, time_axis):
    """Symbolic dims for a graph input/output: axis 0 'batch', the time axis 'time', the rest as known."""
    out = []
    for i, d in enumerate(shape):
        if i == 0:
            out.append("batch")
        elif i == time_axis:
            out.append("time")
        else:
            out.append(None if d is None else int(d))
    return out


def time_axis(t):
    """Axis 1 is time for (B, T, F...) tensors and for integer or bool (B, T) ids and masks."""
    if len(t.shape) >= 3 or (len(t.shape) == 2 and not t.dtype.is_floating_point):
        return 1
    return None


def elem_type(t, what):
    e = _ELEM.get(t.dtype)
    if e is None:
        raise ExportError(f"{what} has dtype {t.dtype}; ONNX export supports float32, int64 and bool tensors.")
    return e


# ---- activations ---------------------------------------------------------------------------------------------
def activation(b, fn, x, who):
    try:
        name = activations.serialize(fn)
    except ValueError:
        name = None
    if name == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus", "softsign": "Softsign",
              "exponential": "Exp"}
    if name in simple:
        return b.op(simple[name], [x])
    if name == "softmax":
        return b.op("Softmax", [x], axis=-1)
    if name == "log_softmax":
        return b.op("LogSoftmax", [x], axis=-1)
    if name == "elu":
        return b.op("Elu", [x], alpha=1.0)
    if name == "selu":
        return b.op("Selu", [x], alpha=1.6732632423543772, gamma=1.0507009873554805)
    if name == "leaky_relu":
        return b.op("LeakyRelu", [x], alpha=0.2)
    if name == "relu6":
        return b.op("Clip", [x, b.const(0.0, np.float32), b.const(6.0, np.float32)])
    if name == "hard_sigmoid":
        return b.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if name in ("silu", "swish"):
        return b.op("Mul", [x, b.op("Sigmoid", [x])])
    if name in ("hard_silu", "hard_swish"):
        return b.op("Mul", [x, b.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])
    if name == "gelu":
        e = b.op("Erf", [b.op("Mul", [x, b.const(1.0 / math.sqrt(2.0), np.float32)])])
        return b.op("Mul", [b.op("Mul", [x, b.const(0.5, np.float32)]), b.op("Add", [e, b.const(1.0, np.float32)])])
    if name == "mish":
        return b.op("Mul", [x, b.op("Tanh", [b.op("Softplus", [x])])])
    raise ExportError(f"{who}: activation {name or fn!r} has no ONNX conversion; supported: linear, relu, sigmoid, "
                      f"tanh, softmax, log_softmax, elu, selu, softplus, softsign, exponential, leaky_relu, relu6, "
                      f"hard_sigmoid, silu, hard_silu, gelu, mish.")


# ---- plain layers (value in -> value out) -------------------------------------------------------------------------
def _np(p):
    return p.detach().cpu().float().numpy()


def dense(ctx, layer, x, hint):
    b = ctx.b
    y = b.op("MatMul", [x, b.weight(_np(layer.kernel), f"{hint}/kernel")], f"{hint}/matmul")
    if layer.bias is not None:
        y = b.op("Add", [y, b.weight(_np(layer.bias), f"{hint}/bias")], f"{hint}/bias_add")
    return activation(b, layer.activation, y, _checks.who(layer))


def embedding(ctx, layer, x, hint, dtype):
    b = ctx.b
    ids = x if dtype == torch.int64 else b.op("Cast", [x], f"{hint}/ids", to=INT64)
    # negative ids would count from the end in Gather; make them out of range so the runtime refuses them
    ids = b.where(b.op("Less", [ids, b.const(0)]), b.const(layer.input_dim), ids, f"{hint}/checked_ids")
    return b.op("Gather", [b.weight(_np(layer.embeddings), f"{hint}/embeddings"), ids], hint, axis=0)


def masking(ctx, layer, x, hint):
    b = ctx.b
    ne = b.op("Cast", [b.op("Not", [b.op("Equal", [x, b.const(layer.mask_value, np.float32)])])], to=6)
    keep = b.op("Cast", [b.op("ReduceMax", [ne], axes=[-1], keepdims=1)], f"{hint}/keep", to=BOOL)   # (B, T, 1)
    return b.where(keep, x, b.zero(), hint), b.squeeze(keep, [2], f"{hint}/mask")


def _same_code(layer):
    """A subclass of a supported layer that overrides its computation would be exported as the base class:
    refuse it instead."""
    from ..layers import (Activation, Add, Bidirectional, Concatenate, Dense, Dropout, Embedding, Masking, RNN,
                          TimeDistributed)
    from ..models.functional import Model
    for base in (Dense, Dropout, Activation, Embedding, Masking, TimeDistributed, Concatenate, Add, RNN,
                 Bidirectional, Model):
        if isinstance(layer, base):
            for meth in ("forward", "compute_mask"):
                if getattr(type(layer), meth) is not getattr(base, meth):
                    raise ExportError(f"{_checks.who(layer)}: {type(layer).__name__} overrides `{meth}` of "
                                      f"{base.__name__}, so the exported {base.__name__} could compute something "
                                      f"else; it is not exported.")
            return


def _plain(ctx, layer, x, hint, dtype):
    """Layers applied to one tensor on its last axis (also inside TimeDistributed)."""
    from ..layers.core import Activation, Dense, Dropout
    _same_code(layer)
    if isinstance(layer, Dense):
        return dense(ctx, layer, x, hint)
    if isinstance(layer, Dropout):         # export is inference: dropout is the identity
        return x
    if isinstance(layer, Activation):
        return activation(ctx.b, layer.activation, x, _checks.who(layer))
    return None


# ---- masks of merge layers ------------------------------------------------------------------------------------------
def concat_mask(b, layer, xs, masks, ranks):
    """rnnstate's Concatenate.compute_mask: each (B, T) mask (all True where None) broadcast to its input's
    shape, concatenated on the layer's axis, then any() over the last axis."""
    if all(m is None for m in masks):
        return None
    parts = []
    for x, m, r in zip(xs, masks, ranks):
        if m is None:
            parts.append(b.op("Expand", [b.const(True, np.bool_), b.op("Shape", [x])]))
        elif r > 2:
            parts.append(b.op("Expand", [b.unsqueeze(m, [2]), b.op("Shape", [x])]))
        else:
            parts.append(m)
    cat = b.op("Cast", [b.op("Concat", parts, axis=layer.axis)], to=6)
    return b.op("Cast", [b.op("ReduceMax", [cat], axes=[-1], keepdims=0)], f"{layer.name}/mask", to=BOOL)


# ---- the walk ---------------------------------------------------------------------------------------------------------
def convert_model(ctx, model):
    """The whole graph: model inputs, every node, model outputs, then the state outputs."""
    b = ctx.b
    values = {}
    for t in model.inputs:
        values[id(t)] = b.add_input(t.layer.name, elem_type(t, f"input '{t.layer.name}'"), dims(t.shape, time_axis(t)))
    for name in model.output_names:
        b.reserve(name)
    _walk(ctx, model, values, "")
    for t, name in zip(model.outputs, model.output_names):
        shape = ["batch"] + [None] * (len(t.shape) - 2) + ([t.shape[-1]] if len(t.shape) > 1 else [])
        b.add_output(name, values[id(t)], elem_type(t, f"output '{name}'"), shape, True)
    for s in ctx.states:                 # after the model's outputs: `<layer>/Y_h`, `<layer>/Y_c`, ...
        b.add_output(s["output"], s.pop("value"), FLOAT, ["batch", s["units"]], True)


def _walk(ctx, model, values, scope):
    """Convert `model`'s nodes in order; `values` maps its symbolic tensors to ONNX names (the inputs
    given). A model nested as a layer is walked in place, its layers named ``<model>/<layer>``."""
    from ..layers.core import Embedding, InputLayer, Masking
    from ..layers.merge import Add, Concatenate
    from ..layers.rnn import RNN
    from ..layers.wrappers import Bidirectional, TimeDistributed
    from ..models.functional import Model

    b = ctx.b
    masks, calls = {}, {}

    def get(a):
        return values[id(a)] if isinstance(a, SymbolicTensor) else a

    for node in model._nodes:
        layer = node.layer
        who = _checks.who(layer)
        k = calls[id(layer)] = calls.get(id(layer), -1) + 1
        prefix = scope + (layer.name if k == 0 else f"{layer.name}/call_{k}")
        if isinstance(layer, InputLayer):
            raise ExportError(f"{who}: an input layer called as a layer is not exported.")
        _same_code(layer)
        args, kwargs = node.args, dict(node.kwargs)
        kwargs.pop("training", None)
        first = args[0] if args else None
        in_mask = [masks.get(id(t)) for t in flatten(first)] if first is not None else []
        masked = any(m is not None for m in in_mask)
        outs, out_masks = None, None

        if isinstance(layer, Model):                    # nested: walked in place; passes on no mask (as rnnstate)
            if kwargs or len(args) != 1:
                raise ExportError(f"{who}: a nested model called with arguments {sorted(kwargs)} is not exported.")
            inner = {id(ti): get(t) for ti, t in zip(layer.inputs, flatten(first))}
            _walk(ctx, layer, inner, prefix + "/")
            outs = [inner[id(t)] for t in layer.outputs]
        elif isinstance(layer, (RNN, Bidirectional)):
            initial = kwargs.pop("initial_state", None)
            if len(args) > 1:
                initial = args[1]
            mask_arg = kwargs.pop("mask", None)
            if kwargs or len(args) > 2:
                raise ExportError(f"{who}: call arguments {sorted(kwargs)} are not exported.")
            if initial is not None and not has_symbolic(initial):
                raise ExportError(f"{who}: an initial_state given as constant arrays is not exported; give it as "
                                  f"symbolic tensors (an Input or a layer output).")
            init = [get(s) for s in flatten(initial)] if initial is not None else None
            mask = None
            if isinstance(mask_arg, SymbolicTensor):
                mask = get(mask_arg)
                if mask_arg.dtype != torch.bool:
                    mask = b.op("Cast", [mask], f"{prefix}/mask_arg", to=BOOL)
            elif mask_arg is not None:
                raise ExportError(f"{who}: a constant `mask` argument is not exported; pass it as a symbolic tensor.")
            elif masked and initial is None:                 # Keras: the input's mask when called on it alone
                mask = in_mask[0]
            fn = _recurrent.convert_bidirectional if isinstance(layer, Bidirectional) else _recurrent.convert_rnn
            outs = fn(ctx, layer, get(first), init, mask, prefix)
            passed = mask if mask is not None else (in_mask[0] if masked else None)
            if passed is not None:               # rnnstate: compute_mask(input's mask) even when not consumed
                seq = passed if layer.return_sequences else None
                n_out = 2 if isinstance(layer, Bidirectional) and layer.merge_mode is None else 1
                out_masks = [seq] * n_out + [None] * (len(outs) - n_out)
        else:
            if kwargs or len(args) != 1:
                raise ExportError(f"{who}: call arguments other than the input are not exported "
                                  f"(received {sorted(kwargs) or len(args)}).")
            x = get(first)
            if isinstance(layer, Embedding):
                outs = [embedding(ctx, layer, x, prefix, first.dtype)]
                if layer.mask_zero:
                    zero = b.const(0, np.int64) if first.dtype == torch.int64 else b.const(0.0, np.float32)
                    out_masks = [b.op("Not", [b.op("Equal", [x, zero])], f"{prefix}/mask")]
            elif isinstance(layer, Masking):
                y, m = masking(ctx, layer, x, prefix)
                outs, out_masks = [y], [m]
            elif isinstance(layer, TimeDistributed):
                y = _plain(ctx, layer.layer, x, prefix, first.dtype)
                if y is None:
                    raise ExportError(f"{who}: TimeDistributed({type(layer.layer).__name__}) is not exported; "
                                      f"supported inner layers: Dense, Activation, Dropout.")
                outs = [y]
                if masked:
                    out_masks = [in_mask[0]]
            elif isinstance(layer, Concatenate):
                xs = [get(t) for t in first]
                outs = [b.op("Concat", xs, prefix, axis=layer.axis)]
                if masked:
                    out_masks = [concat_mask(b, layer, xs, in_mask, [len(t.shape) for t in first])]
            elif isinstance(layer, Add):
                xs = [get(t) for t in first]
                y = xs[0]
                for v in xs[1:]:
                    y = b.op("Add", [y, v], prefix)
                outs = [y]
                if masked and all(m is not None for m in in_mask):
                    m = in_mask[0]
                    for v in in_mask[1:]:
                        m = b.op("Or", [m, v], f"{prefix}/mask")
                    out_masks = [m]
            else:
                y = _plain(ctx, layer, x, prefix, first.dtype)
                if y is None:
                    raise ExportError(f"{who}: {type(layer).__name__} has no ONNX conversion; supported layers: "
                                      f"{', '.join(SUPPORTED)}.")
                outs = [y]
                if masked:
                    out_masks = [in_mask[0]]
        if len(outs) != len(node.outputs):
            raise ExportError(f"{who}: exported {len(outs)} results where the model has {len(node.outputs)}.")
        for i, (t, v) in enumerate(zip(node.outputs, outs)):
            values[id(t)] = v
            if out_masks is not None and out_masks[i] is not None:
                masks[id(t)] = out_masks[i]

