"""save / load entry points: formats are chosen by extension when writing, by content when reading."""
from __future__ import annotations

import datetime
import io
import json
import os
import zipfile

import numpy as np
import torch

from .. import serialization
from ..states import access
from . import _h5guard, _walk, config as cfg, keras_h5, native, training_state
from ._io import (MAX_JSON_BYTES, MAX_MEMBER_BYTES, MAX_ZIP_RATIO, FileFormatError, atomic_write,
                  check_overwrite, fail, read_bytes, sniff)

KERAS_CONFIG = "config.json"
KERAS_METADATA = "metadata.json"
KERAS_WEIGHTS = "model.weights.h5"
MAX_PARAMS_FROM_JSON = 1 << 31


def _version():
    from .. import __version__
    return __version__


def _ext(path):
    p = os.fspath(path).lower()
    for e in (".weights.h5", ".keras", ".safetensors", ".h5", ".hdf5"):
        if p.endswith(e):
            return e
    return os.path.splitext(p)[1]


def _model_check(model, what):
    if not _walk.is_model(model):
        raise TypeError(f"{what} expects an rnnstate Model or Sequential; received {type(model).__name__}.")


# ---- states -----------------------------------------------------------------------------------------
def _collect_states(model):
    out = {}
    for p, layer in _walk.stateful_entries(model):
        st = layer._states
        if st is not None:
            out[p] = [(s.float() if s.dtype == torch.bfloat16 else s).detach().cpu().numpy() for s in st]
    return out


def _check_states(model, states, path):
    layers = dict(_walk.stateful_entries(model))
    for p, arrays in states.items():
        layer = layers.get(p)
        if layer is None:
            raise fail(path, f"the file holds carried states for '{p}', which is not a stateful layer of the "
                             f"model (stateful layers: {sorted(layers) or 'none'}).")
        sizes = layer.state_size
        if len(arrays) != len(sizes):
            raise fail(path, f"'{p}' carries {len(sizes)} state(s); the file holds {len(arrays)}.")
        batch = arrays[0].shape[0] if arrays and arrays[0].ndim >= 2 else None
        for a, want in zip(arrays, layer._state_shapes(batch)):     # (B, U), or (B, *S, F) for ConvLSTM
            if tuple(a.shape) != tuple(want):
                raise fail(path, f"a carried state of '{p}' has shape {a.shape}; expected {tuple(want)}.")
        known = access.known_batch(layer)
        if known is not None and batch != known:
            raise fail(path, f"the carried states of stateful layer '{p}' have batch size {batch}; the layer "
                             f"runs at batch size {known} (declared by its input or taken from its first call).")


def _restore_states(model, states):
    layers = dict(_walk.stateful_entries(model))
    for p, arrays in states.items():
        layers[p].reset_states([np.array(a) for a in arrays])


def _native_states(tensors, path):
    out = {}
    for name, a in tensors.items():
        if name.startswith(native.STATES_PREFIX):
            p, _, i = name[len(native.STATES_PREFIX):].rpartition("/")
            if not p or not i.isdigit():
                raise fail(path, f"malformed state entry {name!r:.80}.")
            out.setdefault(p, {})[int(i)] = a
    res = {}
    for p, d in out.items():
        if sorted(d) != list(range(len(d))):
            raise fail(path, f"the states of '{p}' are not numbered 0..{len(d) - 1}.")
        res[p] = [d[i] for i in range(len(d))]
    return res


# ---- weights: check and assign --------------------------------------------------------------------
def _check_weights(model, arrays, path):
    entries = _walk.native_entries(model)
    expected = {p: tuple(w.shape) for p, w in entries}
    missing = [p for p in expected if p not in arrays]
    extra = [p for p in arrays if p not in expected]
    if missing:
        raise fail(path, f"{len(missing)} weight(s) of the model are missing from the file: {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''}.")
    if extra:
        raise fail(path, f"the file holds {len(extra)} weight(s) the model doesn't have: {extra[:8]}"
                         f"{' ...' if len(extra) > 8 else ''} (a different architecture?).")
    for p, shape in expected.items():
        if tuple(arrays[p].shape) != shape:
            raise fail(path, f"weight '{p}' must have shape {shape}; the file holds shape "
                             f"{tuple(arrays[p].shape)}.")


def _assign(model, arrays):
    key = {(id(w.layer), w.name): p for p, w in _walk.native_entries(model)}
    values = []
    for w in model.weights:
        a = np.array(arrays[key[(id(w.layer), w.name)]])
        values.append(a if a.dtype.kind == "f" else a.astype(np.float32))     # assigned in the weight's dtype
    model.set_weights(values)


# ---- building from a spec ---------------------------------------------------------------------------
def _as_error(path, e):
    if isinstance(e, FileFormatError):
        return e
    return fail(path, str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}", e)


def _dry(spec, path):
    """The model `spec` describes, built on torch's meta device (shapes only, no weight memory). Any
    failure refuses the file: there is no fallback to a real build, so nothing is allocated for a
    config before its parameter count is known (`_param_count`)."""
    if not isinstance(spec, dict):
        raise fail(path, "the model config is not a JSON object.")
    try:
        cfg.check_values(spec)
        model = cfg.build_dry(spec)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, NotImplementedError,
            RecursionError, RuntimeError, OverflowError) as e:
        raise _as_error(path, e) from None
    if not _walk.is_model(model):
        raise fail(path, f"the config describes a {type(model).__name__} layer, not a model.")
    return model


def _param_count(dry):
    """Elements of the dry-built model's weights (Keras' weights, the ones a file stores)."""
    return sum(int(np.prod(w.shape, dtype=np.int64)) for w in dry.weights)


def _check_budget(dry, path, nbytes):
    """Refuse a config whose weights can't be in a file of `nbytes` bytes (at least 2 bytes a parameter:
    float16, the smallest dtype read), before the real model (and its memory, 4 bytes a parameter) exists."""
    n = _param_count(dry)
    if 2 * n > nbytes:
        raise fail(path, f"the model config declares {n:,} parameters (at least {2 * n:,} bytes of weights) but "
                         f"the file is only {nbytes:,} bytes: the weights can't be in it (crafted or "
                         f"inconsistent file).")


def _real(spec, path):
    try:
        model = serialization.deserialize_layer(spec)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, NotImplementedError,
            RecursionError, RuntimeError, OverflowError) as e:
        raise _as_error(path, e) from None
    if not _walk.is_model(model):
        raise fail(path, f"the config describes a {type(model).__name__} layer, not a model.")
    return model


def _finish(spec, read_arrays, read_states, path, nbytes):
    """dry build (shapes only) -> parameter budget against the file's size -> read + check weights and
    states against the dry model -> real build -> assign. Nothing is built for real, returned or
    half-assigned unless every check has passed."""
    dry = _dry(spec, path)
    _check_budget(dry, path, nbytes)
    arrays = read_arrays(dry)
    _check_weights(dry, arrays, path)
    states = read_states()
    _check_states(dry, states, path)
    model = _real(spec, path)
    _assign(model, arrays)
    _restore_states(model, states)
    return model


# ---- JSON ---------------------------------------------------------------------------------------------
def _loads_json(text, path, what="config"):
    if isinstance(text, bytes):
        if len(text) > MAX_JSON_BYTES:
            raise fail(path, f"the {what} is {len(text)} bytes, over the {MAX_JSON_BYTES}-byte limit.")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise fail(path, f"the {what} is not UTF-8 text; the file is corrupt.", e) from None
    if len(text) > MAX_JSON_BYTES:
        raise fail(path, f"the {what} is over the {MAX_JSON_BYTES}-byte limit.")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise fail(path, f"the {what} is not valid JSON ({e}).", e) from None


def to_json(model, **kwargs) -> str:
    return json.dumps(_keras_spec(model), **kwargs)


def model_from_json(json_string, custom_objects=None, max_params=MAX_PARAMS_FROM_JSON):
    """A model (fresh weights) from ``model.to_json()`` output or a Keras ``config.json``. Only rnnstate's
    registered classes are resolved; configs whose weights would exceed `max_params` parameters are
    refused before any allocation (``max_params=None`` lifts the cap)."""
    _no_custom(custom_objects)
    where = "<json string>"
    spec = _loads_json(json_string, where)
    dry = _dry(spec, where)
    n = _param_count(dry)
    if max_params is not None and n > max_params:
        raise fail(where, f"the model would have {n:,} parameters, over max_params={max_params:,}; pass "
                          f"max_params=None if that is intended.")
    return _real(spec, where)


def model_from_config(config, custom_objects=None):
    """``{"class_name", "config"}`` (or a functional model's bare config) -> model."""
    _no_custom(custom_objects)
    if isinstance(config, dict) and "class_name" not in config and "layers" in config:
        config = {"class_name": "Functional" if "input_layers" in config else "Sequential", "config": config}
    return model_from_json(json.dumps(config))


def _no_custom(custom_objects):
    if custom_objects:
        raise ValueError("custom_objects are not supported: rnnstate resolves classes only from its own "
                         "registry and never loads user code.")


def _h5(path, fn, *args):
    """Run an HDF5 reader; any error h5py raises on damaged structures becomes a FileFormatError."""
    try:
        return fn(*args)
    except FileFormatError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise fail(path, f"the HDF5 data is unreadable ({type(e).__name__}: {e}); the file is corrupt.", e) \
            from None


# ---- .keras -------------------------------------------------------------------------------------------
def _keras_spec(model, strict=False):
    """The model's spec in the form Keras reads (``to_json``, native files and ``.keras`` all use it):
    rnnstate-only options leave the layer configs for the spec's ``"rnnstate_options"`` (Keras ignores
    that key; rnnstate merges it back), and ``batch_input_shape`` (redundant inside a model, unknown to
    Keras 3) is dropped. `strict` (``.keras`` files): options that change a layer's outputs
    (``return_cell_sequence``, ``return_gate_sequences``) are refused, as Keras could not rebuild the
    graph."""
    spec = cfg.model_spec(model)
    reg = serialization.registry()

    def fix(o):
        if isinstance(o, dict):
            if o.get("class_name") == "StackedCells" and isinstance(o.get("config"), dict):
                o = {**o, "module": "keras.layers", "class_name": "StackedRNNCells", "registered_name": None}
            if isinstance(o.get("class_name"), str) and isinstance(o.get("config"), dict) \
                    and (o["class_name"] in reg):
                c = dict(o["config"])
                c.pop("batch_input_shape", None)
                extras = {}
                for k in serialization.RNNSTATE_ONLY_OPTIONS:
                    if k in c:
                        extras[k] = c.pop(k)
                for k in ("return_cell_sequence", "return_gate_sequences"):
                    if strict and extras.get(k):
                        raise ValueError(f"layer '{c.get('name')}' uses `{k}=True`, which Keras' format can't "
                                         f"represent (Keras layers return no such outputs); save it as "
                                         f"'.safetensors' (rnnstate's format) instead.")
                o = dict(o, config=c)
                if extras:
                    o["rnnstate_options"] = extras
            return {k: fix(v) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v) for v in o]
        return o

    return fix(spec)


def _dumps_keras(model, include_states):
    spec = _keras_spec(model, strict=True)
    meta = {"keras_version": "3.0.0", "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
            "saved_by": f"rnnstate {_version()}"}
    weights = keras_h5.write(model, _collect_states(model) if include_states else None)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(KERAS_METADATA, json.dumps(meta))
        zf.writestr(KERAS_CONFIG, json.dumps(spec))
        zf.writestr(KERAS_WEIGHTS, weights)
    return buf.getvalue()


def _zip_member(zf, name, limit, path):
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise fail(path, f"the archive has no '{name}' (members: {zf.namelist()[:10]}); not a Keras 3 "
                         f".keras file.") from None
    if info.file_size > limit:
        raise fail(path, f"'{name}' declares {info.file_size} bytes, over the {limit}-byte limit.")
    if info.file_size > (1 << 20) and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
        raise fail(path, f"'{name}' declares {info.file_size} bytes compressed into {info.compress_size}: "
                         f"refused as a likely decompression bomb.")
    try:
        with zf.open(info) as fh:
            data = fh.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise fail(path, f"can't read '{name}' from the archive ({e}); the file is corrupt.", e) from None
    except Exception as e:      # zlib.error, lzma errors...
        raise fail(path, f"can't read '{name}' from the archive ({type(e).__name__}: {e}).", e) from None
    if len(data) != info.file_size:
        raise fail(path, f"'{name}' holds {len(data)} bytes but declares {info.file_size}; the file is corrupt.")
    return data


def _open_zip(data, path):
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise fail(path, f"not a readable zip archive ({e}); truncated or corrupt .keras file?", e) from None


def _load_keras(data, path):
    with _open_zip(data, path) as zf:
        names = zf.namelist()
        if KERAS_WEIGHTS not in names and any(n.startswith("model.weights") for n in names):
            raise fail(path, "only the .h5 weights layout of .keras files is supported (this one has "
                             f"{[n for n in names if n.startswith('model.weights')]}).")
        spec = _loads_json(_zip_member(zf, KERAS_CONFIG, MAX_JSON_BYTES, path), path, KERAS_CONFIG)
        wdata = _zip_member(zf, KERAS_WEIGHTS, MAX_MEMBER_BYTES, path)
        if KERAS_METADATA in names:         # checked: a damaged member is an error, not ignored
            _loads_json(_zip_member(zf, KERAS_METADATA, 1 << 20, path), path, KERAS_METADATA)
    with keras_h5.open_h5(wdata, path) as f:
        return _finish(spec, lambda dry: _h5(path, keras_h5.read, dry, f, path, len(wdata)),
                       lambda: _h5(path, keras_h5.read_states, f, path, len(wdata)), path, len(wdata))


# ---- legacy .h5 -----------------------------------------------------------------------------------
def _load_legacy(data, path):
    with keras_h5.open_h5(data, path) as f:
        text = _h5(path, _legacy_config_text, f, path)
        spec = _loads_json(text, path, "model_config")
        return _finish(spec, lambda dry: _h5(path, keras_h5.read_legacy, dry, f, path, len(data)), lambda: {},
                       path, len(data))


def _legacy_config_text(f, path):
    if "model_config" not in f.attrs:
        if keras_h5.is_legacy(f, path) or _h5guard.has(f, "vars") or _h5guard.has(f, "layers"):
            raise fail(path, "this HDF5 file holds weights only (no model config); load it with "
                             "`model.load_weights(path)` on a model of the same architecture.")
        raise fail(path, "an HDF5 file without a Keras model config.")
    if not _h5guard.has(f, "model_weights"):
        raise fail(path, "the legacy HDF5 file has no 'model_weights' group.")
    return keras_h5.legacy_config(f, path)


# ---- native ---------------------------------------------------------------------------------------------
def _dumps_native(model, include_states, with_config):
    tensors = {p: w.numpy() for p, w in _walk.native_entries(model)}
    meta = {"kind": "model" if with_config else "weights", "rnnstate_version": _version()}
    if with_config:
        meta["config"] = json.dumps(_keras_spec(model))
        train_meta, train_tensors = training_state.collect(model)
        meta.update(train_meta)
        tensors.update(train_tensors)
    if include_states:
        for p, arrays in _collect_states(model).items():
            for i, a in enumerate(arrays):
                tensors[f"{native.STATES_PREFIX}{p}/{i}"] = a
        meta["states"] = "1"
    return native.dumps(tensors, meta)


def _split_native(tensors):
    tensors, _ = training_state.split(tensors)
    return {k: v for k, v in tensors.items() if not k.startswith(native.STATES_PREFIX)}


def _load_native(data, path, compile=True):
    meta, tensors = native.loads(data, path)
    spec = native.parse_config(meta, path)
    model = _finish(spec, lambda dry: _split_native(tensors), lambda: _native_states(tensors, path), path,
                    len(data))
    if compile and training_state.KEY in meta:
        training_state.restore(model, meta, training_state.split(tensors)[1], path)
    return model


# ---- public -------------------------------------------------------------------------------------------
def save_model(model, filepath, overwrite=True, include_states=False, **kwargs):
    """Save architecture + weights (+ carried states with ``include_states=True``).

    ``.keras``: Keras 3's format (zip of config.json, metadata.json, model.weights.h5), loadable by
    ``keras.models.load_model``. ``.safetensors``: rnnstate's native format (see
    ``rnnstate.saving.native``). The write is atomic: the previous file survives any interruption.
    """
    _model_check(model, "save")
    kwargs.pop("zipped", None)
    if kwargs:
        raise TypeError(f"save: unexpected keyword argument(s) {sorted(kwargs)}.")
    ext = _ext(filepath)
    if ext == ".keras":
        data = _dumps_keras(model, include_states)
    elif ext == ".safetensors":
        data = _dumps_native(model, include_states, with_config=True)
    elif ext in (".h5", ".hdf5", ".weights.h5"):
        raise ValueError(f"save: '{os.fspath(filepath)}': writing Keras' legacy HDF5 model format is not "
                         f"supported (it is read-only here); use a '.keras' path (Keras 3 format) or "
                         f"'.safetensors' (rnnstate's format). For weights only, use `save_weights`.")
    else:
        raise ValueError(f"save: '{os.fspath(filepath)}' has no known extension; use '.keras' (Keras 3 "
                         f"format, readable by Keras) or '.safetensors' (rnnstate's native format).")
    check_overwrite(filepath, overwrite)
    atomic_write(filepath, data)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model saved by rnnstate (``.safetensors``, ``.keras``), by Keras 3 (``.keras``, ``.h5``)
    or by Keras 2 (``.h5``). The format is recognised from the file's first bytes.

    Never executes code: classes come only from rnnstate's registry (an unknown class is refused, and
    a ``Lambda`` too unless ``safe_mode=False``), and no pickle is read. Every size, shape and count in the file is checked before the
    model is built and before any weight is assigned; a bad file raises ``ValueError``
    (``rnnstate.saving.FileFormatError``) naming the file and the problem. With `compile` (default)
    a native file saved from a compiled model comes back compiled, with its optimizer state, so
    `fit` resumes where it stopped (``rnnstate.saving.training_state``: when the optimizer is one of
    rnnstate's and losses/metrics are given by name). `safe_mode` (Keras'): a
    file holding a ``Lambda`` layer (Python code) is refused unless ``safe_mode=False`` is passed, which
    runs that code (trust the file first). ``.keras`` and ``.h5`` files load uncompiled.
    """
    _no_custom(custom_objects)
    if os.path.isdir(filepath):
        raise fail(filepath, "it is a directory; rnnstate saves models as single files ('.keras', "
                             "'.safetensors').")
    data = read_bytes(filepath)
    kind = sniff(data)
    try:
        with serialization.safe_mode_scope(safe_mode):      # Lambda layers load only with safe_mode=False
            return _load_by_kind(data, kind, filepath, compile)
    except RecursionError as e:
        raise fail(filepath, "the file's structures are nested too deeply.", e) from None


def _load_by_kind(data, kind, filepath, compile):
    if kind == "zip":
        return _load_keras(data, filepath)
    if kind == "hdf5":
        return _load_legacy(data, filepath)
    if kind == "safetensors":
        return _load_native(data, filepath, compile=compile)
    raise fail(filepath, f"unrecognised format (first bytes {data[:8]!r}): expected a '.keras' zip, a Keras "
                         f"HDF5 file or an rnnstate '.safetensors' file" +
               ("; the file is empty" if not data else "") + ".")


def save_weights(model, filepath, overwrite=True, include_states=False, **kwargs):
    """Weights only: ``.weights.h5`` (Keras 3 layout, readable by Keras' ``load_weights``) or
    ``.safetensors`` (rnnstate's format). Atomic, like `save_model`."""
    _model_check(model, "save_weights")
    kwargs.pop("max_shard_size", None)
    if kwargs:
        raise TypeError(f"save_weights: unexpected keyword argument(s) {sorted(kwargs)}.")
    ext = _ext(filepath)
    if ext == ".weights.h5":
        data = keras_h5.write(model, _collect_states(model) if include_states else None, checksum=True)
    elif ext == ".safetensors":
        data = _dumps_native(model, include_states, with_config=False)
    else:
        raise ValueError(f"save_weights: '{os.fspath(filepath)}': the file name must end in '.weights.h5' "
                         f"(Keras 3 layout) or '.safetensors' (rnnstate's format)"
                         + ("; `.keras` files hold whole models: use `model.save`." if ext == ".keras" else "."))
    check_overwrite(filepath, overwrite)
    atomic_write(filepath, data)


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """Load weights (and carried states, if the file has them) into `model` from any file `save`,
    `save_weights`, Keras 3 (``.keras``, ``.weights.h5``) or Keras 2 (``.h5``) wrote. All shapes
    and counts are checked first: on any mismatch nothing is assigned."""
    _model_check(model, "load_weights")
    if skip_mismatch:
        raise ValueError("load_weights: skip_mismatch=True is not supported; every weight must match.")
    data = read_bytes(filepath)
    kind = sniff(data)
    states = {}
    try:
        if kind == "safetensors":
            _, tensors = native.loads(data, filepath)
            arrays = _split_native(tensors)
            states = _native_states(tensors, filepath)
        elif kind == "zip":
            with _open_zip(data, filepath) as zf:
                data = _zip_member(zf, KERAS_WEIGHTS, MAX_MEMBER_BYTES, filepath)
            kind = "hdf5"
        if kind == "hdf5":
            with keras_h5.open_h5(data, filepath) as f:
                if _h5(filepath, keras_h5.is_legacy, f, filepath):
                    arrays = _h5(filepath, keras_h5.read_legacy, model, f, filepath, len(data))
                else:
                    arrays = _h5(filepath, keras_h5.read, model, f, filepath, len(data))
                    states = _h5(filepath, keras_h5.read_states, f, filepath, len(data))
        elif kind != "safetensors":
            raise fail(filepath, f"unrecognised format (first bytes {data[:8]!r}); expected '.safetensors', "
                                 f"'.weights.h5', '.keras' or a Keras '.h5' file.")
    except RecursionError as e:
        raise fail(filepath, "the file's structures are nested too deeply.", e) from None
    _check_weights(model, arrays, filepath)
    _check_states(model, states, filepath)
    _assign(model, arrays)
    _restore_states(model, states)
