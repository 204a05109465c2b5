"""Recurrent kernels under a mixed dtype policy (``rnnstate.mixed_precision``, e.g. ``"mixed_bfloat16"``).

A mixed layer's call runs under ``torch.autocast`` (``mixed_precision.run_mixed``). For its recurrence
``rnnstate.loop.fused`` asks this module first:

* inference of an LSTM under ``mixed_bfloat16`` on a CPU with bfloat16 units (AVX512-BF16): rnnstate's
  compiled mixed loop (``torch.ops.rnnstate.lstm_sequence_bf16``): bfloat16 matrix products (weights
  packed once per weight version) with float32 accumulation, float32 gate math and cell state; h_t is
  rounded to bfloat16 once per step, as the product and the output take it;
* on a CPU without bfloat16 units: float32 (autocast off; bf16 there is emulated, slower than float32),
  and ``last_path`` says so;
* otherwise (training, GRU/SimpleRNN, sequences asked for): torch's op under autocast (oneDNN's bf16 LSTM
  forward and backward), as for ``nn.LSTM``.
"""
from __future__ import annotations

import os

import torch

from .. import _ext
from .. import mixed_precision as _mp

MIXED_PATH = "compiled-LSTM mixed_bfloat16 (bfloat16 products, float32 accumulation, gate math and cell state)"
NO_UNITS = "this CPU has no bfloat16 units (AVX512-BF16 / AMX), where bfloat16 is emulated: ran float32"

_UNITS: list = []


def bf16_units_reason() -> str | None:
    """Why this CPU can't run bfloat16 products natively (None when it can): cpuid through the compiled
    extension, else /proc/cpuinfo's flags (avx512_bf16, amx_bf16). ``RNNSTATE_NO_BF16=1`` says no (tests)."""
    if os.environ.get("RNNSTATE_NO_BF16"):
        return NO_UNITS + " (RNNSTATE_NO_BF16 is set)"
    if not _UNITS:
        _UNITS.append(_detect())
    return None if _UNITS[0] else NO_UNITS


def _detect() -> bool:
    if _ext.unavailable_reason() is None:
        return bool(torch.ops.rnnstate.bf16_supported())
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def kernel_reason(cell, x, recording: bool, want: bool) -> str | None:
    """Why the compiled mixed loop can't run this call (None when it can)."""
    if not hasattr(cell, "run_mixed_bf16"):
        return f"{type(cell).__name__} has no mixed kernel (torch's op under autocast)"
    if recording:
        return "autograd is recording (training: torch's op under autocast, oneDNN's bfloat16 forward and backward)"
    if want:
        return "cell/gate sequences were asked for (torch's op under autocast, gates recomputed)"
    reason = _ext.unavailable_reason()
    if reason is not None:
        return reason
    if x.device.type != "cpu":
        return f"inputs on {x.device.type}; the compiled mixed kernel is CPU-only"
    return None


def policy_dtype(x):
    """The compute dtype of the mixed layer whose call is running, when autocast is on for x's device
    (None otherwise: plain autocast by the user, or no autocast)."""
    dt = _mp.active_dtype()
    return dt if dt is not None and torch.is_autocast_enabled(x.device.type) else None


def run_float32(cell, x, state, training):
    """No bfloat16 units: the sequence in float32 with autocast off; (outputs, final)."""
    with torch.autocast(x.device.type, enabled=False):
        st = type(state)(*[s.float() for s in state]) if hasattr(state, "_fields") else tuple(s.float() for s in state)
        return cell.run_torch_op(x.float(), st, training=training)
