"""Turning user data into batches of torch tensors.

Two sources are supported:

* arrays (numpy arrays, torch tensors, nested Python lists; several inputs/targets in lists or
  dicts): converted to torch once, then sliced into batches; shuffling draws its permutation
  from numpy's global RNG, so ``set_random_seed`` makes it reproducible.
* an iterable of batches (a ``torch.utils.data.DataLoader``, a generator, ...) yielding ``x``,
  ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.  A re-iterable object (DataLoader, list) is
  iterated afresh each epoch; a one-shot iterator is consumed across epochs.

dtypes: floating data becomes float32 (or the floating dtype of the model input it feeds), bool
becomes float32, integers become int64 (int64 stays int64, e.g. for Embedding inputs) unless
they feed a floating model input, where they are cast to that input's dtype.
"""

import numbers
import warnings

import numpy as np
import torch

__all__ = ["to_tensor", "is_array_like", "is_batch_iterable", "num_samples", "check_cardinality",
           "ArrayBatches", "IterableBatches", "split_tail", "unpack_batch"]


def is_array_like(v) -> bool:
    return isinstance(v, (np.ndarray, torch.Tensor, np.generic)) or hasattr(v, "__array__") and not isinstance(
        v, (dict, str, bytes))


def is_batch_iterable(x) -> bool:
    """True for data given as an iterable of batches rather than as arrays."""
    if x is None or isinstance(x, (np.ndarray, torch.Tensor, list, tuple, dict, str, bytes, numbers.Number)):
        return False
    if hasattr(x, "__array__"):
        return False
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def to_tensor(value, dtype=None, what="data"):
    """One array-like as a torch tensor; ``dtype``: the torch dtype of the model input it feeds
    (or None)."""
    if isinstance(value, torch.Tensor):
        t = value
        if t.is_complex():
            raise TypeError(f"{what}: expected real numbers (float, int or bool); received a complex tensor of "
                            f"shape {tuple(t.shape)} (the imaginary part would be lost).")
    else:
        try:
            arr = np.asarray(value)
        except ValueError as e:       # numpy >= 1.24: ragged nested lists
            raise TypeError(f"{what}: cannot convert to an array ({e}); expected a rectangular array of numbers "
                            f"(did you pass a ragged list?).") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{what}: cannot convert an array of dtype {arr.dtype} to a tensor; expected real numbers "
                            "(float, int or bool; did you pass a ragged list, strings or complex numbers?).")
        if arr.dtype.kind == "f" and arr.dtype != np.float32 and (dtype is None or not dtype.is_floating_point):
            arr = arr.astype(np.float32)
        elif arr.dtype.kind == "b":
            arr = arr.astype(np.float32)
        elif arr.dtype.kind in "iu" and arr.dtype != np.int64 and (dtype is None or not dtype.is_floating_point):
            if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
                raise ValueError(f"{what}: integers above {np.iinfo(np.int64).max} can't be used; received up to "
                                 f"{int(arr.max())}.")
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "u" and arr.dtype.itemsize > 1:      # torch has no full uint16/32/64 support
            arr = arr.astype(np.float64)
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr).copy()
        t = torch.from_numpy(arr)
    if dtype is not None:
        if dtype.is_floating_point and t.dtype != dtype:
            return t.to(dtype)
        if not dtype.is_floating_point and dtype != torch.bool and t.is_floating_point():
            return t.to(torch.int64)
    if t.dtype == torch.bool:
        return t.to(torch.float32)
    if t.dtype == torch.float64 and (dtype is None or dtype != torch.float64):
        return t.to(torch.float32)
    if not t.is_floating_point() and t.dtype not in (torch.int64, torch.bool) and not t.is_complex():
        if dtype is None or not dtype.is_floating_point:
            return t.to(torch.int64)
    return t


def num_samples(t, what="data") -> int:
    if t.dim() == 0:
        raise ValueError(f"{what}: expected an array with a leading batch axis; received a scalar "
                         f"({t.item()!r:.40}).")
    return int(t.shape[0])


def check_cardinality(named_tensors):
    """``named_tensors``: list of (label, tensor or None). Raises if sample counts differ."""
    sizes = [(label, num_samples(t, label)) for label, t in named_tensors if t is not None]
    if not sizes:
        raise ValueError("No data given: x is empty.")
    if len({n for _, n in sizes}) > 1:
        detail = ", ".join(f"{label} has {n} samples" for label, n in sizes)
        raise ValueError("Data cardinality is ambiguous: all arrays must contain the same number of samples, "
                         f"but {detail}.")
    return sizes[0][1]


def split_tail(tensors, validation_split):
    """Keras' validation_split: the LAST fraction of the samples (before any shuffling) is held out.
    ``tensors`` is a list of (tensor or None); returns (train list, validation list)."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be a float in (0, 1); received {validation_split}.")
    n = next(num_samples(t) for t in tensors if t is not None)
    split_at = int(np.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"validation_split={validation_split} leaves no samples for "
                         f"{'training' if split_at == 0 else 'validation'} (there are {n} samples).")
    return ([None if t is None else t[:split_at] for t in tensors],
            [None if t is None else t[split_at:] for t in tensors])


class ArrayBatches:
    """Batches of a list of same-length tensors (None entries pass through as None)."""

    def __init__(self, tensors, batch_size, shuffle=False, steps=None, cycle=True):
        self.tensors = list(tensors)
        self.n = next(num_samples(t) for t in self.tensors if t is not None)
        self.batch_size = int(batch_size)
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer; received {batch_size}.")
        self.shuffle, self.steps = shuffle, steps
        self.batches_per_pass = -(-self.n // self.batch_size)
        if steps is not None and not cycle:   # evaluate/predict: at most one pass
            self.steps = steps = min(int(steps), self.batches_per_pass)
        self._pending = None   # batches left of the current pass when `steps` cuts passes

    @property
    def steps_per_epoch(self):
        return self.steps if self.steps is not None else self.batches_per_pass

    def _one_pass(self):
        n, bs = self.n, self.batch_size
        if self.shuffle == "batch":
            order = np.random.permutation(self.batches_per_pass)
            for b in order:
                yield self._take(slice(b * bs, min((b + 1) * bs, n)))
        elif self.shuffle:
            perm = torch.from_numpy(np.random.permutation(n))
            for start in range(0, n, bs):
                yield self._take(perm[start:start + bs])
        else:
            for start in range(0, n, bs):
                yield self._take(slice(start, min(start + bs, n)))

    def _take(self, index):
        return [None if t is None else t[index] for t in self.tensors]

    def epoch(self):
        """Iterator over one epoch's batches.  With ``steps`` (Keras 3 semantics) passes continue
        across epochs; an epoch ends early when the current pass runs out, and the next epoch
        starts a new (reshuffled) pass."""
        if self.steps is None:
            yield from self._one_pass()
            return
        for i in range(self.steps):
            batch = None if self._pending is None else next(self._pending, None)
            if batch is None:
                if i > 0 and self._pending is not None:
                    self._pending = None
                    return
                self._pending = self._one_pass()
                batch = next(self._pending)
            yield batch


def unpack_batch(batch):
    """(x, y, sample_weight) from one batch of an iterable."""
    if isinstance(batch, (tuple, list)) and not isinstance(batch, torch.Tensor):
        if len(batch) == 1:
            return batch[0], None, None
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch[0], batch[1], batch[2]
        raise ValueError(f"Each batch must be x, (x,), (x, y) or (x, y, sample_weight); received a "
                         f"{type(batch).__name__} of length {len(batch)}.")
    return batch, None, None


class IterableBatches:
    """Raw batches from an iterable (standardized later by the caller)."""

    def __init__(self, data, steps=None):
        self.data, self.steps = data, steps
        self.one_shot = hasattr(data, "__next__")   # generators/iterators are consumed across epochs
        self._it = None
        self.exhausted = False
        try:
            n = len(data)
        except TypeError:
            n = None
        self._len = n

    @property
    def steps_per_epoch(self):
        if self.steps is not None:
            return self.steps
        return self._len

    def epoch(self):
        if self.steps is None:
            if self.one_shot:
                it = self._it if self._it is not None else iter(self.data)
                self._it = it
            else:
                it = iter(self.data)
            count = 0
            for batch in it:
                count += 1
                yield batch
            if count == 0:
                self.exhausted = True
            return
        for i in range(self.steps):   # same semantics as ArrayBatches with steps
            batch = _END if self._it is None else next(self._it, _END)
            if batch is _END:
                if i > 0 and self._it is not None and not self.one_shot:
                    self._it = None
                    return
                if self.one_shot and self._it is not None:
                    warnings.warn("The data iterator ran out of batches; stopping. Make sure it can generate at "
                                  "least `steps_per_epoch * epochs` batches.", stacklevel=3)
                    self.exhausted = True
                    return
                self._it = iter(self.data)
                batch = next(self._it, _END)
                if batch is _END:
                    self.exhausted = True
                    return
            yield batch


_END = object()
