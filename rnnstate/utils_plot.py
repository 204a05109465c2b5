"""`plot_model` / `model_to_dot`: the layer graph of a model as a pydot graph (Keras' `keras.utils` pair).

One node per layer (named by the layer's name; nested models expanded get ``<model>/<layer>``), its label
Keras' HTML table: ``name (Class)``, then optional activation, input / output shapes (every flat tensor of
the call: a recurrent layer with ``return_state=True`` shows ``[(None, T, U), (None, U), (None, U)]``), output
dtypes and trainability.  Edges go from the layer that produced each input tensor to the layer that consumed it.
Optional dependencies: ``pydot`` (``pip install rnnstate[plot]``) and, to render a file, Graphviz's ``dot``.
"""
from __future__ import annotations

import html
import os

from ._symbolic import flatten

_NO_PYDOT = ("You must install pydot (`pip install pydot`, or `pip install rnnstate[plot]`) for `{what}` to "
             "work.")
_NO_GRAPHVIZ = ("You must install graphviz (the `dot` program: see instructions at "
                "https://graphviz.gitlab.io/download/, e.g. `apt-get install graphviz`, `brew install graphviz` or "
                "`conda install graphviz`) for `plot_model` to work. `model_to_dot` needs only pydot.")


def _pydot(what):
    try:
        import pydot
    except ImportError as e:
        raise ImportError(_NO_PYDOT.format(what=what)) from e
    return pydot


def _has_graphviz(pydot):
    try:
        pydot.Dot.create(pydot.Dot())
        return True
    except Exception:   # OSError / FileNotFoundError / PydotException, by pydot version
        return False


def _graph(model):
    """(layers, nodes) of a built model: the layers to draw and the graph nodes (layer calls) inside it."""
    from .models import Model, Sequential
    if not isinstance(model, Model):
        raise TypeError(f"plot_model: `model` must be an rnnstate Model or Sequential; received "
                        f"{type(model).__name__}.")
    if isinstance(model, Sequential) and not model._graph_ready:
        from . import _checks
        raise _checks.error(model, "is not built yet: give the input shape (an `Input(...)` first, or "
                                   "`input_shape=` on the first layer) or call it on data before plotting it.")
    return model.layers, model._nodes


def _fmt(tensors):
    shapes = [tuple(t.shape) for t in tensors]
    return "?" if not shapes else str(shapes[0]) if len(shapes) == 1 else str(shapes)


def _node_of(model, layer):
    for node in model._nodes:
        if node.layer is layer:
            return node
    return None


def _label(model, layer, opts):
    from .layers.core import InputLayer
    name, cls = html.escape(layer.name), type(layer).__name__
    head = f"<b>{name}</b> ({cls})" if opts["show_layer_names"] else f"<b>{cls}</b>"
    rows = [f'<tr><td colspan="{{span}}" bgcolor="black"><font point-size="16" color="white">{head}</font></td></tr>']
    act = getattr(layer, "activation", None)
    if opts["show_layer_activations"] and act is not None:
        act_name = getattr(act, "__name__", None) or str(act)
        rows.append('<tr><td colspan="{span}" bgcolor="white"><font point-size="14">Activation: '
                    f'<b>{html.escape(act_name)}</b></font></td></tr>')
    if isinstance(layer, InputLayer):
        ins, outs = [], [t for t in model.inputs if t.layer is layer]
    else:
        node = _node_of(model, layer)
        ins, outs = (node.inputs, node.outputs) if node is not None else ([], [])
    cols = []
    cell = '<td bgcolor="white"><font point-size="14">{}: <b>{}</b></font></td>'
    if opts["show_shapes"]:
        if not isinstance(layer, InputLayer):
            cols.append(cell.format("Input shape", _fmt(ins)))
        cols.append(cell.format("Output shape", _fmt(outs)))
    if opts["show_dtype"]:
        dtypes = [str(t.dtype).replace("torch.", "") for t in outs]
        cols.append(cell.format("Output dtype", (dtypes[0] if len(dtypes) == 1 else str(dtypes)) if dtypes else "?"))
    if opts["show_trainable"] and list(layer.parameters()):
        on = layer.trainable
        cols.append(f'<td bgcolor="{"forestgreen" if on else "firebrick"}"><font point-size="14" color="white">'
                    f'<b>{"Trainable" if on else "Non-trainable"}</b></font></td>')
    span = max(1, len(cols))
    rows = [r.replace("{span}", str(span)) for r in rows]
    if cols:
        rows.append("<tr>" + "".join(cols) + "</tr>")
    return '<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">' + "".join(rows) + "</table>>"


def _add_edge(pydot, dot, src, dst):
    if not dot.get_edge(src, dst):
        edge = pydot.Edge(src, dst)
        edge.set("penwidth", "2")
        dot.add_edge(edge)


def _fill(pydot, dot, model, opts, expand_nested, prefix=""):
    """Add `model`'s layers and edges to `dot`; return (entry(input_index), exit(output_index)) resolvers
    giving the node ids where edges into / out of this model attach."""
    from .models import Model, Sequential
    layers, nodes = _graph(model)
    key = lambda layer: f'"{prefix}{layer.name}"'   # noqa: E731
    nested = {}
    for layer in layers:
        if expand_nested and isinstance(layer, Model):
            sub = pydot.Cluster(graph_name=f"{prefix}{layer.name}", style="dashed", label=layer.name,
                                labeljust="l")
            nested[layer] = _fill(pydot, sub, layer, opts, expand_nested, prefix=f"{prefix}{layer.name}/")
            dot.add_subgraph(sub)
        else:
            node = pydot.Node(key(layer), label=_label(model, layer, opts))
            node.set("fontname", "Helvetica")
            node.set("border", "0")
            node.set("margin", "0")
            dot.add_node(node)

    def entry(layer, index):
        return nested[layer][0](index) if layer in nested else key(layer)

    def exit_(layer, index):
        return nested[layer][1](index) if layer in nested else key(layer)

    if isinstance(model, Sequential):
        for a, b in zip(layers, layers[1:]):
            _add_edge(pydot, dot, exit_(a, 0), entry(b, 0))
        first = layers[0]
        return (lambda i: entry(first, i)), (lambda i: exit_(layers[-1], i))
    for node in nodes:
        for i, t in enumerate(node.inputs):
            src = t.layer
            _add_edge(pydot, dot, exit_(src, t.index), entry(node.layer, i))
    inputs = [t.layer for t in model.inputs]
    outputs = model.outputs
    return (lambda i: key(inputs[i])), (lambda i: exit_(outputs[i].layer, outputs[i].index))


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=200, subgraph=False, show_layer_activations=False, show_trainable=False,
                 splines="ortho", **kwargs):
    """The model's layer graph as a ``pydot.Dot`` (a ``pydot.Cluster`` with ``subgraph=True``)."""
    pydot = _pydot("model_to_dot")
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("model_to_dot: argument `layer_range` is not supported (Keras 3 dropped it too).")
    if kwargs:
        raise ValueError(f"model_to_dot: unrecognized keyword arguments: {sorted(kwargs)}.")
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"model_to_dot: `rankdir` must be 'TB' or 'LR'; received {rankdir!r}.")
    _graph(model)
    if subgraph:
        dot = pydot.Cluster(graph_name=model.name, style="dashed", label=model.name, labeljust="l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    opts = dict(show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                show_layer_activations=show_layer_activations, show_trainable=show_trainable)
    _fill(pydot, dot, model, opts, expand_nested)
    return dot


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
               expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False, splines="ortho",
               **kwargs):
    """Draw the model's layer graph into `to_file` (format from its extension, ``png`` without one)."""
    pydot = _pydot("plot_model")
    if not _has_graphviz(pydot):
        raise ImportError(_NO_GRAPHVIZ)
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                       rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations, show_trainable=show_trainable,
                       splines=splines, **kwargs)
    to_file = os.fspath(to_file)
    ext = os.path.splitext(to_file)[1][1:] or "png"
    dot.write(to_file, format=ext)
    if ext != "pdf":
        try:
            from IPython import display
            return display.Image(filename=to_file)
        except ImportError:
            pass
    return None
