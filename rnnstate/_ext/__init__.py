"""Optional compiled kernels (``rnnstate._ext._C``, built from ``_C.cpp`` by ``setup.py`` at install).

Availability is decided once, explicitly, never by catching an import error: the module must have
been built (``importlib.util.find_spec``) and built against the torch that is running (the version
``setup.py`` recorded next to it). ``unavailable_reason()`` says why not (``None`` when available).

The kernels are registered torch ops, ``torch.ops.rnnstate.*`` (``TORCH_LIBRARY`` in ``_C.cpp``); this
module registers their fake (shape) kernels, their autograd formulas and their vmap rules
(``_ops.py``), so torch.compile, torch.export and torch.func see them as ordinary ops.

``lstm_sequence`` is the LSTM time loop writing h_t, c_t and, when asked, the gates i, f, g, o of every
step straight into (B, T, U) outputs (float32 at batch <= 8: a loop of its own,
``small_batch_loop``); ``gru_sequence`` the same for the GRU (reset_after=True): h_t and,
when asked, the gates z, r, n; ``rnn_sequence`` the SimpleRNN's loop (tanh or relu); ``lstm_step``,
``gru_step`` and ``rnn_step`` one step of each for streaming. Same numbers as
``rnnstate.loop.reference.time_loop`` (float32: about 1e-6).
These wrappers are inference-only (in eager mode they call the CPU kernel below autograd);
``lstm_train`` / ``gru_train`` / ``rnn_train`` are differentiable (the op's registered autograd, whose
backward is compiled too: ``torch.ops.rnnstate.*_backward``, backward.cpp).
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
if _C is not None:
    from . import _ops      # fake kernels, autograd and vmap rules of torch.ops.rnnstate.*
    _lstm_sequence = torch.ops.rnnstate.lstm_sequence.default
    _lstm_sequence_raw = _lstm_sequence._op
    _lstm_step = torch.ops.rnnstate.lstm_step.default
    # the op's C++ entry, without OpOverload.__call__'s Python frame: what the eager streaming fast path
    # calls per step (measured: the same per-call time as a direct pybind11 binding; the frame adds ~20%)
    _lstm_step_eager = getattr(_lstm_step, "_op", _lstm_step)
    _gru_step = torch.ops.rnnstate.gru_step.default
    _gru_step_eager = getattr(_gru_step, "_op", _gru_step)
    _rnn_step = torch.ops.rnnstate.rnn_step.default
    _rnn_step_eager = getattr(_rnn_step, "_op", _rnn_step)
    _gru_sequence = torch.ops.rnnstate.gru_sequence.default
    _gru_sequence_raw = _gru_sequence._op
    _rnn_sequence = torch.ops.rnnstate.rnn_sequence.default
    _rnn_sequence_raw = _rnn_sequence._op


def small_batch_loop(x, units: int) -> bool:
    """Whether ``lstm_sequence`` / ``gru_sequence`` run `x` (B, T, F) with `units` on the small-batch loop
    (``small_batch.cpp``: float32, B <= 8, U <= 512, B * T >= 32, a CPU with AVX-512); the op decides in
    C++, this asks it."""
    return (_C is not None and x.dtype == torch.float32 and x.device.type == "cpu"
            and bool(_C.small_batch_loop(x.shape[0], x.shape[1], units)))


def small_batch_isa() -> str | None:
    """The vector unit the small-batch loop runs with here ("avx512", "avx2", "generic"), or None without
    the compiled kernels."""
    return None if _C is None else _C.small_batch_isa


def _inference(op, raw, *args):
    """An inference call: in plain eager mode straight to the CPU kernel, below autograd (the registered
    autograd formula is Python: its no-grad redispatch costs more than a short sequence's steps,
    measured 2x at T=1); under torch.compile/export/vmap the op itself, which those tools trace."""
    if torch.compiler.is_compiling() or torch._C._functorch.is_batchedtensor(args[0]):
        return op(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return raw(*args)


def _train(op, fn, *args):
    """A differentiable call: in plain eager mode through ``fn`` (the op's autograd formulas as a
    torch.autograd.Function around the raw kernel, _ops._eager_function); under torch.compile / export /
    vmap the op itself, which those tools trace."""
    if torch.compiler.is_compiling() or torch._C._functorch.is_batchedtensor(args[0]):
        return op(*args)
    return fn.apply(*args)


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
    """x (B, T, F) float32/float64 CPU, h0 and c0 (B, U). No autograd (``lstm_train`` is differentiable).

    Returns (outputs (B, T, U), h_T, c_T, c_seq (B, T, U) or None, (i, f, g, o) each (B, T, U) or None).
    """
    res = _inference(_lstm_sequence, _lstm_sequence_raw, x, h0, c0, weight_ih, weight_hh, bias_ih, want_c, want_gates)
    return res[0], res[1], res[2], (res[3] if want_c else None), (tuple(res[4:]) if want_gates else None)


def gru_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, *, want_gates: bool):
    """GRU, reset_after=True (torch's layout, gate order r, z, n). x (B, T, F) float32/float64 CPU,
    h0 (B, U); bias_ih and bias_hh (3U,) both or neither. Not differentiable (``gru_train`` is).

    Returns (outputs (B, T, U), h_T, (z, r, n) each (B, T, U) or None): Keras' gate order z, r, h~.
    """
    res = _inference(_gru_sequence, _gru_sequence_raw, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, want_gates, False)
    return res[0], res[1], (tuple(res[2:5]) if want_gates else None)


def lstm_train(x, h0, c0, weight_ih, weight_hh, bias_ih):
    """The LSTM loop, differentiable (the backward is compiled too: ``torch.ops.rnnstate.lstm_backward``).
    x (B, T, F) float32/float64 CPU, h0 and c0 (B, U). Returns (outputs (B, T, U), h_T, c_T)."""
    res = _train(_lstm_sequence, _ops.LSTMTrain, x, h0, c0, weight_ih, weight_hh, bias_ih, True, True)
    return res[0], res[1], res[2]


def gru_train(x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
    """GRU (reset_after=True; torch's layout, gate order r, z, n) over x (B, T, F), differentiable (the
    backward is compiled too). bias_ih and bias_hh both or neither. Returns (outputs, h_T)."""
    res = _train(_gru_sequence, _ops.GRUTrain, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, True, True)
    return res[0], res[1]


def lstm_step(x, h, c, weight_ih, weight_hh, bias_ih):
    """One LSTM step at the least per-call cost (streaming): x (B, F) or (B, 1, F), h and c (B, U) float32/float64
    CPU -> (h', c'). No autograd."""
    if torch.compiler.is_compiling():
        return _lstm_step(x, h, c, weight_ih, weight_hh, bias_ih)
    return _lstm_step_eager(x, h, c, weight_ih, weight_hh, bias_ih)


def gru_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """One GRU step (reset_after=True; torch's layout, gate order r, z, n) at the least per-call cost
    (streaming): x (B, F) or (B, 1, F), h (B, U) float32/float64 CPU; bias_ih, bias_hh (3U,) or None -> h'.
    No autograd."""
    if torch.compiler.is_compiling():
        return _gru_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    return _gru_step_eager(x, h, weight_ih, weight_hh, bias_ih, bias_hh)


def rnn_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh, *, relu: bool):
    """One SimpleRNN step (tanh, or relu) at the least per-call cost (streaming): x (B, F), h (B, U)
    float32/float64 CPU (x may be (B, 1, F)); bias_ih, bias_hh (U,) or None -> h'. No autograd."""
    if torch.compiler.is_compiling():
        return _rnn_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh, relu)
    return _rnn_step_eager(x, h, weight_ih, weight_hh, bias_ih, bias_hh, relu)


def rnn_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, *, relu: bool):
    """SimpleRNN (tanh, or relu) over x (B, T, F) float32/float64 CPU from h0 (B, U). No autograd
    (``rnn_train`` is differentiable). Returns (outputs (B, T, U), h_T)."""
    return _inference(_rnn_sequence, _rnn_sequence_raw, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu)


def rnn_train(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, *, relu: bool):
    """SimpleRNN over x (B, T, F), differentiable (the backward is compiled too). Returns (outputs, h_T)."""
    return _train(_rnn_sequence, _ops.RNNTrain, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu)
