"""Optional compiled kernels (``rnnstate._ext._C``, built from ``_C.cpp`` by ``setup.py`` at install).

Availability is decided once, explicitly, never by catching an import error: the module must have
been built (``importlib.util.find_spec``) and built against the torch that is running (the version
``setup.py`` recorded next to it). ``unavailable_reason()`` says why not (``None`` when available).

``lstm_sequence`` is inference-only (no autograd): the LSTM time loop writing h_t, c_t and, when
asked, the gates i, f, g, o of every step straight into (B, T, U) outputs. ``gru_sequence`` is the
same for the GRU (reset_after=True): h_t and, when asked, the gates z, r, n. Same numbers as
``rnnstate.loop.reference.time_loop`` (float32: about 1e-6).
"""
from __future__ import annotations

import importlib.util
import os

import torch

PATH_NAME = "compiled-LSTM"
GRU_PATH_NAME = "compiled-GRU"

_REBUILD = "build it with `pip install --no-build-isolation -e .` (what `make install` runs)"


def _check() -> str | None:
    spec = importlib.util.find_spec(__name__ + "._C")
    if spec is None or spec.origin is None:
        return f"rnnstate._ext._C is not built; {_REBUILD}"
    stamp = os.path.join(os.path.dirname(spec.origin), "_C.torch_version")
    built_for = open(stamp).read().strip() if os.path.exists(stamp) else None
    if built_for != torch.__version__:
        return (f"rnnstate._ext._C was built against torch {built_for or '(unknown)'}, this is torch "
                f"{torch.__version__}; re{_REBUILD}")
    return None


_REASON = _check()
# Imported only when checked above (built, and for this torch). ``from . import _C`` would not do
# here once a module attribute named _C exists, hence import_module.
_C = importlib.import_module(__name__ + "._C") if _REASON is None else None


def unavailable_reason() -> str | None:
    """Why the compiled kernels can't be used in this process (None when they can)."""
    return _REASON


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
    res = _C.gru_sequence(x, h0, weight_ih, weight_hh, bias_ih, bias_hh, want_gates)
    return res[0], res[1], (tuple(res[2:]) if want_gates else None)
