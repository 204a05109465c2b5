"""Threads per call, chosen from the size of one timestep's work and from measured contention.

A time loop that forks threads inside a step (torch's oneDNN RNN, MKL's sgemm, ``at::parallel_for``)
joins them before the next step can start: on a busy machine one descheduled thread stalls every step
for a scheduler slice (milliseconds), e.g. a (32, 100, 32) -> LSTM(128) forward went from 11 ms to
170 ms with two busy processes on a 2-core machine, while idle its 2 threads make it 1.6x faster than 1.

* Below ``PARALLEL_MIN_STEP_MACS`` multiply-adds per step (the recurrent GEMM, B x gates*U x U: streaming,
  batch 1) a call always runs on the calling thread: the fork/join costs about what the threads save.
* Above it a call keeps torch's threads unless contention was measured: every threaded call is timed,
  and ``CONTENDED_CALLS`` in a row slower than ``CONTENDED_RATIO`` x the fastest threaded call of the same
  shape mark the machine busy for ``CONTENDED_SECONDS``, during which calls run single-threaded (a single-threaded loop's time
  follows its CPU share instead of stalling); the next threaded call after that probes again.

Only thread-local settings change (OpenMP's thread count of the calling thread, which torch's
``parallel_for`` and oneDNN read, and ``MKL_Set_Num_Threads_Local``), restored on exit; other threads and
``torch.get_num_threads()`` afterwards are untouched. Where torch has no OpenMP runtime or no MKL (the
symbols are looked up once in torch's own libtorch_cpu) the missing control is left alone. The compiled
loops (``rnnstate._ext``) apply the size rule in C++ (``StepThreads`` in loops.h); the Python side's
single-threaded setting reaches them too.
"""
from __future__ import annotations

import ctypes
import glob
import os
import time

import torch

# Same threshold as kParallelStepMacs in rnnstate/_ext/loops.h: B=1, U=128 (65K) and B=8, U=128 (524K)...
PARALLEL_MIN_STEP_MACS = 1 << 18
CONTENDED_RATIO = 3.0          # threaded calls this much slower than their best ...
CONTENDED_CALLS = 2            # ... this many in a row: other processes hold the cores
CONTENDED_SECONDS = 2.0        # then single-threaded calls for this long, and a threaded probe again

def _controls():
    """(omp_get_max_threads, omp_set_num_threads, MKL_Set_Num_Threads_Local or None), or None."""
    libs = glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.*"))
    try:
        lib = ctypes.CDLL(libs[0]) if libs else None
    except OSError:
        lib = None
    if lib is None or not hasattr(lib, "omp_set_num_threads") or not hasattr(lib, "omp_get_max_threads"):
        return None
    get, put = lib.omp_get_max_threads, lib.omp_set_num_threads
    get.restype, get.argtypes = ctypes.c_int, []
    put.restype, put.argtypes = None, [ctypes.c_int]
    mkl = getattr(lib, "MKL_Set_Num_Threads_Local", None)
    if mkl is not None:
        mkl.restype, mkl.argtypes = ctypes.c_int, [ctypes.c_int]
    return get, put, mkl


_CONTROLS = _controls()


def step_macs(cell, batch: int) -> int:
    """Multiply-adds of one timestep's recurrent GEMM: batch x (gates * units) x units."""
    units = cell.units
    return batch * getattr(cell, "n_gates", 4) * units * units      # the cell says its gate count


class _SingleThreaded:
    """Context: the calling thread's parallel regions and MKL calls use one thread until exit (a class,
    not a generator: it runs around every streaming step, ~1 us)."""

    __slots__ = ("prev", "prev_mkl")

    def __enter__(self):
        self.prev = 0
        if _CONTROLS is None or torch.get_num_threads() <= 1:   # get_num_threads: torch's lazy init first
            return self
        get, put, mkl = _CONTROLS
        self.prev = get()
        put(1)
        self.prev_mkl = mkl(1) if mkl is not None else 0
        return self

    def __exit__(self, *exc):
        if self.prev:
            _, put, mkl = _CONTROLS
            put(self.prev)
            if mkl is not None:
                mkl(self.prev_mkl)                              # 0: MKL's process-wide setting again
        return False


def single_threaded():
    """The calling thread's parallel regions and MKL calls use one thread inside the `with` block."""
    return _SingleThreaded()


class _Timed:
    """Context around a threaded call: times it, and marks the machine contended when it ran much slower
    than the fastest threaded call of the same shape (`key`)."""

    __slots__ = ("key", "t0")

    def __init__(self, key):
        self.key = key

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            took = time.perf_counter() - self.t0
            best = _BEST.get(self.key)
            if best is not None and took > CONTENDED_RATIO * best:
                _SLOW[0] += 1
                if _SLOW[0] >= CONTENDED_CALLS:            # not one noisy call: a run of stalled ones
                    _CONTENDED_UNTIL[0] = time.monotonic() + CONTENDED_SECONDS
                    _SLOW[0] = 0
            else:
                _SLOW[0] = 0
            if best is None or took < best:
                _BEST[self.key] = took
        return False


_BEST: dict = {}                  # (step MACs, T, autograd) -> fastest threaded call seen, seconds
_CONTENDED_UNTIL = [0.0]          # time.monotonic() until which calls run single-threaded
_SLOW = [0]                       # threaded calls in a row slower than CONTENDED_RATIO x their best


def contended() -> bool:
    """Whether a recent threaded call measured contention (calls run single-threaded until it expires)."""
    return time.monotonic() < _CONTENDED_UNTIL[0]


def contended() -> bool:
    """Whether calls run single-threaded now because threaded ones were measured contended."""
    return time.monotonic() < _CONTENDED_UNTIL[0]


def single_threaded_below(cell, batch: int, steps: int = 1):
    """The thread policy for one call of `cell` at `batch` x `steps` (the module docstring):
    ``single_threaded()`` for small steps or while contended, else a context that times the threaded call."""
    macs = step_macs(cell, batch)
    if macs < PARALLEL_MIN_STEP_MACS or _CONTROLS is None:
        return _SingleThreaded()
    if contended():
        return _SingleThreaded()
    return _Timed((macs, steps, torch.is_grad_enabled()))
