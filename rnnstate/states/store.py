"""`StateStore`: one state per stream key, many interleaved streams through one model.

    store = StateStore(model, max_streams=10_000)
    y = store.step(["sensor-7", "sensor-2"], x_t)    # x_t (2, F) or (2, T_chunk, F): one row per key
    store.drop("sensor-7")                           # the stream ended
    store.save("states.safetensors"); store.load("states.safetensors")

A step gathers the keys' states into one batch (zeros for keys never seen), runs the model once
(through :class:`~rnnstate.states.Streamer`), and scatters the new states back. States live in one
preallocated tensor per layer and state (rows = streams), so gather and scatter are one indexing op.

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
  ``load`` replaces the store's contents and checks that the file's layers and state sizes match the
  model. Keys may be str, int, or tuples of those.
"""
from __future__ import annotations

import collections
import json
import numbers
import os
import tempfile
import threading

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
        self._slots: collections.OrderedDict = collections.OrderedDict()   # key -> row; oldest first
        self._free: list[int] = []
        self._pool = None        # {layer_name: NamedTuple of (capacity, n) tensors}
        self._capacity = 0

    # ---- pool --------------------------------------------------------------------------------------------
    def _ensure_pool(self, need):
        if self._pool is None:
            dev = _device(self.streamer.model)
            self._pool = {l.name: access.zero_state(l, 0, dev) for l in self.streamer.layers}
        if need <= self._capacity:
            return
        cap = max(need, 2 * self._capacity, 8)
        if self.max_streams is not None:
            cap = min(cap, self.max_streams)
        for name, st in self._pool.items():
            grown = []
            for p in st:
                q = torch.zeros(cap, p.shape[1], device=p.device, dtype=p.dtype)
                q[: p.shape[0]] = p
                grown.append(q)
            self._pool[name] = type(st)(*grown)
        self._free.extend(range(self._capacity, cap))
        self._capacity = cap

    def _rows(self, idx):
        return {name: type(st)(*[p.index_select(0, idx) for p in st]) for name, st in self._pool.items()}

    def _evict_for(self, n_new, keep):
        if self.max_streams is None:
            return
        victims = []
        over = len(self._slots) + n_new - self.max_streams
        if over <= 0:
            return
        for k in self._slots:
            if k not in keep:
                victims.append(k)
                if len(victims) == over:
                    break
        for k in victims:
            self._drop(k, evicted=True)

    def _drop(self, key, evicted=False):
        row = self._slots.pop(key)
        if evicted and self.on_evict is not None:
            self.on_evict(key, self._rows(torch.tensor([row], device=self._device())))
        for st in self._pool.values():
            for p in st:
                p[row] = 0
        self._free.append(row)

    def _device(self):
        return next(iter(self._pool.values()))[0].device

    # ---- stepping ------------------------------------------------------------------------------------------
    def step(self, keys, x):
        """Advance the streams `keys` (one per row of `x`) by the chunk `x` and return the model's outputs."""
        keys = list(keys)
        batch = _batch_of(x)
        if batch is not None and batch != len(keys):
            raise _checks.store_keys(self, f"`keys` has {len(keys)} entries but `x` has {batch} rows; give one "
                                           f"key per row.")
        if len(set(keys)) != len(keys):
            dup = sorted({repr(k) for k in keys if keys.count(k) > 1})
            raise _checks.store_keys(self, f"keys repeat within one step ({', '.join(dup)}); one step advances "
                                           f"each stream once. Split them over several steps.")
        if self.max_streams is not None and len(keys) > self.max_streams:
            raise _checks.store_keys(self, f"a step of {len(keys)} keys exceeds max_streams={self.max_streams}.")
        for k in keys:
            _encode_key(k)
        with self._lock:
            self._ensure_pool(0)
            keep = set(keys)
            new = [k for k in keys if k not in self._slots]
            self._evict_for(len(new), keep)
            self._ensure_pool(len(self._slots) + len(new))
            for k in new:
                self._slots[k] = self._free.pop()
            idx = torch.tensor([self._slots[k] for k in keys], device=self._device())
            y, states = self.streamer._step(x, self._rows(idx))
            with torch.no_grad():
                for name, st in states.items():
                    for p, v in zip(self._pool[name], st):
                        p.index_copy_(0, idx, v.detach().to(p.dtype))
            for k in keys:
                self._slots.move_to_end(k)
            return y

    # ---- single streams -------------------------------------------------------------------------------------
    def get(self, key):
        """The states of stream `key`, batch 1: ``{layer_name: LSTMState(h (1, U), c (1, U))}``."""
        with self._lock:
            if key not in self._slots:
                raise KeyError(f"StateStore: no stream {key!r}; it was never stepped, or was dropped or evicted.")
            return self._rows(torch.tensor([self._slots[key]], device=self._device()))

    def set(self, key, states):
        """Set the states of stream `key` (batch 1, the structure ``get`` returns); it becomes the most recent."""
        _encode_key(key)
        with self._lock:
            self._ensure_pool(0)
            parsed = self.streamer._parse(states, 1)
            if key not in self._slots:
                self._evict_for(1, {key})
                self._ensure_pool(len(self._slots) + 1)
                self._slots[key] = self._free.pop()
            row = self._slots[key]
            for layer, st in parsed.items():
                for p, v in zip(self._pool[layer.name], st):
                    p[row] = v[0].to(p.device, p.dtype)
            self._slots.move_to_end(key)

    def drop(self, key):
        """Forget stream `key` (its next step starts from zeros)."""
        with self._lock:
            if key not in self._slots:
                raise KeyError(f"StateStore: no stream {key!r} to drop.")
            self._drop(key)

    def clear(self):
        with self._lock:
            for k in list(self._slots):
                self._drop(k)

    def keys(self):
        """Stream keys, least recently used first."""
        with self._lock:
            return list(self._slots)

    def __len__(self):
        return len(self._slots)

    def __contains__(self, key):
        return key in self._slots

    # ---- files -----------------------------------------------------------------------------------------------
    def _layout(self):
        return [[l.name, list(access.state_type(l)._fields), list(l.state_size)] for l in self.streamer.layers]

    def save(self, path):
        """Write every stream's states to `path` (safetensors), atomically. Returns `path`."""
        from safetensors.torch import save_file
        path = os.fspath(path)
        with self._lock:
            self._ensure_pool(0)
            keys = list(self._slots)
            idx = torch.tensor([self._slots[k] for k in keys], dtype=torch.long, device=self._device())
            tensors = {}
            for name, st in self._rows(idx).items():
                for field, t in zip(st._fields, st):
                    tensors[f"{name}/{field}"] = t.detach().cpu().contiguous()
            meta = {"format": _FORMAT, "keys": json.dumps([_encode_key(k) for k in keys]),
                    "layers": json.dumps(self._layout())}
            folder = os.path.dirname(os.path.abspath(path))
            fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
            os.close(fd)
            try:
                save_file(tensors, tmp, metadata=meta)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
        return path

    def load(self, path):
        """Replace the store's contents with the streams saved in `path`. With ``max_streams`` smaller than
        the file, only the most recently used streams are kept (the eviction rule)."""
        from safetensors import safe_open
        path = os.fspath(path)
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != _FORMAT:
                raise _checks.store_keys(self, f"{path!r} is not a StateStore file (format "
                                               f"{meta.get('format')!r}, expected {_FORMAT!r}).")
            layout = json.loads(meta["layers"])
            if layout != self._layout():
                raise _checks.store_keys(self, f"{path!r} holds states for layers {layout} (name, states, sizes); "
                                               f"this model has {self._layout()}.")
            keys = [_decode_key(k) for k in json.loads(meta["keys"])]
            data = {k: f.get_tensor(k) for k in f.keys()}
        first = self.max_streams is not None and len(keys) > self.max_streams
        start = len(keys) - self.max_streams if first else 0
        with self._lock:
            self._pool, self._capacity, self._free = None, 0, []
            self._slots = collections.OrderedDict()
            self._ensure_pool(max(len(keys) - start, 1))
            dev = self._device()
            for row, k in enumerate(keys[start:]):
                self._slots[k] = row
            self._free = [r for r in range(self._capacity) if r >= len(keys) - start][::-1]
            n = len(keys) - start
            for name, st in self._pool.items():
                for field, p in zip(st._fields, st):
                    p[:n] = data[f"{name}/{field}"][start:].to(dev, p.dtype)
        return self


def _batch_of(x):
    v = x
    while isinstance(v, (list, tuple)) and v:
        v = v[0]
    if isinstance(v, dict):
        v = next(iter(v.values()))
    shape = getattr(v, "shape", None)
    return int(shape[0]) if shape else None


def _encode_key(k):
    if isinstance(k, bool):
        return ["b", k]
    if isinstance(k, str):
        return ["s", k]
    if isinstance(k, numbers.Integral):
        return ["i", int(k)]
    if isinstance(k, tuple):
        return ["t", [_encode_key(v) for v in k]]
    raise _checks.store_keys("StateStore", f"stream keys must be str, int or tuples of those (they are saved as "
                                           f"JSON); received {type(k).__name__} {k!r:.100}.")


def _decode_key(e):
    tag, v = e
    if tag == "t":
        return tuple(_decode_key(x) for x in v)
    return v
