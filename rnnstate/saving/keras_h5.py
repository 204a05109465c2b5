"""HDF5 weight layouts: Keras 3's (``model.weights.h5``, ``.weights.h5``) and Keras 2's legacy one.

Keras 3 layout (written and read)::

    vars                                  attrs {"name": <model name>}
    layers/<snake class>[_<k>]/vars/<i>   a layer's own variables, i = 0, 1, ... (creation order)
    layers/lstm/cell/vars/0..2            an RNN's cell (kernel, recurrent_kernel, bias)
    layers/bidirectional/forward_layer/cell/vars/...   and backward_layer/...
    layers/time_distributed/layer/vars/...
    layers/functional/layers/...          a model nested in a model

Layers are found by the ``name`` attribute of their ``vars`` group when the file has it (Keras always
writes it), else by Keras' class-name numbering in ``model.layers`` order.

Keras 2 legacy layout (read only; also what Keras 3 writes for ``model.save("m.h5")``)::

    [model_weights/]  attrs {"layer_names": [...]}
        <layer name>/  attrs {"weight_names": [...]}; datasets at those names, in ``layer.weights`` order

Every dataset's shape and dtype is checked against the model, and the total declared size against
the file's size, before any data is read. Standalone ``.weights.h5`` files written here store each
dataset with HDF5's fletcher32 checksum (Keras and h5py read them transparently), so corrupted data
is reported; inside ``.keras`` the zip's CRC does that job and the layout is byte-for-byte Keras'.
Extra carried states (``include_states=True``) go to a ``rnnstate_states/`` group Keras ignores.
"""
from __future__ import annotations

import io

import numpy as np

from .. import serialization
from . import _h5guard, _walk
from ._io import FileFormatError, fail, import_h5py

STATES_GROUP = "rnnstate_states"


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.bytes_):
        return bytes(v).decode("utf-8")
    return str(v)


def _attr_list(obj, key):
    if key not in obj.attrs:
        return None
    v = obj.attrs[key]
    if isinstance(v, (str, bytes)):
        return [_decode(v)]
    return [_decode(x) for x in np.asarray(v).ravel()]


# ---- Keras 3 layout: write ------------------------------------------------------------------------
def write(model, states=None, checksum=False) -> bytes:
    """The ``model.weights.h5`` bytes for `model` (Keras 3 layout); `states`: {path: [arrays]}.
    `checksum`: store each dataset with HDF5's fletcher32 filter (chunked), so corrupted data is
    reported on reading (h5py and Keras read such files transparently)."""
    h5py = import_h5py("<memory>", "writing HDF5 weights")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        def save(obj, prefix):
            g = f.create_group(prefix + "vars")
            g.attrs["name"] = obj.name
            for i, w in enumerate(obj._keras_weights()):
                _dataset(g, str(i), w.numpy(), checksum)

        _walk._walk(model, save)
        if states:
            for p, arrays in states.items():
                for i, a in enumerate(arrays):
                    _dataset(f, f"{STATES_GROUP}/{p}/{i}", a, checksum)
    return buf.getvalue()


def _dataset(group, name, value, checksum):
    dt = getattr(value, "dtype", None)                 # float64/float16 weights kept (as Keras does); else float32
    a = np.ascontiguousarray(value, dtype=dt if dt in (np.float64, np.float16) else np.float32).reshape(np.shape(value))
    if checksum and a.size and a.ndim:
        group.create_dataset(name, data=a, chunks=True, fletcher32=True)
    else:
        group.create_dataset(name, data=a)


# ---- Keras 3 layout: read -------------------------------------------------------------------------
def open_h5(data: bytes, path):
    h5py = import_h5py(path, "reading HDF5 file")
    try:
        return h5py.File(io.BytesIO(data), "r")
    except Exception as e:       # h5py raises OSError / ValueError / RuntimeError on corrupt input
        raise fail(path, f"not a readable HDF5 file ({type(e).__name__}: {e}); truncated or corrupt?", e) from None


def is_legacy(f, path="<memory>") -> bool:
    h5py = import_h5py("<memory>", "reading HDF5 file")
    if "layer_names" in f.attrs:
        return True
    mw = _h5guard.member(h5py, f, "model_weights", path, "the file")
    return isinstance(mw, h5py.Group) and "layer_names" in mw.attrs


def read(model, f, path, nbytes):
    """Keras 3 layout -> {native path: array} for `model`, all checked before any data is read."""
    h5py = import_h5py(path, "reading HDF5 file")
    plan = []           # (WeightRef, dataset)
    seen = set()

    def group(parent, key):
        if parent is None:
            return None
        g = _h5guard.member(h5py, parent, key, path, "the weights")
        return g if isinstance(g, h5py.Group) else None

    def load(obj, g, where):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        own = obj._keras_weights()
        vars_g = group(g, "vars")
        keys = sorted(vars_g.keys()) if vars_g is not None else []
        if len(keys) != len(own):
            names = ", ".join(f"{w.name} {w.shape}" for w in own) or "none"
            raise fail(path, f"{where} ({type(obj).__name__} '{obj.name}') has {len(own)} weight(s) ({names}) "
                             f"but the file holds {len(keys)} at '{(g.name if g is not None else where)}/vars'.")
        for i, w in enumerate(own):
            ds = _h5guard.member(h5py, vars_g, str(i), path, where) if vars_g is not None else None
            if not isinstance(ds, h5py.Dataset):
                raise fail(path, f"{where}: weight {i} (`{w.name}`) is missing from the file.")
            _check_ds(h5py, ds, w, where, path)
            plan.append((w, ds))
        if _walk.is_model(obj):
            subs = _walk.model_layers(obj)
            lg = group(g, "layers")
            by_name = {}
            if lg is not None:
                for key in lg.keys():
                    sg = group(lg, key)
                    vg = group(sg, "vars")
                    if vg is not None and "name" in vg.attrs:
                        by_name.setdefault(_decode(vg.attrs["name"]), sg)
            use_names = set(by_name) == {sub.name for sub in subs}    # else Keras' positional naming
            for sub, n in zip(subs, _walk.container_names(subs, serialization.keras_class_name)):
                sg = by_name[sub.name] if use_names else group(lg, n)
                load(sub, sg, f"layer '{sub.name}'")
            return
        for attr, child in _walk.children(obj):
            cg = group(g, attr)
            if isinstance(child, list):
                for c, n in zip(child, _walk.container_names(child, serialization.keras_class_name)):
                    load(c, group(cg, n), f"{where}/{attr}/{n}")
            else:
                load(child, cg, f"{where}/{attr}")

    load(model, f, "the model")
    return _materialize(model, plan, path, nbytes)


def _check_ds(h5py, ds, w, where, path):
    _h5guard.check_dataset(h5py, ds, path, where)
    if tuple(ds.shape) != tuple(w.shape):
        raise fail(path, f"{where}: weight `{w.name}` must have shape {tuple(w.shape)}; the file holds shape "
                         f"{tuple(ds.shape)}.")
    if ds.dtype.kind != "f":
        raise fail(path, f"{where}: weight `{w.name}` is stored as {ds.dtype}, not as floats.")


def _materialize(model, plan, path, nbytes):
    h5py = import_h5py(path, "reading HDF5 file")
    total = sum(int(np.prod(w.shape, dtype=np.int64)) * ds.dtype.itemsize for w, ds in plan)
    if total > nbytes:
        raise fail(path, f"the weights declare {total} bytes of data but the file is only {nbytes} bytes "
                         f"(compressed or crafted datasets are not accepted).")
    key = {(id(w.layer), w.name): p for p, w in _walk.native_entries(model)}
    out = {}
    for w, ds in plan:
        p = key.get((id(w.layer), w.name))
        if p is None:
            raise fail(path, f"weight {w!r} has no place in the model (internal error).")
        try:
            out[p] = _h5guard.read(h5py, ds, path, f"weight `{p}`", None)
        except FileFormatError:
            raise
        except Exception as e:
            raise fail(path, f"can't read the data of weight `{p}` ({type(e).__name__}: {e}); the file is "
                             f"corrupt.", e) from None
    return out


def read_states(f, path, nbytes):
    """The ``rnnstate_states`` group -> {layer path: [arrays]} (empty if absent)."""
    h5py = import_h5py(path, "reading HDF5 file")
    top = _h5guard.member(h5py, f, STATES_GROUP, path, "the states")
    if top is None:
        return {}
    if not isinstance(top, h5py.Group):
        raise fail(path, f"'{STATES_GROUP}' is not a group.")
    found = {}
    total = 0

    def walk(g, prefix, depth):
        nonlocal total
        if depth > 32:
            raise fail(path, "the states group is nested too deeply.")
        for k in g.keys():
            obj = _h5guard.member(h5py, g, k, path, "the states")
            if isinstance(obj, h5py.Group):
                walk(obj, f"{prefix}{k}/", depth + 1)
            elif isinstance(obj, h5py.Dataset):
                _h5guard.check_dataset(h5py, obj, path, "the states")
                # (B, U); a ConvLSTM's (B, *S, F): the shapes are checked against the model's
                if not k.isdigit() or obj.dtype.kind != "f" or not 2 <= len(obj.shape) <= 5:
                    raise fail(path, f"malformed state entry '{prefix}{k}'.")
                total += int(np.prod(obj.shape, dtype=np.int64)) * obj.dtype.itemsize
                if total > nbytes:
                    raise fail(path, "the states declare more data than the file holds.")
                found.setdefault(prefix.rstrip("/"), {})[int(k)] = obj
    walk(top, "", 0)
    out = {}
    for p, d in found.items():
        if sorted(d) != list(range(len(d))):
            raise fail(path, f"the states of '{p}' are not numbered 0..{len(d) - 1}.")
        out[p] = [_h5guard.read(h5py, d[i], path, f"the states of '{p}'", None) for i in range(len(d))]
    return out


# ---- Keras 2 legacy layout: read ------------------------------------------------------------------
def read_legacy(model, f, path, nbytes):
    """Legacy layout (layer groups with ``weight_names``) -> {native path: array}. Layers are matched by
    name when the file's weighted layers have exactly the model's names, else by order (as Keras)."""
    h5py = import_h5py(path, "reading HDF5 file")
    mw = _h5guard.member(h5py, f, "model_weights", path, "the file")
    root = mw if isinstance(mw, h5py.Group) else f
    names = _attr_list(root, "layer_names")
    if names is None:
        raise fail(path, "the HDF5 file has no `layer_names` attribute: not a Keras weights file.")
    file_layers = []
    for n in names:
        g = _h5guard.member(h5py, root, n, path, f"layer '{n}'")
        if not isinstance(g, h5py.Group):
            raise fail(path, f"layer '{n}' is listed in `layer_names` but has no group in the file.")
        wn = _attr_list(g, "weight_names") or []
        if wn:
            file_layers.append((n, g, wn))
    ours = [l for l in model.layers if l.weights]
    if sorted(n for n, _, _ in file_layers) == sorted(l.name for l in ours):
        by = {n: (g, wn) for n, g, wn in file_layers}
        pairs = [(l, by[l.name]) for l in ours]
    else:
        if len(file_layers) != len(ours):
            raise fail(path, f"the file holds weights for {len(file_layers)} layer(s) "
                             f"({[n for n, _, _ in file_layers][:10]}) but the model has {len(ours)} layer(s) "
                             f"with weights ({[l.name for l in ours][:10]}).")
        pairs = [(l, (g, wn)) for l, (_, g, wn) in zip(ours, file_layers)]
    plan = []
    for layer, (g, wn) in pairs:
        ws = layer.weights
        if len(wn) != len(ws):
            raise fail(path, f"layer '{layer.name}' has {len(ws)} weight(s) but the file holds {len(wn)} "
                             f"({wn[:6]}).")
        for w, n in zip(ws, wn):
            ds = _h5guard.member(h5py, g, n, path, f"layer '{layer.name}'")
            if not isinstance(ds, h5py.Dataset):
                raise fail(path, f"layer '{layer.name}': weight '{n}' is missing from the file.")
            _check_ds(h5py, ds, w, f"layer '{layer.name}'", path)
            plan.append((w, ds))
    return _materialize(model, plan, path, nbytes)


def legacy_config(f, path):
    raw = f.attrs.get("model_config")
    if raw is None:
        raise fail(path, "this HDF5 file holds weights only (no `model_config`); load it with "
                         "`model.load_weights(path)`.")
    return _decode(raw) if not isinstance(raw, str) else raw
