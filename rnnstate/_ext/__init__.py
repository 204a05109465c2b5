"""Optional compiled kernels (``rnnstate._ext._C``, built from ``_C.cpp`` by ``setup.py`` at install).

Availability is decided once, explicitly, never by catching an import error: the module must have
been built (``importlib.util.find_spec``) and built against the torch that is running (the version
``setup.py`` recorded next to it). ``unavailable_reason()`` says why not (``None`` when available).

``lstm_sequence`` is inference-only (no autograd): the LSTM time loop writing h_t, c_t and, when
asked, the gates i, f, g, o of every step straight into (B, T, U) outputs. ``gru_sequence`` is the
same for the GRU (reset_after=True): h_t and, when asked, the gates z, r, n. Same numbers as
``rnnstate.loop.reference.time_loop`` (float32: about 1e-6). ``lstm_train`` is the LSTM loop under
autograd: its backward (``_C.lstm_backward``, backward.cpp) is compiled too. ``rnn_sequence`` is the
SimpleRNN's loop (tanh or relu), ``lstm_step`` one LSTM step for streaming.
"""
from __future__ import annotations

import importlib.util
import os

import torch

PATH_NAME = "compiled-LSTM"
GRU_PATH_NAME = "compiled-GRU"
RNN_PATH_NAME = "compiled-SimpleRNN"

_REBUILD = ("build it against your torch with `pip install --no-build-isolation .` in rnnstate's source tree "
            "or unpacked sdist (`-e .` for a checkout; `make install` does it; needs a C++ compiler)")


def _check() -> str | None:
    spec = importlib.util.find_spec(__name__ + "._C")
    if spec is None or spec.origin is None:
        if os.environ.get("RNNSTATE_NO_EXT"):
            return "rnnstate._ext._C is not built (RNNSTATE_NO_EXT is set)"
        return ("rnnstate._ext._C is not built: this rnnstate was installed without its compiled kernels (a "
                "plain `pip install .` or wheel build runs in an isolated environment without torch, so the "
                f"extension is skipped); {_REBUILD}")
    here = os.path.dirname(spec.origin)
    stamp = os.path.join(here, "_C.torch_version")
    lines = open(stamp).read().split() if os.path.exists(stamp) else []
    built_for = lines[0] if lines else None
    if built_for != torch.__version__:
        return (f"rnnstate._ext._C was built against torch {built_for or '(unknown)'}, this is torch "
                f"{torch.__version__}; re{_REBUILD}")
    digest = _sources_digest(here)
    if digest is not None and (len(lines) < 2 or lines[1] != digest):
        return f"rnnstate._ext._C is stale (built from other sources than those next to it); re{_REBUILD}"
    return None


def _sources_digest(here):
    """sha256 of the sources next to the module, as setup.py computes it (None where they are not
    shipped, e.g. a wheel)."""
    import glob
    import hashlib
    names = sorted(glob.glob(os.path.join(here, "*.cpp")) + glob.glob(os.path.join(here, "*.h")))
    if not names:
        return None
    h = hashlib.sha256()
    for name in names:
        with open(name, "rb") as f:
            h.update(os.path.basename(name).encode() + b"\0" + f.read())
    return h.hexdigest()


_REASON = _check()
# Imported only when checked above (built, and for this torch). ``from . import _C`` would not do
# here once a module attribute named _C exists, hence import_module.
_C = importlib.import_module(__name__ + "._C") if _REASON is None else None


def unavailable_reason() -> str | None:
    """Why the compiled kernels can't be used in this process (None when they can)."""
    return _REASON


class KernelsUnavailableWarning(UserWarning):
    """rnnstate runs without its compiled kernels (slower GRU/SimpleRNN, streaming, short-sequence
    training); the message says why and how to build them. Given once per process."""


_WARNED = False


def warn_unavailable_once() -> None:
    """At the first use of a recurrent layer, warn once when the compiled kernels are missing (not when
    they were switched off on purpose with RNNSTATE_NO_EXT), pointing at the user's line."""
    global _WARNED
    if _WARNED or _REASON is None or os.environ.get("RNNSTATE_NO_EXT"):
        return
    _WARNED = True
    import sys
    import warnings
    inside = (os.path.dirname(os.path.dirname(__file__)), os.path.dirname(torch.__file__))
    level, frame = 1, sys._getframe(0)
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"rnnstate runs without its compiled kernels (torch's ops instead: slower, same numbers). "
                  f"{_REASON}", KernelsUnavailableWarning, stacklevel=level)


def lstm_sequence(x, h0, c0, weight_ih, weight_hh, bias_ih, *, want_c: bool, want_gates: bool):
    """x (B, T, F) float32/float64 CPU, h0 and c0 (B, U). No autograd.

    Returns (outputs (B, T, U), h_T, c_T, c_seq (B, T, U) or None, (i, f, g, o) each (B, T, U) or None).
    """
    res = _C.lstm_sequence(x, h0, c0, weight_ih, weight_hh, bias_ih, want_c, want_gates)
    return res[0], res[1], res[2], res[3], (tuple(res[4:]) if want_gates else None)


def gru_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, *, want_gates: bool):
    """GRU, reset_after=True (torch's layout, gate order r, z, n). x (B, T, F) float32/float64 CPU,
    h0 (B, U); bias_ih and bias_hh (3U,) both or neither. No autograd.

    Returns (outputs (B, T, U), h_T, (z, r, n) each (B, T, U) or None): Keras' gate order z, r, h~.
    """
    res = _C.gru_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, want_gates, False)
    return res[0], res[1], (tuple(res[2:]) if want_gates else None)


class _LSTMTrain(torch.autograd.Function):
    """The compiled LSTM loop under autograd: the forward keeps c_t and the gates of every step (what
    backpropagation through time reads), the backward is ``_C.lstm_backward``. Not twice differentiable."""

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih):
        res = _C.lstm_sequence(x, h0, c0, weight_ih, weight_hh, bias_ih, True, True)
        out, hT, cT, cs = res[0], res[1], res[2], res[3]
        ctx.save_for_backward(x, h0, c0, weight_ih, weight_hh, out, cs, *res[4:])
        ctx.has_bias = bias_ih is not None
        ctx.set_materialize_grads(False)
        return out, hT, cT

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, d_hT, d_cT):
        x, h0, c0, w_ih, w_hh, out, cs, *gates = ctx.saved_tensors
        need = ctx.needs_input_grad
        dx, dh0, dc0, dw_ih, dw_hh, db = _C.lstm_backward(x, h0, c0, w_ih, w_hh, ctx.has_bias, out, cs, gates,
                                                          d_out, d_hT, d_cT, need[0], need[1] or need[2])
        return (dx, dh0 if need[1] else None, dc0 if need[2] else None, dw_ih if need[3] else None,
                dw_hh if need[4] else None, db if need[5] else None)


def lstm_train(x, h0, c0, weight_ih, weight_hh, bias_ih):
    """x (B, T >= 1, F) float32/float64 CPU, h0 and c0 (B, U): the LSTM loop, differentiable (the
    backward is compiled too). Returns (outputs (B, T, U), h_T, c_T)."""
    return _LSTMTrain.apply(x, h0, c0, weight_ih, weight_hh, bias_ih)


def lstm_step(x, h, c, weight_ih, weight_hh, bias_ih):
    """One LSTM step at the least per-call cost (streaming): x (B, F), h and c (B, U) float32/float64
    CPU -> (h', c'). No autograd."""
    return _C.lstm_step(x, h, c, weight_ih, weight_hh, bias_ih)


def rnn_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, *, relu: bool):
    """SimpleRNN (tanh, or relu) over x (B, T, F) float32/float64 CPU from h0 (B, U). No autograd.
    Returns (outputs (B, T, U), h_T)."""
    out, h = _C.rnn_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu)
    return out, h


class _GRUTrain(torch.autograd.Function):
    """The compiled GRU (reset_after=True) loop under autograd: the forward keeps the gates and
    h_{t-1} @ W_hn^T of every step, the backward is ``_C.gru_backward``. Not twice differentiable."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        res = _C.gru_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, True, True)
        out, hT, z, r, n, ghn = res
        ctx.save_for_backward(x, h0, weight_ih, weight_hh, bias_hh, out, z, r, n, ghn)
        ctx.has_bias = bias_ih is not None
        ctx.set_materialize_grads(False)
        return out, hT

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, d_hT):
        x, h0, w_ih, w_hh, b_hh, out, z, r, n, ghn = ctx.saved_tensors
        need = ctx.needs_input_grad
        # gates in torch's order for the kernel's reads: z, r, n as the forward wrote them
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = _C.gru_backward(x, h0, w_ih, w_hh, b_hh, ctx.has_bias, out, [z, r, n],
                                                              ghn, d_out, d_hT, need[0], need[1])
        return (dx, dh0 if need[1] else None, dw_ih if need[2] else None, dw_hh if need[3] else None,
                db_ih if need[4] else None, db_hh if need[5] else None)


def gru_train(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
    """GRU (reset_after=True; torch's layout, gate order r, z, n) over x (B, T >= 1, F), differentiable
    (the backward is compiled too). bias_ih and bias_hh both or neither. Returns (outputs, h_T)."""
    return _GRUTrain.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh)


class _RNNTrain(torch.autograd.Function):
    """The compiled SimpleRNN loop under autograd (its outputs are all the backward reads)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu):
        out, hT = _C.rnn_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu)
        ctx.save_for_backward(x, h0, weight_ih, weight_hh, out)
        ctx.has_bias, ctx.relu = bias_ih is not None, relu
        ctx.set_materialize_grads(False)
        return out, hT

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_out, d_hT):
        x, h0, w_ih, w_hh, out = ctx.saved_tensors
        need = ctx.needs_input_grad
        dx, dh0, dw_ih, dw_hh, db = _C.rnn_backward(x, h0, w_ih, w_hh, ctx.has_bias, ctx.relu, out, d_out, d_hT,
                                                    need[0], need[1])
        return (dx, dh0 if need[1] else None, dw_ih if need[2] else None, dw_hh if need[3] else None,
                db if need[4] else None, db if need[5] else None, None)


def rnn_train(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, *, relu: bool):
    """SimpleRNN over x (B, T >= 1, F), differentiable (the backward is compiled too). Returns (outputs, h_T)."""
    return _RNNTrain.apply(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu)
