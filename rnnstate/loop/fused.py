"""Which kernel runs a sequence: the shared policy. The kernels themselves belong to the cells
(``LSTMCell.run_torch_op``, ``.run_compiled`` ...: torch's own RNN ops, oneDNN on CPU and cuDNN on GPU,
and rnnstate's compiled CPU loops, ``torch.ops.rnnstate.*``); this module only chooses, by what a cell
declares (``fused_reason``, ``compiled_reason``, ``onednn_kernel``) and by measurement, and names the
choice (``last_path``). The layer never picks a path by catching exceptions, nor by class names.
Every path gives the same numbers as ``rnnstate.loop.reference.time_loop`` (tested over the flag grid,
values and gradients).

Cell-state and gate sequences: torch's ops return only the h sequence. Given it, every gate of every
step is one batched matmul on ``h_{t-1}`` (``cell.recompute_sequences``); for the LSTM the cell state
then follows from ``c_t = f_t * c_{t-1} + i_t * g_t``, one fused multiply-add per step. On CPU the
sequences come instead from the compiled loops (``cell.run_compiled``), which write them as they go.

Which kernel in eager mode on CPU, by measurement (benchmarks/README.md):

* inference: cells whose torch op has no oneDNN kernel (GRU with reset_after=True, SimpleRNN:
  ``prefers_compiled``) always run their compiled loops; the LSTM runs oneDNN (as fast as the general
  compiled loop or faster) unless sequences are asked for, the sequence is short (T <= 4, streaming) or
  the batch is small (float32, B <= 8, B*T >= 32, U <= 512 on an AVX-512 CPU: the compiled small-batch
  loop, faster than oneDNN there, ``prefers_small_batch``; the GRU's compiled loop has the same
  small-batch form, 2-3x faster than its general loop at B=2..8);
* training (``compiled_train_reason``): the GRU and the SimpleRNN run the compiled loop with a compiled
  backward (up to batch x units = 32768), the LSTM up to a recurrent step of 2^21 multiply-adds (batch 32
  at 128 units), where it is as fast as oneDNN or faster (small batches: 0.5-0.7x its time).

Under torch.compile / torch.export / vmap (``graph_mode() == "compile"``) there is ONE path for all
shapes, so no shape guard is baked into a compiled or exported program: the compiled loops as
registered ops (their fake kernels give symbolic shapes), else the reference loop. Under torch.jit
tracing and TorchScript ONNX export (``"trace"``) torch's own ops (``torch.lstm`` ...), which those
tools translate, for all shapes; what they can't express raises (``trace_reason``). Under torch.func.grad
/ jvp the reference loop runs (torch's custom-op autograd is no functorch transform). Under CPU autocast
torch's ops run, so a layer follows autocast as ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` do; a layer with a mixed
dtype policy (``rnnstate.mixed_precision``, which runs its call under autocast) asks ``rnnstate.loop.mixed``
first (the compiled bf16 LSTM loop in inference, float32 where the CPU has no bf16 units).
"""
from __future__ import annotations

import torch

from .. import _ext
from . import mixed, threads

_NAMES: dict = {}


def kernel_name(device: torch.device, cell=None) -> str:
    """The ``last_path`` label of torch's fused op on `device` (for `cell`: oneDNN has an LSTM kernel
    only; torch runs the GRU and the SimpleRNN on CPU with its native loop, "fused-CPU")."""
    name = _NAMES.get(device.type)
    if name is None:
        name = _NAMES[device.type] = _kernel_name(device)
    if name == "fused-oneDNN" and cell is not None and not getattr(cell, "onednn_kernel", False):
        return "fused-CPU"
    return name


def _kernel_name(device: torch.device) -> str:
    if device.type == "cuda":
        return "fused-cuDNN" if torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled else "fused-CUDA"
    if device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        return "fused-oneDNN"
    return f"fused-{device.type}"


def unsupported_reason(cell) -> str | None:
    """Why this cell's configuration can't run on a fused kernel (None when it can): the cell says."""
    fused_reason = getattr(cell, "fused_reason", None)
    if fused_reason is None:
        return f"{type(cell).__name__} is a custom cell; it declares no fused kernel"
    return fused_reason()


def dynamic_reason(*, recurrent_dropout_active: bool, mask) -> str | None:
    """Why this particular call can't run fused (None when it can)."""
    if recurrent_dropout_active:
        return "recurrent_dropout is active (training); the fused kernels can't mask h between steps"
    if mask is not None:
        return ("the mask is not right-padded (or cell/gate sequences were asked for); such masks run on the "
                "reference loop (right-padded ones run fused, as packed sequences)")
    return None


# ---- graph capture ------------------------------------------------------------------------------------------
def graph_mode(x=None) -> str | None:
    """"compile" under torch.compile / torch.export (and vmap), "trace" under torch.jit tracing and
    TorchScript ONNX export, "func-grad" under torch.func.grad / jvp (the reference loop runs there),
    None in plain eager mode."""
    if torch.compiler.is_compiling():
        return "compile"
    if torch._C._get_tracing_state() is not None:     # torch.jit.is_tracing(); TorchScript ONNX export traces
        return "trace"
    stack = torch._C._functorch.get_interpreter_stack()
    if stack:                                          # inside torch.func transforms
        if any(i.key() in _DIFF_TRANSFORMS for i in stack):
            return "func-grad"
        return "compile"                               # vmap: the registered ops have vmap rules
    return None


_DIFF_TRANSFORMS = (torch._C._functorch.TransformType.Grad, torch._C._functorch.TransformType.Jvp)
FUNC_GRAD_REASON = ("under torch.func.grad/jvp (torch's custom-op autograd is not a functorch transform, so the "
                    "registered ops can't run there)")


def trace_reason(why) -> str:
    """The error text for a call torch.jit.trace / TorchScript ONNX export can't capture correctly."""
    return (f"torch.jit.trace and torch.onnx.export(dynamo=False) can't capture this call correctly: {why}; "
            f"the time loop would run in Python and the traced program would be fixed to this input's number "
            f"of timesteps. Use torch.export / torch.compile (the compiled kernels are registered ops), or "
            f"a configuration torch's own RNN ops run (no custom activations, masks, cell/gate sequences)")


def capture_reason(cell, x, state) -> str | None:
    """Under torch.compile / torch.export: why the one general path (the compiled kernels as registered
    ops) can't run, so the reference loop runs (None when it can)."""
    fn = getattr(cell, "compiled_reason", None)
    if fn is None:
        return f"{type(cell).__name__} has no compiled kernel"
    return fn(x, state)


def _recording(cell, x, state) -> bool:
    """Whether autograd records this call (a gradient can reach the input, a state or a weight)."""
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad or any(s.requires_grad for s in state):
        return True
    return any(p is not None and p.requires_grad
               for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, getattr(cell, "bias_hh", None)))


COMPILE_PATH = " (torch.compile/export: registered op, one path for all shapes)"
TRACE_PATH = " (jit.trace/ONNX: torch's op, one path for all shapes)"


def run_captured(cell, x, state, *, want_states=False, want_gates=False, training=False):
    """The one path for all shapes under graph capture (``graph_mode()``): (outputs, final, seqs, gates,
    path). Call only when ``capture_reason`` is None (compile) or for trace mode."""
    if graph_mode(x) == "trace":
        if want_states or want_gates:
            raise RuntimeError(trace_reason("cell/gate sequences were asked for"))
        out, final = cell.run_torch_op(x, state, training=training)
        return out, final, None, None, kernel_name(x.device, cell) + TRACE_PATH
    recording = _recording(cell, x, state)
    label = compiled_path(cell).split(" (")[0]
    if not recording:
        out, final, seqs, gates = cell.run_compiled(x, state, want_states=want_states, want_gates=want_gates)
        return out, final, seqs, gates, label + COMPILE_PATH
    out, final = cell.run_compiled_train(x, state)
    seqs = gates = None
    if want_states or want_gates:
        seqs, gates = cell.recompute_sequences(x, state, out, want_states=want_states, want_gates=want_gates)
    return out, final, seqs, gates, label + " (training)" + COMPILE_PATH


# ---- eager policy --------------------------------------------------------------------------------------------
CELL_OP_PATH = "fused-cell ops (short sequence)"
CELL_OP_MAX_STEPS = 4   # measured crossover on CPU: below it the sequence kernels' set-up dominates


def prefers_compiled(cell) -> bool:
    """Whether plain inference (no state/gate sequences) should run the compiled loop rather than
    torch's op: for cells whose torch op on CPU is torch's native per-step loop (no oneDNN kernel: the
    GRU, the SimpleRNN), the compiled loops take 0.2-0.8x its time at every benchmark shape. torch's
    oneDNN LSTM is as fast as the compiled LSTM loop or faster, so the LSTM keeps it."""
    return not getattr(cell, "onednn_kernel", False)


def prefers_small_batch(cell, x) -> bool:
    """Whether plain inference should run the compiled loop because its small-batch form runs `x`: the
    cell declares one (``small_batch_kernel``) and the kernel takes this call (``_ext.small_batch_loop``:
    float32, B <= 8, B*T >= 32, U <= 512, AVX-512). Measured there (x (B, 100, 32), one thread each, busy
    machine): the op at U=128, B=1..8 1.3-1.7x faster than oneDNN (U=64 2.3-2.6x, U=256 1.2-1.3x, U=512
    1.1-1.2x; _ext/small_batch.h), the layer call 1.2-1.4x (it adds ~35 us of Python per call)."""
    return getattr(cell, "small_batch_kernel", False) and _ext.small_batch_loop(x, cell.units)


SMALL_BATCH = "small-batch loop"


def compiled_path(cell, x=None) -> str:
    """The ``last_path`` label of ``cell.run_compiled`` (on `x`, when given): what its loop writes as it
    goes, and "small-batch loop" where the kernel runs `x` on its small-batch form."""
    label = f"compiled-{cell.kernel_label}"
    if x is not None and getattr(cell, "small_batch_kernel", False) and _ext.small_batch_loop(x, cell.units):
        return label + f" ({SMALL_BATCH}: packed weights, one pass per step)"
    if "c" in getattr(cell, "state_names", ()):
        return label + " (h, c and gate sequences in one time loop)"
    if getattr(cell, "gate_names", ()):
        return label + " (h and gate sequences in one time loop)"
    return label + " (one time loop)"


def compiled_train_path(cell) -> str:
    """The ``last_path`` label of ``cell.run_compiled_train`` chosen by ``compiled_train_reason``."""
    why = "training, small step" if getattr(cell, "onednn_kernel", False) else "training"
    return f"compiled-{cell.kernel_label} ({why}: compiled forward and backward)"


# The labels of the built-in cells' compiled paths (what compiled_path / compiled_train_path give).
COMPILED_PATH = _ext.PATH_NAME + " (h, c and gate sequences in one time loop)"
SMALL_BATCH_PATH = _ext.PATH_NAME + f" ({SMALL_BATCH}: packed weights, one pass per step)"
SMALL_BATCH_GRU_PATH = _ext.GRU_PATH_NAME + f" ({SMALL_BATCH}: packed weights, one pass per step)"
COMPILED_GRU_PATH = _ext.GRU_PATH_NAME + " (h and gate sequences in one time loop)"
COMPILED_RNN_PATH = _ext.RNN_PATH_NAME + " (one time loop)"
COMPILED_TRAIN_PATH = _ext.PATH_NAME + " (training, small step: compiled forward and backward)"
COMPILED_GRU_TRAIN_PATH = _ext.GRU_PATH_NAME + " (training: compiled forward and backward)"
COMPILED_RNN_TRAIN_PATH = _ext.RNN_PATH_NAME + " (training: compiled forward and backward)"


def kernel_inputs_reason(x) -> str | None:
    """Why the compiled kernels can't take `x` (None when they can)."""
    reason = _ext.unavailable_reason()
    if reason is not None:
        return reason
    if x.device.type != "cpu":
        return f"inputs on {x.device.type}; the compiled kernel is CPU-only"
    if x.dtype not in (torch.float32, torch.float64):
        return f"dtype {x.dtype}; the compiled kernel takes float32 or float64"
    return None


# Measured on CPU (AMD EPYC Zen 4, one thread, process time, with the packed AVX-512 GEMM of gemm.cpp):
# the compiled LSTM forward+backward against oneDNN's is 0.5x at (B, T, F, U) = (4, 20, 12, 64), 0.7x at
# (1, 50, 32, 128), 0.9-1.0x at (32, 7, 12, 128), 1.03x at (32, 100, 32, 128) and 1.2x at
# (128, 50, 32, 256): the sequence length hardly matters, the step's size does. Up to a recurrent step of
# 2^21 multiply-adds (B x 4U x U: batch 32 at 128 units) the compiled loop runs. With two threads on a step
# large enough to use them (>= threads.PARALLEL_MIN_STEP_MACS), oneDNN's threads pay off better than the
# compiled loop's per-step ones (measured, wall time, 2 threads: compiled 0.84x oneDNN at T=7, 1.0x at
# T=29, 1.27x at T=50 for batch 32, 128 units): there it runs up to COMPILED_TRAIN_THREADED_MAX_STEPS.
COMPILED_TRAIN_MAX_STEP_MACS = 1 << 21
COMPILED_TRAIN_THREADED_MAX_STEPS = 32
# GRU / SimpleRNN training: 0.1-0.8x torch's time up to batch x units of 16384 (B=32, U=512); at
# 65536 (B=256, U=256) 1.05-1.2x, where torch's per-step ops are large enough to run efficiently.
COMPILED_TRAIN_MAX_BATCH_UNITS = 32768


def compiled_train_reason(cell, x, state) -> str | None:
    """Why a call under autograd does not use the compiled forward+backward (None when it does). Call
    only for a configuration ``unsupported_reason`` accepts. Cells without a oneDNN kernel do on CPU up to
    batch x units of 32768 (the compiled ones take 0.1-0.85x torch's time there); the LSTM up to a
    recurrent step of COMPILED_TRAIN_MAX_STEP_MACS, where it is as fast as oneDNN or faster."""
    reason = cell.compiled_reason(x, state)
    if reason is not None:
        return reason
    B = x.shape[0]
    if not getattr(cell, "onednn_kernel", False):
        if B * cell.units > COMPILED_TRAIN_MAX_BATCH_UNITS:
            return (f"batch x units = {B * cell.units}; torch's op is as fast beyond "
                    f"{COMPILED_TRAIN_MAX_BATCH_UNITS}")
        return None
    macs = B * cell.weight_hh.shape[0] * cell.units
    if macs > COMPILED_TRAIN_MAX_STEP_MACS:
        return (f"a recurrent step of {macs} multiply-adds (batch {B}); oneDNN is as fast or faster beyond "
                f"{COMPILED_TRAIN_MAX_STEP_MACS}")
    T = x.shape[1]
    if T > COMPILED_TRAIN_THREADED_MAX_STEPS and macs >= threads.PARALLEL_MIN_STEP_MACS \
            and torch.get_num_threads() > 1 and not threads.contended():
        return (f"{T} timesteps on {torch.get_num_threads()} threads; oneDNN's threads pay off better beyond "
                f"{COMPILED_TRAIN_THREADED_MAX_STEPS} steps")
    return None


def compiled_reason(cell, x, state) -> str | None:
    """Why the compiled kernel can't run this call's inference (None when it can): the cell's own reason,
    or autograd recording (the training entry is ``compiled_train_reason``)."""
    reason = cell.compiled_reason(x, state)
    if reason is not None:
        return reason
    if _recording(cell, x, state):
        return "autograd is recording; the compiled kernel is inference-only (use torch.no_grad())"
    return None


AUTOCAST_PATH = " (autocast: torch's op, which follows autocast as nn.LSTM does)"


def run_fast(cell, x, state, *, want_states=False, want_gates=False, training=False):
    """The sequence (already in processing order) on the fastest kernel that applies, by the policy in
    this module's docstring: (outputs (B, T, U), final state, state_seqs or None, gates or None, path).
    Call only when ``unsupported_reason`` and ``dynamic_reason`` are None. Steps below
    ``threads.PARALLEL_MIN_STEP_MACS`` run on the calling thread only (no per-step fork/join)."""
    if _ext.unavailable_reason() is not None:
        _ext.warn_unavailable_once()
    with threads.single_threaded_below(cell, x.shape[0], x.shape[1]):
        return _run_fast(cell, x, state, want_states=want_states, want_gates=want_gates, training=training)


def _run_fast(cell, x, state, *, want_states=False, want_gates=False, training=False):
    want = want_states or want_gates
    if torch.is_autocast_enabled(x.device.type):
        label = AUTOCAST_PATH
        dt = mixed.policy_dtype(x)        # a mixed policy (rnnstate.mixed_precision), not the user's autocast
        if dt is torch.bfloat16:
            no_units = mixed.bf16_units_reason()
            recording = torch.is_grad_enabled() and (cell.weight_hh.requires_grad or x.requires_grad)
            why = no_units or mixed.kernel_reason(cell, x, recording, want)
            if why is None:
                out, final = cell.run_mixed_bf16(x, state)
                return out, final, None, None, mixed.MIXED_PATH
            if no_units is not None:
                out, final = mixed.run_float32(cell, x, state, training)
                seqs = gates = None
                if want:
                    with torch.autocast(x.device.type, enabled=False):
                        seqs, gates = cell.recompute_sequences(x.float(), final.__class__(*[s.float() for s in state]),
                                                               out, want_states=want_states, want_gates=want_gates)
                return out, final, seqs, gates, f"{kernel_name(x.device, cell)} (mixed_bfloat16: {no_units})"
            label = f" (mixed_bfloat16: torch's op under autocast; {why})"
        out, final = cell.run_torch_op(x, state, training=training)
        seqs = gates = None
        if want:
            seqs, gates = cell.recompute_sequences(x, state, out, want_states=want_states, want_gates=want_gates)
        return out, final, seqs, gates, kernel_name(x.device, cell) + label
    recording = torch.is_grad_enabled() and (cell.weight_hh.requires_grad or x.requires_grad)
    # short sequences (streaming) in inference: the compiled loop or torch's single-step cell ops
    # (not under autograd: there the sequence kernel's backward is faster than the cell ops')
    short = x.shape[1] <= CELL_OP_MAX_STEPS and not recording
    prefer = want or short or (not recording and (prefers_compiled(cell) or prefers_small_batch(cell, x)))
    why_not = compiled_reason(cell, x, state) if prefer else ""
    if why_not is None:
        out, final, seqs, gates = cell.run_compiled(x, state, want_states=want_states, want_gates=want_gates)
        return out, final, seqs, gates, compiled_path(cell, x)
    if recording and not want:
        why_train = compiled_train_reason(cell, x, state)
        if why_train is None:
            out, final = cell.run_compiled_train(x, state)
            return out, final, None, None, compiled_train_path(cell)
    if short and not want:
        out, final = cell.run_cell_op(x, state)
        path = CELL_OP_PATH
    else:
        out, final = cell.run_torch_op(x, state, training=training)
        path = kernel_name(x.device, cell)
    seqs = gates = None
    if want:
        seqs, gates = cell.recompute_sequences(x, state, out, want_states=want_states, want_gates=want_gates)
        path += f" + gate recompute (no compiled kernel: {why_not})"
    elif why_not:                       # the compiled loop was the choice, but can't run (dtype, no build ...)
        path += f" (no compiled kernel: {why_not})"
    elif x.dtype not in (torch.float32, torch.float64):
        path += f" (dtype {x.dtype}: the compiled kernels take float32 or float64)"
    return out, final, seqs, gates, path
