"""Fused kernels: torch's own RNN ops (oneDNN on CPU, cuDNN on GPU) and rnnstate's compiled CPU loops
(``rnnstate._ext``). No semantics of their own.

``unsupported_reason`` says why a configuration can't run fused (``None`` when it can); the layer
never picks a path by catching exceptions. Every path gives the same numbers as
``rnnstate.loop.reference.time_loop`` (tested over the flag grid, values and gradients).

Cell-state and gate sequences: torch's ops return only the h sequence. Given it, every gate of
every step is one batched matmul on ``h_{t-1}`` (``recompute_sequences``); for the LSTM the cell
state then follows from ``c_t = f_t * c_{t-1} + i_t * g_t``, one fused multiply-add per step.
In inference on CPU the sequences come instead from the compiled loops (``run_compiled``): one
time loop that writes h_t (c_t) and the gates of every step as it goes; ``compiled_reason`` says
why it can't run (``None`` when it can).

Which kernel on CPU, by measurement (benchmarks/README.md):

* inference: the GRU (reset_after=True) and the SimpleRNN always run their compiled loops
  (``prefers_compiled``: torch's ops for them are its native per-step loops; oneDNN has none), the
  LSTM runs oneDNN (as fast as the compiled loop or faster) unless sequences are asked for or the
  sequence is short (T <= 4, streaming);
* training (``compiled_train_reason``, ``run_compiled_train``): the GRU and the SimpleRNN run the
  compiled loop with a compiled backward (up to batch x units = 32768), the LSTM only on short
  sequences (T <= 32, batch >= 8), where oneDNN's per-call set-up is most of its time.
"""
from __future__ import annotations

import torch

from .. import _ext
from . import threads

_FUSED_CELLS = ("LSTMCell", "GRUCell", "SimpleRNNCell")


_NAMES: dict = {}


def kernel_name(device: torch.device, cell=None) -> str:
    """The ``last_path`` label of torch's fused op on `device` (for `cell`: oneDNN has an LSTM kernel
    only; torch runs the GRU and the SimpleRNN on CPU with its native loop, "fused-CPU")."""
    name = _NAMES.get(device.type)
    if name is None:
        name = _NAMES[device.type] = _kernel_name(device)
    if name == "fused-oneDNN" and cell is not None and type(cell).__name__ != "LSTMCell":
        return "fused-CPU"
    return name


def _kernel_name(device: torch.device) -> str:
    if device.type == "cuda":
        return "fused-cuDNN" if torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled else "fused-CUDA"
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        return "fused-oneDNN"
    return f"fused-{device.type}"


def unsupported_reason(cell) -> str | None:
    """Why this cell's configuration can't run on a fused kernel (None when it can)."""
    name = type(cell).__name__
    if name not in _FUSED_CELLS or not hasattr(cell, "weight_ih"):
        return f"{name} is a custom cell; fused kernels exist only for LSTMCell, GRUCell and SimpleRNNCell"
    act = cell.activation_name
    if name == "SimpleRNNCell":
        if act not in ("tanh", "relu"):
            return f"activation={act!r}; the fused SimpleRNN kernels need 'tanh' or 'relu'"
    else:
        if act != "tanh":
            return f"activation={act!r}; the fused kernels need 'tanh'"
        if cell.recurrent_activation_name != "sigmoid":
            return f"recurrent_activation={cell.recurrent_activation_name!r}; the fused kernels need 'sigmoid'"
    if name == "GRUCell" and not cell.reset_after:
        return "reset_after=False; the fused GRU kernel implements reset_after=True only"
    return None


def dynamic_reason(*, recurrent_dropout_active: bool, mask) -> str | None:
    """Why this particular call can't run fused (None when it can)."""
    if recurrent_dropout_active:
        return "recurrent_dropout is active (training); the fused kernels can't mask h between steps"
    if mask is not None:
        return ("the mask is not right-padded (or cell/gate sequences were asked for); such masks run on the "
                "reference loop (right-padded ones run fused, as packed sequences)")
    return None


CELL_OP_PATH = "fused-cell ops (short sequence)"
CELL_OP_MAX_STEPS = 4   # measured crossover on CPU: below it the sequence kernels' set-up dominates


def run_cell_op(cell, x, state):
    """Short sequences (T <= CELL_OP_MAX_STEPS) on torch's fused single-step ops (``torch.lstm_cell``,
    ``torch.gru_cell``, ``torch.rnn_tanh_cell``): for a few steps the sequence kernels' set-up costs more
    than the steps themselves (streaming one step at a time is the main case)."""
    name = type(cell).__name__
    w_ih, w_hh, b_ih, b_hh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    T = x.shape[1]
    if name == "LSTMCell":
        h, c = state
        outs = []
        for t in range(T):
            h, c = torch.lstm_cell(x[:, t], (h, c), w_ih, w_hh, b_ih, b_hh)
            outs.append(h)
        out = h.unsqueeze(1) if T == 1 else torch.stack(outs, 1)
        return out, cell.state_type(h, c)
    if name == "GRUCell":
        op = torch.gru_cell
    else:
        op = torch.rnn_tanh_cell if cell.activation_name == "tanh" else torch.rnn_relu_cell
    h = state[0]
    outs = []
    for t in range(T):
        h = op(x[:, t], h, w_ih, w_hh, b_ih, b_hh)
        outs.append(h)
    out = h.unsqueeze(1) if T == 1 else torch.stack(outs, 1)
    return out, cell.state_type(h)


def _params(cell):
    if cell.bias_ih is None:
        return [cell.weight_ih, cell.weight_hh], False
    return [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh], True


def run(cell, x, state, *, training=False):
    """x (B, T, F), state NamedTuple of (B, U) -> (outputs (B, T, U), final state NamedTuple)."""
    params, has_bias = _params(cell)
    name = type(cell).__name__
    if name == "LSTMCell":
        h0, c0 = state
        out, h, c = torch.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)), params, has_bias, 1, 0.0, training,
                               False, True)
        return out, cell.state_type(h.squeeze(0), c.squeeze(0))
    if name == "GRUCell":
        op = torch.gru
    else:
        op = torch.rnn_tanh if cell.activation_name == "tanh" else torch.rnn_relu
    out, h = op(x, state[0].unsqueeze(0), params, has_bias, 1, 0.0, training, False, True)
    return out, cell.state_type(h.squeeze(0))


def recompute_sequences(cell, x, state0, outputs, *, want_states: bool, want_gates: bool):
    """From the fused h sequence `outputs` (B, T, U), recompute every gate of every step with one
    batched matmul on ``h_{t-1}`` and, for the LSTM, the cell-state sequence from
    ``c_t = f_t * c_{t-1} + i_t * g_t`` (one fused multiply-add per step).
    Returns (state_seqs or None, gates or None). Differentiable; without autograd it works in place."""
    name = type(cell).__name__
    if name == "SimpleRNNCell":
        return ((outputs,) if want_states else None), None
    B, T, U = outputs.shape
    h_prev = outputs.new_empty(B, T, U)                                          # (B, T, U)
    h_prev[:, 0] = state0[0]
    h_prev[:, 1:] = outputs[:, :-1]
    ra, a = cell.recurrent_activation, cell.activation
    no_grad = not torch.is_grad_enabled()
    if name == "GRUCell":
        xw = cell.project_input(x)                                               # (B, T, 3U)
        gh = torch.nn.functional.linear(h_prev, cell.weight_hh, cell.bias_hh)     # (B, T, 3U)
        xr, xz, xn = xw.chunk(3, 2)
        hr, hz, hn = gh.chunk(3, 2)
        r, z = ra(xr + hr), ra(xz + hz)
        n = a(xn + r * hn)
        return ((outputs,) if want_states else None), ((z, r, n) if want_gates else None)
    z = cell.project_input(x)                                                    # (B, T, 4U)
    if no_grad:
        z.view(B * T, 4 * U).addmm_(h_prev.view(B * T, U), cell.weight_hh.t())
        z[..., : 2 * U].sigmoid_()                                               # i, f
        z[..., 2 * U: 3 * U].tanh_()                                             # g
        if want_gates:
            z[..., 3 * U:].sigmoid_()                                            # o
        i, f, g, o = z.chunk(4, 2)
    else:
        z = z + h_prev @ cell.weight_hh.t()
        zi, zf, zg, zo = z.chunk(4, 2)
        i, f, g, o = ra(zi), ra(zf), a(zg), ra(zo)
    seqs = None
    if want_states:
        ig = i * g                                                               # (B, T, U)
        c = state0[1]
        if no_grad:
            cs = outputs.new_empty(B, T, U)
            for t in range(T):
                c = torch.addcmul(ig[:, t], f[:, t], c, out=cs[:, t])
        else:
            steps = []
            for t in range(T):
                c = torch.addcmul(ig[:, t], f[:, t], c)
                steps.append(c)
            cs = torch.stack(steps, 1)
        seqs = (outputs, cs)
    return seqs, ((i, f, g, o) if want_gates else None)


COMPILED_PATH = _ext.PATH_NAME + " (h, c and gate sequences in one time loop)"
COMPILED_GRU_PATH = _ext.GRU_PATH_NAME + " (h and gate sequences in one time loop)"
COMPILED_RNN_PATH = _ext.RNN_PATH_NAME + " (one time loop)"
_COMPILED_PATHS = {"LSTMCell": COMPILED_PATH, "GRUCell": COMPILED_GRU_PATH, "SimpleRNNCell": COMPILED_RNN_PATH}


def prefers_compiled(cell) -> bool:
    """Whether plain inference (no state/gate sequences) should run the compiled loop rather than the
    fused op: the GRU's and the SimpleRNN's, whose fused CPU ops are torch's native loops (oneDNN has
    none for them); the compiled loops take 0.2-0.8x their time at every benchmark shape. torch's
    oneDNN LSTM is as fast as the compiled LSTM loop or faster, so the LSTM keeps it."""
    return type(cell).__name__ in ("GRUCell", "SimpleRNNCell")


def compiled_path(cell) -> str:
    """The ``last_path`` label of ``run_compiled`` for this cell."""
    return _COMPILED_PATHS[type(cell).__name__]


def _dtype_device_mismatch(cell, x, state, b2) -> bool:
    w_ih, w_hh, b, dt, dev = cell.weight_ih, cell.weight_hh, cell.bias_ih, x.dtype, x.device
    h0 = state[0]
    c0 = state[1] if len(state) > 1 else h0
    return (w_ih.dtype != dt or w_hh.dtype != dt or h0.dtype != dt or c0.dtype != dt
            or (b is not None and b.dtype != dt) or (b2 is not None and b2.dtype != dt)
            or w_ih.device != dev or w_hh.device != dev or h0.device != dev or c0.device != dev)


def _kernel_inputs_reason(x) -> str | None:
    reason = _ext.unavailable_reason()
    if reason is not None:
        return reason
    if x.device.type != "cpu":
        return f"inputs on {x.device.type}; the compiled kernel is CPU-only"
    if x.dtype not in (torch.float32, torch.float64):
        return f"dtype {x.dtype}; the compiled kernel takes float32 or float64"
    return None


COMPILED_TRAIN_PATH = _ext.PATH_NAME + " (training, short sequence: compiled forward and backward)"
COMPILED_GRU_TRAIN_PATH = _ext.GRU_PATH_NAME + " (training: compiled forward and backward)"
COMPILED_RNN_TRAIN_PATH = _ext.RNN_PATH_NAME + " (training: compiled forward and backward)"
# Measured on CPU (benchmarks/README.md): the compiled training loop is 0.85-1.0x torch's oneDNN
# forward+backward up to about 32 steps at batch >= 8; beyond, or at batch < 8, oneDNN is faster.
COMPILED_TRAIN_MAX_STEPS = 32
COMPILED_TRAIN_MIN_BATCH = 8
# GRU / SimpleRNN training: 0.1-0.8x torch's time up to batch x units of 16384 (B=32, U=512); at
# 65536 (B=256, U=256) 1.05-1.2x, where torch's per-step ops are large enough to run efficiently.
COMPILED_TRAIN_MAX_BATCH_UNITS = 32768


def compiled_train_reason(cell, x, state) -> str | None:
    """Why a call under autograd does not use the compiled forward+backward (None when it does). Call
    only for a configuration ``unsupported_reason`` accepts. The GRU's (reset_after=True) and the
    SimpleRNN's do on CPU up to batch x units of 32768: torch has no oneDNN kernel for them, and the
    compiled ones take 0.1-0.85x its time there; the LSTM's only where it beats oneDNN (short
    sequences, batch >= 8)."""
    name = type(cell).__name__
    if name not in ("LSTMCell", "GRUCell", "SimpleRNNCell"):
        return "LSTM, GRU and SimpleRNN only"
    reason = _kernel_inputs_reason(x)
    if reason is not None:
        return reason
    B, T = x.shape[0], x.shape[1]
    if name in ("GRUCell", "SimpleRNNCell"):
        if name == "GRUCell" and not cell.reset_after:
            return "reset_after=False"
        if T < 1:
            return "no timesteps"
        if B * cell.units > COMPILED_TRAIN_MAX_BATCH_UNITS:
            return (f"batch x units = {B * cell.units}; torch's op is as fast beyond "
                    f"{COMPILED_TRAIN_MAX_BATCH_UNITS}")
        return "inputs, states and weights differ in dtype or device" if _dtype_device_mismatch(
            cell, x, state, cell.bias_hh) else None
    if not 1 <= T <= COMPILED_TRAIN_MAX_STEPS:
        return f"{T} timesteps; oneDNN is faster beyond {COMPILED_TRAIN_MAX_STEPS}"
    if B < COMPILED_TRAIN_MIN_BATCH:
        return f"batch {B}; oneDNN is faster below {COMPILED_TRAIN_MIN_BATCH}"
    if _dtype_device_mismatch(cell, x, state, None):
        return "inputs, states and weights differ in dtype or device"
    return None


def run_compiled_train(cell, x, state):
    """LSTM or GRU over x (B, T, F) from state, differentiable: (outputs (B, T, U), final state, path)."""
    if type(cell).__name__ == "GRUCell":
        out, h = _ext.gru_train(x, state[0], cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        return out, cell.state_type(h), COMPILED_GRU_TRAIN_PATH
    if type(cell).__name__ == "SimpleRNNCell":
        out, h = _ext.rnn_train(x, state[0], cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh,
                                relu=cell.activation_name == "relu")
        return out, cell.state_type(h), COMPILED_RNN_TRAIN_PATH
    out, h, c = _ext.lstm_train(x, state[0], state[1], cell.weight_ih, cell.weight_hh, cell.bias_ih)
    return out, cell.state_type(h, c), COMPILED_TRAIN_PATH


def compiled_reason(cell, x, state) -> str | None:
    """Why the compiled kernel (LSTM, GRU with reset_after=True, SimpleRNN) can't run this call's
    state/gate sequences (None when it can). Call only for a configuration ``unsupported_reason``
    accepts. This entry is inference-only (training: ``compiled_train_reason``)."""
    name = type(cell).__name__
    if name == "LSTMCell":
        b2 = None
    elif name == "GRUCell":
        if not cell.reset_after:
            return "reset_after=False; the compiled GRU kernel implements reset_after=True only"
        b2 = cell.bias_hh
    elif name == "SimpleRNNCell":
        b2 = cell.bias_hh
    else:
        return f"{name} has none (LSTM, GRU and SimpleRNN only)"
    reason = _kernel_inputs_reason(x)
    if reason is not None:
        return reason
    if _dtype_device_mismatch(cell, x, state, b2):
        return "inputs, states and weights differ in dtype or device"
    w_ih, w_hh, b = cell.weight_ih, cell.weight_hh, cell.bias_ih
    h0 = state[0]
    c0 = state[1] if name == "LSTMCell" else h0
    if torch.is_grad_enabled() and (x.requires_grad or w_ih.requires_grad or w_hh.requires_grad or h0.requires_grad
                                    or c0.requires_grad or (b is not None and b.requires_grad)
                                    or (b2 is not None and b2.requires_grad)):
        return "autograd is recording; the compiled kernel is inference-only (use torch.no_grad())"
    return None


def run_compiled(cell, x, state, *, want_states: bool, want_gates: bool):
    """LSTM or GRU over x (B, T, F) from state -> (outputs, final state, state_seqs ((h, c) for the
    LSTM, (h,) for the GRU) or None, gates ((i, f, g, o) / (z, r, n)) or None), from the compiled
    kernel. Same numbers as the reference loop."""
    if type(cell).__name__ == "SimpleRNNCell":
        out, h = _ext.rnn_sequence(x, state[0], cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh,
                                   relu=cell.activation_name == "relu")
        return out, cell.state_type(h), ((out,) if want_states else None), None
    if type(cell).__name__ == "GRUCell":
        out, h, gates = _ext.gru_sequence(x, state[0], cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                          cell.bias_hh, want_gates=want_gates)
        return out, cell.state_type(h), ((out,) if want_states else None), gates
    h0, c0 = state
    out, h, c, cs, gates = _ext.lstm_sequence(x, h0, c0, cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                              want_c=want_states, want_gates=want_gates)
    return out, cell.state_type(h, c), ((out, cs) if want_states else None), gates


def run_fast(cell, x, state, *, want_states=False, want_gates=False, training=False):
    """The sequence (already in processing order) on the fastest kernel that applies, by the policy in
    this module's docstring: (outputs (B, T, U), final state, state_seqs or None, gates or None, path).
    Call only when ``unsupported_reason`` and ``dynamic_reason`` are None. Steps below
    ``threads.PARALLEL_MIN_STEP_MACS`` run on the calling thread only (no per-step fork/join)."""
    if _ext.unavailable_reason() is not None:
        _ext.warn_unavailable_once()
    with threads.single_threaded_below(cell, x.shape[0]):
        return _run_fast(cell, x, state, want_states=want_states, want_gates=want_gates, training=training)


def _run_fast(cell, x, state, *, want_states=False, want_gates=False, training=False):
    want = want_states or want_gates
    recording = torch.is_grad_enabled() and (cell.weight_hh.requires_grad or x.requires_grad)
    # short sequences (streaming) in inference: the compiled loop or torch's single-step cell ops
    # (not under autograd: there the sequence kernel's backward is faster than the cell ops')
    short = x.shape[1] <= CELL_OP_MAX_STEPS and not recording
    prefer = want or short or (not recording and prefers_compiled(cell))
    why_not = compiled_reason(cell, x, state) if prefer else ""
    if why_not is None:
        out, final, seqs, gates = run_compiled(cell, x, state, want_states=want_states, want_gates=want_gates)
        return out, final, seqs, gates, compiled_path(cell)
    if recording and not want and compiled_train_reason(cell, x, state) is None:
        out, final, path = run_compiled_train(cell, x, state)
        return out, final, None, None, path
    if short and not want:
        out, final = run_cell_op(cell, x, state)
        path = CELL_OP_PATH
    else:
        out, final = run(cell, x, state, training=training)
        path = kernel_name(x.device, cell)
    if prefer and not want and why_not and _ext.unavailable_reason() is not None:
        path += f" (no compiled kernel: {why_not})"
    seqs = gates = None
    if want:
        seqs, gates = recompute_sequences(cell, x, state, out, want_states=want_states, want_gates=want_gates)
        path += f" + gate recompute (no compiled kernel: {why_not})"
    return out, final, seqs, gates, path
