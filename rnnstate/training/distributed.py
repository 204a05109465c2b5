"""``fit`` / ``evaluate`` / ``predict`` on ``torch.distributed`` (DDP), used by the engine when a
launcher (``torchrun``, ``torch.multiprocessing`` + ``init_process_group``, SLURM, ...) has
initialised a process group of more than one process.  Nothing here runs otherwise.

What happens, per call, on every rank (all ranks must call ``fit``/``evaluate``/``predict``
together, with the same arguments):

* **Model.** The training forward pass runs through torch's ``DistributedDataParallel`` (built at
  the start of ``fit``, which broadcasts rank 0's weights; torch defaults), so DDP
  averages the gradients during ``backward``.  Extra DDP arguments: ``DDP_OPTIONS`` (e.g.
  ``{"find_unused_parameters": True}`` for a model with parameters that get no gradient).
* **Array data** (numpy / tensors): ``batch_size`` is the *global* batch (as in Keras under
  ``tf.distribute``).  Every rank draws the same permutation each epoch (numpy's global RNG is
  copied from rank 0 at the start of ``fit``, so ``set_random_seed`` on the launcher's processes
  decides the shuffling), and rank ``r`` takes the ``r``-th contiguous chunk of each global batch
  (``np.array_split`` sizes).  Each rank's loss is scaled by ``local_rows * world / global_rows``
  before ``backward`` so that DDP's mean equals the gradient of the global batch's mean loss:
  training matches one process on the same global batches.  A rank whose chunk is empty (a last
  batch smaller than the world) runs one row with loss scale 0 and records no metrics.
* **An iterable of batches** (e.g. a ``DataLoader``) is each rank's own: a ``DistributedSampler``
  is left alone (its ``set_epoch(epoch)`` is called at each epoch); DDP averages the ranks'
  gradients as torch does (mean of the ranks' mean losses).  Every rank must yield the same
  number of batches.
* **Logs.** Losses and metrics are summed across ranks (their running ``total``/``count``
  states, with one ``all_reduce``) whenever logs are read for callbacks, so every rank's
  ``History`` holds the global values.  torchmetrics objects sync themselves in ``compute()``.
* **Rank 0 only** prints progress and callback messages, writes ``ModelCheckpoint`` files (then
  all ranks wait for the write) and ``CSVLogger`` rows.  ``stop_training`` is OR-ed across ranks
  at each epoch end (and each batch when batch callbacks run), so ``EarlyStopping`` stops all
  ranks together.
* **predict** on arrays gathers every rank's rows and returns all outputs, in input order, on
  every rank; on an iterable it returns the rank's own outputs.
* **Stateful layers** carry states per batch row: each rank keeps the states of its own rows (its
  chunk of each global batch); their declared batch is the per-rank batch.

The communication device is the CPU for ``gloo`` and the current CUDA device for ``nccl``; the
backend is the launcher's choice (``init_process_group()`` picks gloo for CPU, NCCL for CUDA).
"""

import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .data import ArrayBatches, IterableBatches

__all__ = ["DDP_OPTIONS", "World", "world", "is_chief", "barrier"]

DDP_OPTIONS = {}
"""Extra keyword arguments for ``torch.nn.parallel.DistributedDataParallel``."""


class World:
    """The running process group: ``rank``, ``size``, ``is_chief`` (rank 0)."""

    def __init__(self):
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.is_chief = self.rank == 0
        self.device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"


def world():
    """The ``World`` when torch.distributed runs more than one process, else None."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return World()


def is_chief():
    """True on rank 0, and whenever torch.distributed is not running."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier():
    if world() is not None:
        dist.barrier()


def display_verbose(verbose, w):
    """Progress is printed by rank 0 only."""
    return verbose if w is None or w.is_chief else 0


# ---- the DDP-wrapped forward pass ----------------------------------------------------------------
class _GraphForward(nn.Module):
    """The model's graph as a module DDP can wrap: ``(inputs, training, masking) -> (outputs, masks)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, xs, training, masking):
        if masking:
            masks = []
            outs = self.model._run_graph(xs, training=training, output_masks=masks)
            return list(outs), masks
        outs = self.model._run_graph(xs, training=training)
        return ([outs] if isinstance(outs, torch.Tensor) else list(outs)), None


_RUNNERS = {}   # id(model) -> DistributedDataParallel, for the duration of one fit


def runner(model):
    """The DDP module the model trains through now (None outside a distributed fit)."""
    return _RUNNERS.get(id(model)) if _RUNNERS else None


class ddp_training:
    """Context manager: wrap ``model`` in DDP for one ``fit`` (or ``train_on_batch``) call."""

    def __init__(self, model, w):
        self.model, self.w = model, w

    def __enter__(self):
        if self.w is None:
            return None
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ValueError("Distributed fit(): the model has no trainable parameters to synchronize (build it "
                             "before calling fit()).")
        dev = self.model._device()
        kwargs = dict(DDP_OPTIONS)
        if dev.type == "cuda":
            kwargs.setdefault("device_ids", [dev])
        ddp = nn.parallel.DistributedDataParallel(_GraphForward(self.model), **kwargs)
        _RUNNERS[id(self.model)] = ddp
        return ddp

    def __exit__(self, *exc):
        _RUNNERS.pop(id(self.model), None)
        return False


def forward(ddp, model, xs, training):
    masking = bool(getattr(model, "_masking", False))
    try:
        outs, masks = ddp(xs, training, masking)
    except RuntimeError as e:
        if "finished reduction" in str(e) or "unused parameters" in str(e):
            raise RuntimeError("Distributed fit(): some parameters of the model got no gradient in the previous "
                               "step (e.g. a layer whose outputs have no loss). Set "
                               "rnnstate.training.distributed.DDP_OPTIONS['find_unused_parameters'] = True "
                               f"before fit(). torch said: {e}") from e
        raise
    if masks is not None and all(m is None for m in masks):
        masks = None
    return outs, masks


# ---- sharding array data -------------------------------------------------------------------------
class LocalBatch(list):
    """This rank's rows of one global batch.  ``scale``: ``local * world / global`` rows (0 for an
    empty chunk, which holds one stand-in row); ``empty``: no rows of its own."""

    scale = 1.0
    empty = False


def chunk_bounds(n, size, rank):
    """The ``[lo, hi)`` rows of ``rank`` among ``n`` rows split into ``size`` contiguous chunks."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


class ShardedArrayBatches(ArrayBatches):
    """``ArrayBatches`` whose batches are this rank's chunk of each global batch."""

    def __init__(self, base, w):
        self.__dict__.update(base.__dict__)
        self.world = w

    def _take(self, index):
        if isinstance(index, slice):
            n = index.stop - index.start
            lo, hi = chunk_bounds(n, self.world.size, self.world.rank)
            local = slice(index.start + lo, index.start + hi) if hi > lo else slice(index.stop - 1, index.stop)
        else:
            n = int(index.shape[0])
            lo, hi = chunk_bounds(n, self.world.size, self.world.rank)
            local = index[lo:hi] if hi > lo else index[n - 1:n]
        batch = LocalBatch(super()._take(local))
        batch.empty = hi == lo
        batch.scale = (hi - lo) * self.world.size / n
        return batch


def shard(data, w):
    """This rank's view of ``data`` (ArrayBatches are sharded; iterables are left alone)."""
    if w is None or data is None:
        return data
    if isinstance(data, ArrayBatches):
        return ShardedArrayBatches(data, w)
    if isinstance(data, IterableBatches):
        sampler = getattr(data.data, "sampler", None)
        if isinstance(data.data, torch.utils.data.DataLoader) and not isinstance(
                sampler, torch.utils.data.distributed.DistributedSampler):
            warnings.warn(f"Distributed training on {w.size} processes with a DataLoader that has no "
                          "DistributedSampler: every rank iterates the whole dataset. Pass "
                          "sampler=DistributedSampler(dataset) to the DataLoader to give each rank its own shard.",
                          stacklevel=3)
    return data


def begin_epoch(data, epoch):
    """A ``DistributedSampler`` (or any sampler with ``set_epoch``) reshuffles for the epoch."""
    if isinstance(data, IterableBatches):
        sampler = getattr(data.data, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)


def sync_numpy_rng(w):
    """Copy numpy's global RNG state from rank 0 (every rank then shuffles alike)."""
    if w is None:
        return
    box = [np.random.get_state() if w.is_chief else None]
    dist.broadcast_object_list(box, src=0, device=w.device)
    np.random.set_state(box[0])


# ---- reductions ----------------------------------------------------------------------------------
def reduce_logs(trackers):
    """``{name: global value}`` for ``[(name, metric)]``: one all_reduce (SUM) of every metric's
    ``sync_states()``, then ``result_from(states)``; metrics that sync themselves (torchmetrics)
    return no states and compute collectively."""
    w = world()
    parts = [[torch.as_tensor(s, dtype=torch.float64).reshape(-1).cpu() for s in m.sync_states()]
             for _, m in trackers]
    sizes = [[t.numel() for t in p] for p in parts]
    flat = [t for p in parts for t in p]
    if flat:
        buf = torch.cat(flat).to(w.device)
        dist.all_reduce(buf)
        buf = buf.cpu()
    logs, at = {}, 0
    for (name, m), shape in zip(trackers, sizes):
        states = []
        for k in shape:
            states.append(buf[at:at + k])
            at += k
        logs[name] = m.result_from(states)
    return logs


def any_rank(flag):
    """True on every rank if ``flag`` is true on any rank (stop_training agreement)."""
    w = world()
    if w is None:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=w.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_predictions(w, collected):
    """Every rank's predicted rows, in input order.  ``collected``: per output, a list with this
    rank's chunk of each global batch (None where its chunk was empty)."""
    everyone = [None] * w.size
    dist.all_gather_object(everyone, collected)
    return [[r[k][b] for b in range(len(collected[k])) for r in everyone if r[k][b] is not None]
            for k in range(len(collected))]
