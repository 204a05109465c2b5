"""rnnstate's native format: one ``.safetensors`` file.

Why one safetensors file (and not a directory or a zip):

* one file is what an atomic rename can replace, so a save interrupted at any instant leaves the
  previous file whole (a directory can't be swapped atomically; a zip adds nothing safetensors lacks);
* safetensors is a plain, documented layout (8-byte header length, a JSON header, raw little-endian
  tensors) with no code path to execution (unlike pickle), readable by any safetensors tool, and
  every declared size can be checked against the real file size before anything is allocated;
* its header has a string-to-string ``__metadata__`` map, which holds the architecture as JSON;
* it needs only ``safetensors`` (a core dependency), not h5py/libhdf5, whose C parser is large and
  not hardened against crafted files; ``.keras`` stays available for exchange with Keras.

Layout:

``__metadata__``
    ``format``: ``"rnnstate"``; ``format_version``: ``"1"``; ``kind``: ``"model"`` or ``"weights"``;
    ``config`` (models): the Keras 3-shaped JSON spec of the model (the same text as
    ``model.to_json()``); ``rnnstate_version``; ``states`` (``"1"`` when carried states are
    included); ``sha256``: a digest of every other metadata entry and of every tensor's name,
    dtype, shape and bytes, so a flipped bit anywhere is reported instead of silently loaded.
tensors
    every weight, float32, Keras layout, named by its native path (``layers/lstm/cell/kernel``, see
    ``rnnstate.saving._walk``); with ``include_states=True`` the carried state of each stateful
    layer as ``__states__/<layer path>/<i>``; for a compiled model, the optimizer's state as
    ``__optimizer__/<param index>/<name>`` with the compile arguments in ``compile_config``
    (``rnnstate.saving.training_state``).

Reading validates the whole header (sizes, offsets, dtypes, digest) against the file before
building or assigning anything.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from ._io import MAX_JSON_BYTES, fail

FORMAT = "rnnstate"
FORMAT_VERSION = "1"
STATES_PREFIX = "__states__/"
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "F16": np.dtype("<f2"), "I64": np.dtype("<i8"),
           "I32": np.dtype("<i4")}


def _digest(metadata: dict, tensors: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(metadata):
        if k == "sha256":
            continue
        h.update(json.dumps([k, metadata[k]]).encode())
    for name in sorted(tensors):
        a = tensors[name]
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
    return h.hexdigest()


def _stored_dtype(v):
    dt = getattr(v, "dtype", None)
    return dt if dt in (np.float64, np.float16, np.float32) else np.float32


def dumps(tensors: dict, metadata: dict) -> bytes:
    """tensors: name -> float array (float64 and float16 kept, anything else as float32: a bfloat16
    weight is stored exactly as float32 and the model's config says bfloat16); metadata: str -> str.
    Returns the file's bytes."""
    from safetensors.numpy import save
    tensors = {k: np.ascontiguousarray(v, dtype=_stored_dtype(v)).reshape(np.shape(v)) for k, v in tensors.items()}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    metadata["sha256"] = _digest(metadata, tensors)
    return save(tensors, metadata=metadata)


def loads(data: bytes, path):
    """-> (metadata dict, {name: array}) after checking every declared size against the file."""
    n = len(data)
    if n < 8:
        raise fail(path, f"the file is {n} bytes long: too short for a safetensors file (truncated?).")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > MAX_JSON_BYTES:
        raise fail(path, f"the safetensors header declares {header_len} bytes, more than the "
                         f"{MAX_JSON_BYTES}-byte limit (corrupt or crafted file).")
    if 8 + header_len > n:
        raise fail(path, f"the safetensors header declares {header_len} bytes but the file has only "
                         f"{n - 8} after the length field (truncated file).")
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise fail(path, f"the safetensors header is not valid JSON ({e}); the file is corrupt.", e) from None
    if not isinstance(header, dict):
        raise fail(path, "the safetensors header is not a JSON object; the file is corrupt.")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise fail(path, "the file has no rnnstate metadata (`__metadata__` string map): it is not a file "
                         "written by rnnstate's `save`/`save_weights`.")
    if meta.get("format") != FORMAT:
        raise fail(path, f"the safetensors metadata says format {meta.get('format')!r}, not {FORMAT!r}: "
                         f"not an rnnstate file.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise fail(path, f"format version {meta.get('format_version')!r} is not supported (this rnnstate "
                         f"reads version {FORMAT_VERSION}).")
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if not isinstance(info, dict):
            raise fail(path, f"tensor {name!r:.80} has a malformed entry in the header.")
        dt, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dt not in _DTYPES:
            raise fail(path, f"tensor {name!r:.80} has dtype {dt!r:.20}; supported: {sorted(_DTYPES)}.")
        if not (isinstance(shape, list) and len(shape) <= 8
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise fail(path, f"tensor {name!r:.80} has an invalid shape {shape!r:.80}.")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise fail(path, f"tensor {name!r:.80} has invalid data offsets {offsets!r:.80}.")
        begin, end = offsets
        itemsize = _DTYPES[dt].itemsize
        count = math.prod(shape)
        if not (0 <= begin <= end <= len(body)):
            raise fail(path, f"tensor {name!r:.80} declares bytes {begin}..{end} but the data section has "
                             f"{len(body)} bytes (truncated or crafted file).")
        if (end - begin) != count * itemsize:
            raise fail(path, f"tensor {name!r:.80} declares shape {tuple(shape)} ({count * itemsize} bytes) "
                             f"but {end - begin} bytes of data.")
        tensors[name] = np.frombuffer(body, dtype=_DTYPES[dt], count=count, offset=begin).reshape(shape)
    want = meta.get("sha256")
    if want is None or _digest(meta, tensors) != want:
        raise fail(path, "the content does not match its sha256 digest: the file is corrupt.")
    return meta, tensors


def parse_config(meta, path):
    text = meta.get("config")
    if text is None:
        raise fail(path, "this file holds weights only (written by `save_weights`); load it with "
                         "`model.load_weights(path)` on a model of the same architecture.")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise fail(path, f"the model config is not valid JSON ({e}).", e) from None
