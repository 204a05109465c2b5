"""`model.summary()`: each layer with its output shape, its states and their shapes, and params."""
from __future__ import annotations

from .. import _checks
from .._symbolic import flatten


def _shapes(structure):
    ts = flatten(structure)
    if len(ts) == 1:
        return _checks.fmt_shape(ts[0].shape)
    return "[" + ", ".join(_checks.fmt_shape(t.shape) for t in ts) + "]"


def _states(layer, node):
    """'h (None, 4), c (None, 4) over 3 steps' for a recurrent layer, else ''."""
    from ..layers.rnn import RNN
    from ..layers.wrappers import Bidirectional
    inner = layer.forward_layer if isinstance(layer, Bidirectional) else layer
    if not isinstance(inner, RNN) or not node.args:
        return ""
    x = node.args[0]
    B, T = x.shape[0], x.shape[1]
    names = list(getattr(inner.cell, "state_names", ["h"]))
    parts = [f"{n} {_checks.fmt_shape(s)}" for n, s in zip(names, inner._state_shapes(B))]
    prefix = "fwd+bwd: " if isinstance(layer, Bidirectional) else ""
    steps = f"{T} steps" if T is not None else "any number of steps"
    returned = "returned" if inner.return_state else "internal"
    return f"{prefix}{', '.join(parts)} ({returned}); {steps}"


def print_summary(model, print_fn=None):
    print_fn = print_fn or print
    rows = [("Layer (type)", "Output Shape", "Param #", "States (per sample: carried over time)")]
    for layer in model.layers:
        nodes = [n for n in layer._inbound_nodes if all(id(t) in model_tensor_ids(model) for t in n.outputs)] \
            or layer._inbound_nodes[:1]
        node = nodes[0] if nodes else None
        shape = _shapes(node.structure) if node is not None else "?"
        params = layer.count_params() if layer.built else 0
        rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{params:,}",
                     _states(layer, node) if node is not None else ""))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(4)]
    line = "-" * sum(widths)
    print_fn(f'Model: "{model.name}"')
    print_fn(line)
    print_fn("".join(c.ljust(w) for c, w in zip(rows[0], widths)).rstrip())
    print_fn("=" * sum(widths))
    for r in rows[1:]:
        print_fn("".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print_fn(line)
    total = model.count_params()
    trainable = sum(int(__import__("numpy").prod(w.shape)) for w in model.trainable_weights)
    print_fn(f" Total params: {total:,}")
    print_fn(f" Trainable params: {trainable:,}")
    print_fn(f" Non-trainable params: {total - trainable:,}")
    print_fn(line)


def model_tensor_ids(model):
    ids = getattr(model, "_tensor_ids", None)
    if ids is None:
        ids = {id(t) for n in model._nodes for t in n.outputs} | {id(t) for t in model.inputs}
        model._tensor_ids = ids
    return ids
