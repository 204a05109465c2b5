"""Threads per call, chosen from the size of one timestep's work.

A time loop that forks threads inside a step (torch's oneDNN RNN, MKL's sgemm, ``at::parallel_for``)
joins them before the next step can start: on a busy machine one descheduled thread stalls every step
for a scheduler slice (milliseconds), e.g. a (32, 100, 32) -> LSTM(128) forward went from 11 ms to
170 ms with two busy processes on a 2-core machine. Below ``PARALLEL_MIN_STEP_MACS`` multiply-adds per
step (the recurrent GEMM, B x gates*U x U) the threads pay little even idle, so the call runs on the
calling thread only: ``single_threaded_below(cell, batch)`` around the kernel call.

Only thread-local settings change (OpenMP's thread count of the calling thread, which torch's
``parallel_for`` and oneDNN read, and ``MKL_Set_Num_Threads_Local``), restored on exit; other threads and
``torch.get_num_threads()`` afterwards are untouched. Where torch has no OpenMP runtime or no MKL (the
symbols are looked up once in torch's own libtorch_cpu) the missing control is left alone. The compiled
loops (``rnnstate._ext``) apply the same rule in C++ (``StepThreads`` in loops.h), per step loop, so their
backward passes are covered too.
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os

import torch

# Same crossover as kParallelStepMacs in rnnstate/_ext/loops.h (measured; benchmarks/README.md).
PARALLEL_MIN_STEP_MACS = 1 << 26

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


_NO_LIMIT = contextlib.nullcontext()


def single_threaded_below(cell, batch: int):
    """``single_threaded()`` when one step of `cell` at `batch` is below PARALLEL_MIN_STEP_MACS, else a
    no-op context (large steps keep all of torch's threads)."""
    if step_macs(cell, batch) < PARALLEL_MIN_STEP_MACS:
        return _SingleThreaded()
    return _NO_LIMIT
