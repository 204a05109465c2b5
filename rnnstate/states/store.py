"""`StateStore`: one state per stream key, many interleaved streams through one model.

    store = StateStore(model, max_streams=10_000)
    y = store.step(["sensor-7", "sensor-2"], x_t)    # x_t (2, F) or (2, T_chunk, F): one row per key
    store.drop("sensor-7")                           # the stream ended
    store.save("states.safetensors"); store.load("states.safetensors")

A step gathers the keys' states into one batch (zeros for keys never seen), runs the model once
(through :class:`~rnnstate.states.Streamer`: its one-step plan where the model has one, see
``store.streamer.path``), and scatters the new states back. States live in one preallocated tensor
(rows = streams, columns = every layer's states side by side), so gather and scatter are one indexing
op each.

* **Eviction: least recently used.** With ``max_streams=N``, admitting new keys when N streams are held
  drops the streams whose last ``step`` (or ``set``) is oldest; keys in the current step are never
  dropped, and a step with more than N keys raises. ``on_evict(key, states)`` (optional) is called
  with each dropped stream's states, e.g. to write them elsewhere. ``max_streams=None``: unbounded.
* **Threads.** Every public method holds one lock for its whole duration, ``step`` included, so
  concurrent steps never mix two streams' states and a key stepped from two threads advances once
  per step, in lock order. (The model's own math is multi-threaded by torch.)
* **Files.** ``save`` writes safetensors (tensors ``<layer>/<state>`` with one row per stream, in LRU
  order, plus the keys and layer layout as metadata) to a temporary file in the same folder and
  renames it over `path` (``os.replace``, atomic): a crash never leaves a half-written file.
  ``load`` checks the whole file first (format, layers and state sizes against the model, one row per key,
  distinct keys, finite values) and only then replaces the store's contents; a bad file raises
  :class:`~rnnstate.saving.FileFormatError` and changes nothing.
* **Atomic operations.** ``step``, ``set`` and ``load`` either complete or change nothing: a step whose
  model call fails (wrong feature size...) evicts and admits no stream; ``on_evict`` runs after the model
  call succeeded and before anything changes (if it raises, the step changes nothing).
* **Keys** are str, int, bool or tuples of those, and typed: ``1``, ``True`` and ``"1"`` are three
  streams (numpy integers are ints).
"""
from __future__ import annotations

import collections
import json
import numbers
import os
import threading

import numpy as np
import torch

from .. import _checks
from . import access
from .streaming import Streamer, _device

__all__ = ["StateStore"]

_FORMAT = "rnnstate.StateStore/1"


class StateStore:
    """Keep one recurrent state per stream key and step batches of interleaved streams.

    Args:
        model: a model or recurrent layer that streams (see :class:`Streamer`).
        max_streams: the most streams held; least recently used ones are evicted. None: no bound.
        on_evict: optional ``callable(key, states)``, called for each evicted stream (under the lock).
        training, grad: passed to the :class:`Streamer`.
    """

    def __init__(self, model, max_streams=None, *, on_evict=None, training=False, grad=False):
        if max_streams is not None:
            max_streams = _checks.positive_int("StateStore", "max_streams", max_streams)
        self.max_streams = max_streams
        self.on_evict = on_evict
        self.streamer = Streamer(model, training=training, grad=grad)
        self._lock = threading.RLock()
        self._slots: collections.OrderedDict = collections.OrderedDict()   # typed key -> row; oldest first
        self._keys: dict = {}                                               # typed key -> the user's key
        self._free: list[int] = []
        self._pool = None        # {layer_name: NamedTuple of (capacity, n) tensors}: column views of _flat
        self._flat = None        # (capacity, sum of all state sizes): one row per stream
        self._capacity = 0

    # ---- pool --------------------------------------------------------------------------------------------
    def _new_pool(self, cap, dev):
        """(flat, pool): every state of a stream in one row of `flat` (cap, W), and `pool` {layer_name:
        NamedTuple of (cap, n) column views of it}; a step gathers and scatters all of a stream's states
        with one indexing op each."""
        layers = [(l.name, access.state_type(l), list(l.state_size)) for l in self.streamer.layers]
        self._widths = [n for _, _, sizes in layers for n in sizes]
        flat = torch.zeros(cap, sum(self._widths), device=dev)
        pool, a = {}, 0
        for name, st, sizes in layers:
            views = []
            for n in sizes:
                views.append(flat[:, a:a + n])
                a += n
            pool[name] = st(*views)
        return flat, pool

    def _ensure_pool(self, need):
        """Rows for `need` streams; growing keeps every value (invisible to users)."""
        if self._pool is None:
            self._flat, self._pool = self._new_pool(0, _device(self.streamer.model))
        if need <= self._capacity:
            return
        cap = max(need, 2 * self._capacity, 8)
        if self.max_streams is not None:
            cap = min(cap, max(self.max_streams, need))
        flat, pool = self._new_pool(cap, self._flat.device)
        flat[: self._capacity] = self._flat
        self._flat, self._pool = flat, pool
        self._free = list(range(cap - 1, self._capacity - 1, -1)) + self._free
        self._capacity = cap

    def _split(self, rows):
        """{layer_name: state} of gathered rows (B, W) of the flat pool: column views."""
        parts = rows.split(self._widths, 1)
        out, k = {}, 0
        for name, st in self._pool.items():
            out[name] = type(st)(*parts[k:k + len(st)])
            k += len(st)
        return out

    def _rows(self, idx):
        return {name: type(st)(*[p.index_select(0, idx) for p in st]) for name, st in self._pool.items()}

    def _row_states(self, row):
        return self._rows(torch.tensor([row], device=self._device()))

    def _victims(self, n_new, keep):
        """Typed keys that admitting `n_new` streams would evict (least recently used first); no change."""
        if self.max_streams is None:
            return []
        over = len(self._slots) + n_new - self.max_streams
        victims = []
        if over > 0:
            for k in self._slots:
                if k not in keep:
                    victims.append(k)
                    if len(victims) == over:
                        break
        return victims

    def _report(self, victims):
        if self.on_evict is not None:
            for k in victims:
                self.on_evict(self._keys[k], self._row_states(self._slots[k]))

    def _drop(self, tk):
        row = self._slots.pop(tk)
        del self._keys[tk]
        for st in self._pool.values():
            for p in st:
                p[row] = 0
        self._free.append(row)

    def _device(self):
        return self._flat.device

    # ---- stepping ------------------------------------------------------------------------------------------
    def step(self, keys, x):
        """Advance the streams `keys` (one per row of `x`) by the chunk `x` and return the model's outputs.
        Atomic: if anything fails (bad keys, a wrong input shape, ``on_evict`` raising), no stream is
        evicted, admitted or advanced."""
        if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
            raise _checks.store_keys(self, f"`keys` must be a list of stream keys (one per row of `x`); "
                                           f"received {type(keys).__name__} {keys!r:.60}.")
        keys = list(keys)
        if not keys:
            raise _checks.store_keys(self, "`keys` is empty; a step advances at least one stream (one key per "
                                           "row of `x`).")
        # typed keys; str and int keys (the usual ones) without a call each, others checked and normalized
        typed = [("s", k) if type(k) is str else ("i", k) if type(k) is int else _typed(_norm_key(k))
                 for k in keys]
        batch = _batch_of(x)
        if batch is not None and batch != len(keys):
            raise _checks.store_keys(self, f"`keys` has {len(keys)} entries but `x` has {batch} rows; give one "
                                           f"key per row.")
        keep = set(typed)
        if len(keep) != len(typed):
            dup = sorted({repr(_norm_key(k)) for k, t in zip(keys, typed) if typed.count(t) > 1})
            raise _checks.store_keys(self, f"keys repeat within one step ({', '.join(dup)}); one step advances "
                                           f"each stream once. Split them over several steps.")
        if self.max_streams is not None and len(keys) > self.max_streams:
            raise _checks.store_keys(self, f"a step of {len(keys)} keys exceeds max_streams={self.max_streams}.")
        with self._lock:
            self._ensure_pool(0)
            new = [t for t in typed if t not in self._slots]
            victims = self._victims(len(new), keep)
            self._ensure_pool(len(self._slots) - len(victims) + len(new))
            dev = self._device()
            # start states: held rows for known keys, zeros for new ones (gathered copies; nothing changes)
            idx = _index([self._slots.get(t, 0) for t in typed], dev)
            rows = self._flat.index_select(0, idx)
            if new:
                known = torch.tensor([t in self._slots for t in typed], device=dev).unsqueeze(1)
                rows = torch.where(known, rows, torch.zeros_like(rows))
            y, states = self.streamer._run(x, self._split(rows))
            self._report(victims)
            # commit: nothing below can fail on checked inputs
            for t in victims:
                self._drop(t)
            if new:
                for k, t in zip(keys, typed):
                    if t not in self._slots:
                        self._slots[t] = self._free.pop()
                        self._keys[t] = _norm_key(k)
                idx = _index([self._slots[t] for t in typed], dev)
            rows = torch.cat([v for name in self._pool for v in states[name]], 1)
            if rows.requires_grad:              # grad=True: the pool keeps values only (it never requires grad)
                rows = rows.detach()
            self._flat.index_copy_(0, idx, rows if rows.dtype == self._flat.dtype else rows.to(self._flat.dtype))
            for t in typed:
                self._slots.move_to_end(t)
            return y

    # ---- single streams -------------------------------------------------------------------------------------
    def get(self, key):
        """The states of stream `key`, batch 1: ``{layer_name: LSTMState(h (1, U), c (1, U))}``."""
        with self._lock:
            t = _typed(_norm_key(key))
            if t not in self._slots:
                raise KeyError(f"StateStore: no stream {key!r}; it was never stepped, or was dropped or evicted.")
            return self._row_states(self._slots[t])

    def set(self, key, states):
        """Set the states of stream `key` (batch 1, the structure ``get`` returns); it becomes the most recent.
        Atomic: the states are checked (and ``on_evict`` called) before anything changes."""
        key = _norm_key(key)
        t = _typed(key)
        with self._lock:
            self._ensure_pool(0)
            parsed = self.streamer._parse(states, 1)
            victims = [] if t in self._slots else self._victims(1, {t})
            self._ensure_pool(len(self._slots) - len(victims) + 1)
            self._report(victims)
            for v in victims:
                self._drop(v)
            if t not in self._slots:
                self._slots[t] = self._free.pop()
                self._keys[t] = key
            row = self._slots[t]
            for layer, st in parsed.items():
                for p, v in zip(self._pool[layer.name], st):
                    p[row] = v[0].detach().to(p.device, p.dtype)
            self._slots.move_to_end(t)

    def drop(self, key):
        """Forget stream `key` (its next step starts from zeros)."""
        with self._lock:
            t = _typed(_norm_key(key))
            if t not in self._slots:
                raise KeyError(f"StateStore: no stream {key!r} to drop.")
            self._drop(t)

    def clear(self):
        with self._lock:
            for t in list(self._slots):
                self._drop(t)

    def keys(self):
        """Stream keys, least recently used first."""
        with self._lock:
            return [self._keys[t] for t in self._slots]

    def __len__(self):
        return len(self._slots)

    def __contains__(self, key):
        try:
            return _typed(_norm_key(key)) in self._slots
        except ValueError:
            return False

    # ---- files -----------------------------------------------------------------------------------------------
    def _layout(self):
        return [[l.name, list(access.state_type(l)._fields), list(l.state_size)] for l in self.streamer.layers]

    def save(self, path):
        """Write every stream's states to `path` (safetensors), atomically. Returns `path`."""
        from safetensors.torch import save

        from ..saving._io import atomic_write
        path = os.fspath(path)
        with self._lock:
            self._ensure_pool(0)
            typed = list(self._slots)
            idx = torch.tensor([self._slots[t] for t in typed], dtype=torch.long, device=self._device())
            tensors = {}
            for name, st in self._rows(idx).items():
                for field, v in zip(st._fields, st):
                    tensors[f"{name}/{field}"] = v.detach().cpu().contiguous()
            meta = {"format": _FORMAT, "keys": json.dumps([_encode_key(self._keys[t]) for t in typed]),
                    "layers": json.dumps(self._layout())}
            atomic_write(path, save(tensors, metadata=meta))
        return path

    def load(self, path):
        """Replace the store's contents with the streams saved in `path`. With ``max_streams`` smaller than
        the file, only the most recently used streams are kept (the eviction rule). The whole file is
        checked first; a bad file raises :class:`~rnnstate.saving.FileFormatError` and the store keeps its
        streams."""
        path = os.fspath(path)
        keys, data = _read_store_file(path, self._layout(), self.streamer.layers)
        n_file = len(keys)
        start = n_file - self.max_streams if self.max_streams is not None and n_file > self.max_streams else 0
        keys = keys[start:]
        n = len(keys)
        with self._lock:
            dev = _device(self.streamer.model) if self._pool is None else self._device()
            cap = max(n, 1)
            flat, pool = self._new_pool(cap, dev)
            for l in self.streamer.layers:
                st = pool[l.name]
                for field, p in zip(st._fields, st):
                    p[:n] = data[f"{l.name}/{field}"][start:].to(dev, p.dtype)
            slots = collections.OrderedDict((_typed(k), row) for row, k in enumerate(keys))
            self._keys = {_typed(k): k for k in keys}
            self._flat, self._pool, self._capacity, self._slots = flat, pool, cap, slots
            self._free = list(range(cap - 1, n - 1, -1))
        return self


def _read_store_file(path, layout, layers):
    """(keys, {"<layer>/<state>": tensor}) from a StateStore file, every part checked against `layout`."""
    from safetensors import SafetensorError, safe_open

    from ..saving._io import MAX_JSON_BYTES, fail
    if os.path.isdir(path):
        raise fail(path, "it is a directory, not a StateStore file.")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            names = set(f.keys())
            if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                raise fail(path, f"not a StateStore file (metadata `format`: expected {_FORMAT!r}, received "
                                 f"{meta.get('format') if isinstance(meta, dict) else None!r:.60}).")
            for part in ("layers", "keys"):
                if not isinstance(meta.get(part), str) or len(meta[part]) > MAX_JSON_BYTES:
                    raise fail(path, f"metadata `{part}`: expected a JSON string; received "
                                     f"{type(meta.get(part)).__name__}.")
            try:
                file_layout = json.loads(meta["layers"])
                raw_keys = json.loads(meta["keys"])
            except (ValueError, RecursionError) as e:
                raise fail(path, f"the metadata is not valid JSON ({type(e).__name__}).", e) from None
            if file_layout != layout:
                raise fail(path, f"it holds states for layers {file_layout!r:.300} (name, states, sizes); this "
                                 f"model has {layout}.")
            if not isinstance(raw_keys, list):
                raise fail(path, f"metadata `keys`: expected a list; received {type(raw_keys).__name__}.")
            keys = [_decode_key(e, path, i) for i, e in enumerate(raw_keys)]
            typed = [_typed(k) for k in keys]
            if len(set(typed)) != len(typed):
                dup = sorted({repr(k) for k, t in zip(keys, typed) if typed.count(t) > 1})[:5]
                raise fail(path, f"metadata `keys`: expected distinct stream keys; received repeats "
                                 f"({', '.join(dup)}).")
            want = {f"{l[0]}/{field}": size for l in layout for field, size in zip(l[1], l[2])}
            if names != set(want):
                raise fail(path, f"tensors: expected exactly {sorted(want)}; received {sorted(names)[:20]}.")
            data = {}
            for name, size in want.items():
                sl = f.get_slice(name)
                shape, dt = tuple(sl.get_shape()), sl.get_dtype()
                if shape != (len(keys), size):
                    raise fail(path, f"tensor '{name}': expected shape ({len(keys)}, {size}) (one row per key, "
                                     f"{len(keys)} keys); received {shape}.")
                if dt not in ("F32", "F16", "BF16", "F64"):
                    raise fail(path, f"tensor '{name}': expected a float dtype; received {dt}.")
                t = f.get_tensor(name)
                if not bool(torch.isfinite(t).all()):
                    raise fail(path, f"tensor '{name}': expected finite states; received NaN or inf.")
                data[name] = t
    except SafetensorError as e:
        raise fail(path, f"not a readable safetensors file ({e}).", e) from None
    return keys, data


def _index(rows, device):
    """Row numbers as an int64 index tensor (through numpy: ~6x faster than ``torch.tensor`` of a list)."""
    t = torch.from_numpy(np.array(rows, dtype=np.int64))
    return t if device.type == "cpu" else t.to(device)


def _norm_key(k):
    """A key in its canonical form (numpy integers -> int, nested tuples likewise); checks the type."""
    if isinstance(k, (bool, str)):
        return k
    if isinstance(k, numbers.Integral):
        return int(k)
    if isinstance(k, tuple):
        return tuple(_norm_key(v) for v in k)
    raise _checks.store_keys("StateStore", f"stream keys must be str, int or tuples of those (bools too, as "
                                           f"their own type; keys are saved as JSON); received "
                                           f"{type(k).__name__} {k!r:.100}.")


def _typed(k):
    """A hashable, typed form of a canonical key: ``1``, ``True`` and ``1.0`` never collide."""
    if isinstance(k, tuple):
        return ("t", tuple(_typed(v) for v in k))
    return ("b" if isinstance(k, bool) else "s" if isinstance(k, str) else "i", k)


def _batch_of(x):
    v = x
    while isinstance(v, (list, tuple)) and v:
        v = v[0]
    if isinstance(v, dict):
        v = next(iter(v.values()))
    shape = getattr(v, "shape", None)
    return int(shape[0]) if shape else None


def _encode_key(k):
    k = _norm_key(k)
    if isinstance(k, tuple):
        return ["t", [_encode_key(v) for v in k]]
    return list(_typed(k))


def _decode_key(e, path="<file>", i=0, depth=0):
    """A saved key -> the key; every tag and value type checked."""
    from ..saving._io import fail
    ok = isinstance(e, list) and len(e) == 2 and depth < 32
    if ok:
        tag, v = e
        if tag == "t" and isinstance(v, list):
            return tuple(_decode_key(x, path, i, depth + 1) for x in v)
        if tag == "b" and isinstance(v, bool) or tag == "s" and isinstance(v, str) \
                or tag == "i" and isinstance(v, int) and not isinstance(v, bool):
            return v
    raise fail(path, f"metadata `keys`[{i}]: expected [\"s\", str], [\"i\", int], [\"b\", bool] or "
                     f"[\"t\", [keys...]]; received {e!r:.80}.")
