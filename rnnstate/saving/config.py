"""Model graphs <-> Keras-shaped configs.

Functional models follow Keras 3's functional config::

    {"name": ..., "trainable": ...,
     "layers": [{"module", "class_name", "config", "registered_name",
                 "name": <layer name>,
                 "inbound_nodes": [{"args": [...], "kwargs": {...}}, ...]}, ...],
     "input_layers": <structure of [layer name, node index, tensor index]>,
     "output_layers": <same>}

Inside ``args``/``kwargs`` a symbolic tensor is
``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history": [layer, node, index]}}``,
so call keyword arguments holding tensors, such as ``initial_state=[h, c]`` (how encoder-decoders
are wired), round-trip. The node index counts only the nodes of that layer that belong to the model
being saved, in creation order. Keras 2's node format (``[[name, node, index, kwargs], ...]``, with an
RNN's initial states as extra inputs) is read too.

Sequential models follow Keras' ``{"name", "trainable", "layers": [InputLayer spec, layer specs...],
"build_input_shape"}``.
"""
from __future__ import annotations

import torch

from .. import serialization
from .._symbolic import SymbolicTensor, flatten

_TENSOR = "__keras_tensor__"


# ---- writing ------------------------------------------------------------------------------------
def model_config(model) -> dict:
    from ..models.sequential import Sequential
    if isinstance(model, Sequential):
        return _sequential_config(model)
    return _functional_config(model)


def model_spec(model) -> dict:
    """The full spec (``class_name`` + ``config``), as ``to_json`` writes it."""
    return serialization.serialize_layer(model)


def _sequential_config(model) -> dict:
    layers = []
    shape = None
    if getattr(model, "_graph_ready", False) and model._input_tensor is not None:
        inp = model._input_tensor.layer
        layers.append(serialization.serialize_layer(inp))
        shape = list(inp.batch_shape)
    layers += [serialization.serialize_layer(l) for l in model.layers]
    return {"name": model.name, "trainable": model.trainable, "layers": layers, "build_input_shape": shape}


def _functional_config(model) -> dict:
    from ..layers.core import InputLayer
    in_model = {id(n) for n in model._nodes} | {id(t.node) for t in model.inputs}
    node_index = {}
    per_layer = {}
    for layer in model.layers:
        nodes = [n for n in layer._inbound_nodes if id(n) in in_model]
        per_layer[id(layer)] = nodes
        for i, n in enumerate(nodes):
            node_index[id(n)] = i

    def ref(t):
        if t.node is None or id(t.node) not in node_index:
            raise ValueError(f"Model '{model.name}': a tensor used in the graph ({t!r}) was not produced inside "
                             f"the model; it can't be saved.")
        return [t.node.layer.name, node_index[id(t.node)], t.index]

    def enc(v, where):
        if isinstance(v, SymbolicTensor):
            return {"class_name": _TENSOR, "config": {"shape": list(v.shape), "dtype": _dtype_str(v.dtype),
                                                      "keras_history": ref(v)}}
        if isinstance(v, (list, tuple)):
            return [enc(x, where) for x in v]
        if isinstance(v, dict):
            return {str(k): enc(x, where) for k, x in v.items()}
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise ValueError(f"Model '{model.name}': {where} has an argument of type {type(v).__name__} that "
                         f"can't be written to a config (only symbolic tensors, lists, dicts, numbers, "
                         f"strings and None can).")

    specs = []
    for layer in model.layers:
        spec = serialization.serialize_layer(layer)
        spec["name"] = layer.name
        nodes = []
        if not isinstance(layer, InputLayer):
            for n in per_layer[id(layer)]:
                where = f"the call of layer '{layer.name}'"
                nodes.append({"args": enc(list(n.args), where), "kwargs": enc(dict(n.kwargs), where)})
        spec["inbound_nodes"] = nodes
        specs.append(spec)

    def struct(s):
        if isinstance(s, SymbolicTensor):
            return ref(s)
        if isinstance(s, dict):
            return {str(k): struct(v) for k, v in s.items()}
        return [struct(v) for v in s]

    return {"name": model.name, "trainable": model.trainable, "layers": specs,
            "input_layers": struct(model._input_structure), "output_layers": struct(model._output_structure)}


def _dtype_str(dt):
    return str(dt).replace("torch.", "")


# ---- reading ------------------------------------------------------------------------------------
def sequential_from_config(cls, config):
    from ..layers.core import InputLayer
    _require(isinstance(config, dict), "a Sequential config must be a dict")
    layers = config.get("layers", [])
    _require(isinstance(layers, list), "the 'layers' of a Sequential config must be a list")
    model = cls(name=config.get("name"))
    for spec in layers:
        model.add(serialization.deserialize_layer(spec))
    shape = config.get("build_input_shape")
    if not model._graph_ready and model.layers and isinstance(shape, list) and len(shape) >= 2 \
            and not any(isinstance(l, InputLayer) for l in model.layers):
        model.build(tuple(_dim(d) for d in shape))
    if config.get("trainable") is False:
        model.trainable = False
    return model


def functional_from_config(cls, config):
    from ..layers.core import InputLayer
    _require(isinstance(config, dict), "a functional model config must be a dict")
    specs = config.get("layers")
    _require(isinstance(specs, list), "a functional model config needs a 'layers' list")
    created, order = {}, []
    for spec in specs:
        _require(isinstance(spec, dict), "every entry of 'layers' must be a layer spec dict")
        layer = serialization.deserialize_layer(spec)
        name = spec.get("name", layer.name)
        _require(isinstance(name, str), f"layer names must be strings; received {name!r:.50}")
        _require(name not in created, f"the layer name {name!r} appears twice in 'layers'")
        nodes = spec.get("inbound_nodes", [])
        _require(isinstance(nodes, list), f"'inbound_nodes' of layer {name!r} must be a list")
        if isinstance(layer, InputLayer):
            nodes = []
        created[name] = layer
        order.append((name, layer, nodes))

    outputs = {}          # (layer name, node index) -> flat list of output tensors
    legacy = False
    for name, layer, _ in order:
        if isinstance(layer, InputLayer):
            outputs[(name, 0)] = [layer.output_tensor]
    done = {name: 0 for name, _, _ in order}

    class _NotReady(Exception):
        pass

    def lookup(name, node, index):
        _require(isinstance(name, str) and name in created,
                 f"a node refers to layer {name!r:.60}, which is not in 'layers'")
        _require(_is_index(node) and _is_index(index), f"invalid tensor reference {[name, node, index]!r:.80}")
        key = (name, node)
        if key not in outputs:
            raise _NotReady(f"node {node} of layer '{name}'")
        outs = outputs[key]
        _require(index < len(outs), f"tensor {index} of layer '{name}' node {node} does not exist "
                                    f"(that node has {len(outs)} output(s))")
        return outs[index]

    def dec(v):
        if isinstance(v, dict):
            cn = v.get("class_name")
            if cn == _TENSOR:
                cfg = v.get("config")
                _require(isinstance(cfg, dict) and isinstance(cfg.get("keras_history"), list)
                         and len(cfg["keras_history"]) == 3, "malformed tensor reference in a node")
                return lookup(*cfg["keras_history"])
            if cn == "__tuple__":
                cfg = v.get("config")
                _require(isinstance(cfg, dict) and isinstance(cfg.get("value"), list), "malformed tuple in a node")
                return [dec(x) for x in cfg["value"]]
            _require(cn is None, f"a node argument is an object of class {cn!r:.60}; rnnstate rebuilds only "
                                 f"tensors, lists, dicts and plain values in layer calls")
            return {k: dec(x) for k, x in v.items()}
        if isinstance(v, list):
            return [dec(x) for x in v]
        _require(v is None or isinstance(v, (bool, int, float, str)), f"unsupported node argument {v!r:.60}")
        return v

    def call_node(name, layer, node):
        nonlocal legacy
        if isinstance(node, dict):
            args = dec(node.get("args", []))
            kwargs = dec(node.get("kwargs", {}))
            _require(isinstance(args, list) and isinstance(kwargs, dict), f"malformed node of layer '{name}'")
        elif isinstance(node, list):                          # Keras 2: [[name, node, index, kwargs], ...]
            legacy = True
            tensors, kwargs = [], {}
            for entry in node:
                _require(isinstance(entry, list) and len(entry) in (3, 4), f"malformed node of layer '{name}'")
                tensors.append(lookup(*entry[:3]))
                if len(entry) == 4:
                    _require(isinstance(entry[3], dict), f"malformed node kwargs of layer '{name}'")
                    kwargs = dict(_dec_legacy_kwargs(entry[3], lookup, created))
            _require(tensors, f"an empty node in layer '{name}'")
            if len(tensors) == 1:
                args = [tensors[0]]
            elif _takes_initial_state(layer) and "initial_state" not in kwargs:
                args, kwargs = [tensors[0]], {**kwargs, "initial_state": tensors[1:]}
            else:
                args = [tensors]
        else:
            raise _bad(f"malformed node of layer '{name}'")
        kwargs.pop("training", None)
        if kwargs.get("mask", 0) is None:
            kwargs.pop("mask")
        if "initial_state" in kwargs and kwargs["initial_state"] is None:
            kwargs.pop("initial_state")
        return layer(*args, **kwargs)

    waiting = {}
    progress = True
    while progress:
        progress = False
        for name, layer, nodes in order:
            while done[name] < len(nodes):
                try:
                    out = call_node(name, layer, nodes[done[name]])
                except _NotReady as e:
                    waiting[name] = str(e)
                    break
                outputs[(name, done[name])] = flatten(out)
                done[name] += 1
                progress = True
    stuck = [name for name, _, nodes in order if done[name] < len(nodes)]
    if stuck:
        name = stuck[0]
        raise _bad(f"the graph can't be rebuilt: node {done[name]} of layer '{name}' needs {waiting[name]}, "
                   f"which is never created")

    def struct(s, top=True):
        if isinstance(s, list) and len(s) in (3, 4) and isinstance(s[0], str):
            return lookup(*s[:3])
        if isinstance(s, dict):
            return {k: struct(v, False) for k, v in s.items()}
        _require(isinstance(s, list) and s, "malformed 'input_layers' / 'output_layers'")
        out = [struct(v, False) for v in s]
        if legacy and top and len(out) == 1:
            return out[0]
        return out

    try:
        inputs = struct(config.get("input_layers"))
        outputs_s = struct(config.get("output_layers"))
    except _NotReady as e:
        raise _bad(f"a model input/output refers to {e}, which the config never creates") from None
    model = cls(inputs=inputs, outputs=outputs_s, name=config.get("name"))
    if config.get("trainable") is False:
        model.trainable = False
    return model


def _dec_legacy_kwargs(kw, lookup, created):
    """Keras 2 node kwargs: tensors appear as [layer name, node, index] lists."""
    def dec(v):
        if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and v[0] in created \
                and _is_index(v[1]) and _is_index(v[2]):
            return lookup(*v)
        if isinstance(v, list):
            return [dec(x) for x in v]
        if isinstance(v, dict):
            return {k: dec(x) for k, x in v.items()}
        return v
    return {k: dec(v) for k, v in kw.items()}


def _takes_initial_state(layer):
    from ..layers.rnn import RNN
    from ..layers.wrappers import Bidirectional
    return isinstance(layer, (RNN, Bidirectional))


def _is_index(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < (1 << 31)


def _dim(d):
    return None if d is None else int(d)


def _bad(msg):
    return ValueError(msg + ".")


def _require(cond, msg):
    if not cond:
        raise _bad(msg)


def zero_initializers(obj):
    """A copy of a spec with every ``*_initializer`` replaced by ``"zeros"`` (for the dry build)."""
    if isinstance(obj, dict):
        return {k: ("zeros" if isinstance(k, str) and k.endswith("_initializer") and v is not None
                    else zero_initializers(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [zero_initializers(v) for v in obj]
    return obj


def build_dry(spec):
    """Build the model a spec describes on torch's ``meta`` device: every class, argument, shape and
    graph connection is checked and every weight shape known, yet no weight memory is allocated."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            return serialization.deserialize_layer(zero_initializers(spec))


# ---- value checks on a spec read from a file ---------------------------------------------------------
_SHAPE_KEYS = ("batch_shape", "batch_input_shape", "input_shape", "shape", "build_input_shape")
_BOOL_KEYS = {"trainable", "stateful", "return_sequences", "return_state", "go_backwards", "unroll",
              "time_major", "use_bias", "reset_after", "unit_forget_bias", "mask_zero", "sparse", "ragged",
              "return_cell_sequence", "return_gate_sequences", "zero_output_for_mask", "use_cudnn"}


def _bool_params(cls):
    import inspect
    out = set()
    for c in cls.__mro__:
        init = c.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            continue
        out |= {n for n, p in sig.parameters.items() if isinstance(p.default, bool)}
    return out


def check_values(spec, where="the config"):
    """Refuse wrongly typed values in every layer config of `spec` before anything is built: flags must
    be JSON booleans (``"no"`` is not False), shapes lists of positive integers or null. Raises
    ValueError naming the layer, the key, what was expected and what was received."""
    reg = serialization.registry()

    def walk(o, depth):
        if depth > 200:
            raise _bad(f"{where} is nested too deeply")
        if isinstance(o, list):
            for v in o:
                walk(v, depth + 1)
            return
        if not isinstance(o, dict):
            return
        cn, c = o.get("class_name"), o.get("config")
        if isinstance(cn, str) and cn in reg and isinstance(c, dict):
            who = f"layer {c.get('name', cn)!r:.60} ({cn})"
            bools = _BOOL_KEYS | _bool_params(reg[cn])
            for k, v in c.items():
                if k in bools and not isinstance(v, bool):
                    raise _bad(f"{who}: config `{k}` must be true or false; received {v!r:.60}")
                if k in _SHAPE_KEYS and v is not None:
                    if not isinstance(v, list) or len(v) > 16 or not all(
                            d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 < d < (1 << 40))
                            for d in v):
                        raise _bad(f"{who}: config `{k}` must be a list of positive integers or null; "
                                   f"received {v!r:.80}")
            extras = o.get("rnnstate_options")
            if isinstance(extras, dict):
                for k, v in extras.items():
                    if k in bools and not isinstance(v, bool):
                        raise _bad(f"{who}: option `{k}` must be true or false; received {v!r:.60}")
        for v in o.values():
            walk(v, depth + 1)

    walk(spec, 0)
