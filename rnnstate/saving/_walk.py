"""Where every weight and every carried state of a model lives, under two naming schemes.

*Native paths* (``.safetensors``): Keras 3's addressing with weight names instead of variable
indices: ``layers/lstm/cell/kernel``, ``layers/lstm_1/cell/bias``,
``layers/bidirectional/forward_layer/cell/kernel``, ``layers/time_distributed/layer/kernel``, and for a
model nested in a model ``layers/functional/layers/dense/kernel``. The layers of a model are named
``snake_case(Keras class name)`` numbered in Keras' layer order (`keras_layer_order`), not by their own
names, so a
weights file loads into any model of the same architecture, whatever its layers are called (as
Keras' ``load_weights``).

*Keras 3 h5 paths* (``model.weights.h5`` inside ``.keras``, ``.weights.h5``): Keras addresses the
layers of a model by ``snake_case(class name)`` numbered in its layer order (``layers/dense``,
``layers/dense_1``), sublayers by attribute (``cell``, ``forward_layer``, ``backward_layer``,
``layer``, ``cells``), and each object's own variables as ``<path>/vars/0``, ``/1``... in creation
order; each ``vars`` group carries the layer's name as attribute ``name``, which the reader uses
instead of the numbering when the file's names are exactly the model's.
"""
from __future__ import annotations

import re

from torch import nn


def keras_snake(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def is_model(layer) -> bool:
    from ..models.functional import Model
    return isinstance(layer, Model)


def model_layers(model):
    """The layers of a model in the order Keras 3 gives them (which fixes the ``dense``, ``dense_1``...
    names in weight files): Sequential's stack as is; for functional models, computed here from the
    graph (`keras_layer_order`) rather than taken from ``model.layers``, so files never depend on how
    rnnstate happens to order ``model.layers``."""
    from ..models.sequential import Sequential
    if isinstance(model, Sequential):
        return list(model.layers)
    return keras_layer_order(model)


def keras_layer_order(model):
    """Keras 3's functional layer order: a layer's depth is its distance from the outputs (a node's depth
    is at least its layer's depth so far and one more than any node consuming it, taking nodes from
    the outputs backwards); deepest first, ties broken by the order in which a depth-first walk from
    the outputs (in output order, arguments before keyword arguments, keyword names sorted) first
    reaches each layer. Inputs that no output needs come last."""
    from .._symbolic import flatten
    inputs = {id(t) for t in model.inputs}
    post, done, first_seen = [], set(), {}

    def node_inputs(node):
        kw = node.kwargs or {}
        return [t for t in flatten((list(node.args), [kw[k] for k in sorted(kw)])) if hasattr(t, "node")]

    def walk(t):
        node = t.node
        if node is None or id(node) in done:
            return
        first_seen.setdefault(node.layer, len(first_seen))
        if id(t) not in inputs:
            for parent in node_inputs(node):
                walk(parent)
        done.add(id(node))
        post.append(node)

    for t in model.outputs:
        walk(t)
    node_depth, layer_depth = {}, {}
    for node in reversed(post):
        d = max(node_depth.get(id(node), 0), layer_depth.get(node.layer, 0))
        node_depth[id(node)] = d
        layer_depth[node.layer] = d
        for parent in node_inputs(node):
            if parent.node is not None:
                node_depth[id(parent.node)] = max(node_depth.get(id(parent.node), 0), d + 1)
    for t in model.inputs:
        if t.layer not in layer_depth:
            layer_depth[t.layer] = 0
            first_seen[t.layer] = -1
    return sorted(layer_depth, key=lambda l: (-layer_depth[l], first_seen[l]))


def children(layer):
    """``[(attr, child)]`` for sublayers reached by attribute (RNN cell, wrapper layers)."""
    from ..layers.base import Layer
    from ..layers.rnn import RNN
    from ..layers.wrappers import Bidirectional, TimeDistributed
    if isinstance(layer, Bidirectional):
        return [("forward_layer", layer.forward_layer), ("backward_layer", layer.backward_layer)]
    if isinstance(layer, TimeDistributed):
        return [("layer", layer.layer)]
    if isinstance(layer, RNN):
        return [("cell", layer.cell)] if isinstance(layer.cell, Layer) else []
    if hasattr(layer, "_keras_children"):            # e.g. MultiHeadAttention's query_dense, key_dense...
        return layer._keras_children() if layer.built else []
    cells = getattr(layer, "cells", None)
    if isinstance(cells, (list, tuple, nn.ModuleList)):
        return [("cells", list(cells))]
    subs = layer._sublayers()
    return [("sublayers", list(subs))] if subs else []


def number_repeats(names):
    """Keras' way of making names unique: the first ``x`` stays ``x``, later ones become ``x_1``, ``x_2``..."""
    used, out = {}, []
    for base in names:
        if base in used:
            used[base] += 1
            out.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            out.append(base)
    return out


def container_names(items, class_name_of):
    """Keras' names for the members of a list: snake_case(class), numbered per name in order."""
    return number_repeats([keras_snake(class_name_of(item)) for item in items])


def _layer_prefixes(model, prefix):
    from ..serialization import keras_class_name
    subs = model_layers(model)
    return [(sub, f"{prefix}layers/{n}/") for sub, n in zip(subs, container_names(subs, keras_class_name))]


def _walk(model, on_layer):
    """Visit every sublayer once (shared layers at first sight) as ``on_layer(layer, prefix)``."""
    from ..serialization import keras_class_name
    seen = {id(model)}

    def visit(layer, prefix):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        on_layer(layer, prefix)
        if is_model(layer):
            for sub, p in _layer_prefixes(layer, prefix):
                visit(sub, p)
            return
        for attr, child in children(layer):
            if isinstance(child, list):
                for c, n in zip(child, container_names(child, keras_class_name)):
                    visit(c, f"{prefix}{attr}/{n}/")
            else:
                visit(child, f"{prefix}{attr}/")

    on_layer(model, "")
    if is_model(model):
        for sub, p in _layer_prefixes(model, ""):
            visit(sub, p)
    else:
        for attr, child in children(model):
            for c in (child if isinstance(child, list) else [child]):
                visit(c, f"{attr}/")


def native_entries(model):
    """``[(path, WeightRef)]`` for every weight of `model` (shared layers once, at first sight)."""
    out = []
    _walk(model, lambda layer, prefix: out.extend((prefix + w.name, w) for w in layer._keras_weights()))
    return out


def stateful_entries(model):
    """``[(path, rnn_layer)]`` for every stateful recurrent layer (``layer._states`` holders)."""
    out = []

    def on_layer(layer, prefix):
        if layer is not model and getattr(layer, "stateful", False) and hasattr(layer, "_states") \
                and hasattr(layer, "reset_states"):
            out.append((prefix.rstrip("/"), layer))

    _walk(model, on_layer)
    return out
