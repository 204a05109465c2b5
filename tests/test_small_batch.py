"""The LSTM's and the GRU's small-batch loops (rnnstate/_ext/small_batch.cpp: float32, B <= 8, U <= 512,
AVX-512 CPUs, or any CPU with RNNSTATE_SMALL_BATCH=1/generic): equal to torch's nn.LSTM / nn.GRU with
converted weights and to the reference loop, with odd unit counts (the 16-unit blocks' tails), initial states, right-padded masks and
every output sequence; the layer runs it in inference and says so; what stays on the other paths and why."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from rnnstate import _ext
from rnnstate import layers as L
from rnnstate.cells.gru import GRUCell
from rnnstate.cells.lstm import LSTMCell
from rnnstate.loop import fused, reference

needs_ext = pytest.mark.skipif(_ext.unavailable_reason() is not None,
                               reason=f"compiled kernel unavailable: {_ext.unavailable_reason()}")
# Where the loop runs by default (an AVX-512 CPU); elsewhere the op-level tests still run (on the general
# loop) and the portable build is checked in a subprocess below.
HERE = _ext.unavailable_reason() is None and _ext.small_batch_isa() == "avx512"
SHAPES = [(1, 7), (2, 33), (3, 130), (8, 33), (5, 16), (8, 7)]       # (B, U): tails, several row groups
F, T = 6, 33                                                   # B * T >= 32 at every B


def _cell(U, use_bias=True, seed=0):
    torch.manual_seed(seed)
    cell = LSTMCell(U, use_bias=use_bias)
    cell._maybe_build((1, F))
    with torch.no_grad():                      # non-trivial but not chaotic dynamics
        for p in cell.parameters():
            p.normal_(0.0, 1.5 / max(U, F) ** 0.5)
    return cell


def _gru_cell(U, use_bias=True, seed=0):
    torch.manual_seed(seed)
    cell = GRUCell(U, use_bias=use_bias)
    cell._maybe_build((1, F))
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, 1.5 / max(U, F) ** 0.5)
    return cell


def _torch_pair(U, seed=0):
    """An nn.LSTM and an rnnstate LSTM layer with its weights, converted by hand (transpose, b_ih + b_hh)."""
    torch.manual_seed(seed)
    ref = nn.LSTM(F, U, batch_first=True)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0.0, 1.5 / max(U, F) ** 0.5)
    layer = L.LSTM(U, return_sequences=True, return_state=True)
    layer(torch.zeros(1, T, F))
    w_ih, w_hh = ref.weight_ih_l0.detach().numpy(), ref.weight_hh_l0.detach().numpy()
    layer.set_weights([w_ih.T, w_hh.T, ref.bias_ih_l0.detach().numpy() + ref.bias_hh_l0.detach().numpy()])
    return ref, layer


@needs_ext
@pytest.mark.parametrize("B,U", SHAPES)
def test_layer_equals_nn_lstm_and_says_small_batch(B, U):
    ref, layer = _torch_pair(U)
    x, h0, c0 = torch.randn(B, T, F), torch.randn(1, B, U), torch.randn(1, B, U)
    with torch.no_grad():
        y, (h, c) = ref(x, (h0, c0))
        out = layer(x, initial_state=[h0[0], c0[0]])
        zero = layer(x)                                       # default (zero) initial state
        y0, (h_0, c_0) = ref(x)
    torch.testing.assert_close(out.output, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.h, h[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.c, c[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(zero.output, y0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(zero.c, c_0[0], atol=1e-5, rtol=1e-5)
    if HERE:
        assert layer.last_path == fused.SMALL_BATCH_PATH


@needs_ext
@pytest.mark.parametrize("B,U", SHAPES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_kernel_equals_reference_loop_with_every_sequence(B, U, use_bias):
    cell = _cell(U, use_bias)
    x = torch.randn(B, T, F)
    state = cell.state_type(torch.randn(B, U), torch.randn(B, U))
    with torch.no_grad():
        ref = reference.time_loop(cell, x, state, collect_states=True, collect_gates=True)
        for want_c, want_g in [(False, False), (True, False), (False, True), (True, True)]:
            out, h, c, cs, gates = _ext.lstm_sequence(x, state.h, state.c, cell.weight_ih, cell.weight_hh,
                                                      cell.bias_ih, want_c=want_c, want_gates=want_g)
            msg = f"c={want_c} gates={want_g}"
            torch.testing.assert_close(out, ref.outputs, atol=1e-5, rtol=1e-5, msg=msg)
            torch.testing.assert_close(h, ref.state.h, atol=1e-5, rtol=1e-5, msg=msg)
            torch.testing.assert_close(c, ref.state.c, atol=1e-5, rtol=1e-5, msg=msg)
            if want_c:
                torch.testing.assert_close(cs, ref.state_seqs[1], atol=1e-5, rtol=1e-5, msg=msg)
            if want_g:
                for name, a, b in zip("ifgo", gates, ref.gates):
                    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f"{msg} gate {name}")


@needs_ext
def test_strided_input_and_saturated_gates():
    """x whose last axis is not contiguous (copied once), and pre-activations far beyond the activations'
    clamps (gates at exactly 0 or 1, no inf/nan)."""
    B, U = 3, 20
    cell = _cell(U)
    with torch.no_grad():
        cell.weight_ih.mul_(200.0)
    x = torch.randn(B, F, T).transpose(1, 2)                  # (B, T, F), F-stride T
    state = cell.initial_state(B)
    with torch.no_grad():
        ref = reference.time_loop(cell, x, state)
        out, h, c, _, _ = _ext.lstm_sequence(x, state.h, state.c, cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                             want_c=False, want_gates=False)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref.outputs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, ref.state.c, atol=1e-5, rtol=1e-5)


@needs_ext
def test_right_padded_mask_and_sequences_through_the_layer():
    B, U = 3, 33
    kw = dict(return_sequences=True, return_state=True, return_cell_sequence=True)
    torch.manual_seed(0)
    a, b = L.LSTM(U, **kw), L.LSTM(U, path="loop", **kw)
    a(torch.zeros(1, T, F))
    b(torch.zeros(1, T, F))
    b.set_weights(a.get_weights())
    x = torch.randn(B, T, F)
    mask = torch.arange(T)[None, :] < torch.tensor([T, 4, 1])[:, None]      # right-padded
    with torch.no_grad():
        ra, rb = a(x, mask=mask), b(x, mask=mask)
        sa, sb = a(x), b(x)
    for name in ra._fields:
        torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5, msg=name)
        torch.testing.assert_close(getattr(sa, name), getattr(sb, name), atol=1e-5, rtol=1e-5, msg=name)
    if HERE:
        assert a.last_path == fused.SMALL_BATCH_PATH          # the c sequence from the small-batch loop


@needs_ext
def test_training_forward_uses_it_and_gradients_equal_the_loop():
    """The differentiable op (compiled backward) on the small-batch forward: gradients equal the loop's."""
    B, U = 4, 13
    cell = _cell(U)
    x = torch.randn(B, T, F, requires_grad=True)
    h0, c0 = torch.randn(B, U, requires_grad=True), torch.randn(B, U, requires_grad=True)
    params = [x, h0, c0, cell.weight_ih, cell.weight_hh, cell.bias_ih]
    out, h, c = _ext.lstm_train(x, h0, c0, cell.weight_ih, cell.weight_hh, cell.bias_ih)
    got = torch.autograd.grad((out ** 2).sum() + h.sum() + (c * 0.5).sum(), params)
    ref = reference.time_loop(cell, x, cell.state_type(h0, c0))
    want = torch.autograd.grad((ref.outputs ** 2).sum() + ref.state.h.sum() + (ref.state.c * 0.5).sum(), params)
    for name, g, w in zip(["x", "h0", "c0", "w_ih", "w_hh", "b"], got, want):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4, msg=name)


@needs_ext
@pytest.mark.parametrize("grad", [False, True])
def test_opcheck_float32_small_batch(grad):
    """The op's schema, fake kernel (strides of the outputs) and autograd hold on the small-batch form."""
    B, U = 2, 5
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 3, 4, generator=g, requires_grad=grad)
    h0, c0 = torch.randn(B, U, generator=g, requires_grad=grad), torch.randn(B, U, generator=g, requires_grad=grad)
    w = [torch.randn(4 * U, 4, generator=g) * 0.5, torch.randn(4 * U, U, generator=g) * 0.5,
         torch.randn(4 * U, generator=g) * 0.1]
    for t in w:
        t.requires_grad_(grad)
    ops = torch.ops.rnnstate
    torch.library.opcheck(ops.lstm_sequence.default, (x, h0, c0, w[0], w[1], w[2], True, True))
    if not grad:
        torch.library.opcheck(ops.lstm_sequence.default, (x, h0, c0, w[0], w[1], None, False, False))


@needs_ext
def test_other_calls_keep_their_paths_and_say_why():
    U = 9
    torch.manual_seed(0)
    layer = L.LSTM(U, return_sequences=True)
    layer(torch.zeros(1, T, F))
    with torch.no_grad():
        layer(torch.randn(9, T, F))                           # B = 9: beyond the small-batch range
    assert layer.last_path.startswith("fused-")
    layer(torch.randn(2, T, F))                # autograd recording: the compiled training loop, whose
    assert layer.last_path.startswith("compiled-LSTM (training")      # forward takes the small-batch loop
    assert not _ext.small_batch_loop(torch.randn(2, T, F, dtype=torch.float64), U)     # float32 only
    assert not _ext.small_batch_loop(torch.randn(2, T, F), 513)                          # U <= 512
    assert not _ext.small_batch_loop(torch.randn(9, T, F), U)
    assert not _ext.small_batch_loop(torch.randn(1, 31, F), U)                           # B * T >= 32
    assert _ext.small_batch_loop(torch.randn(8, 4, F), U) == HERE


def _run_with_env(value, code):
    env = dict(os.environ, RNNSTATE_SMALL_BATCH=value)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


_EQUALS_NN_LSTM_GRU = """
import torch
from torch import nn
from rnnstate import _ext
torch.manual_seed(0)
for B, U in [(1, 7), (3, 33), (8, 20)]:
    ref = nn.LSTM(5, U, batch_first=True)
    x, h0, c0 = torch.randn(B, 40, 5), torch.randn(1, B, U), torch.randn(1, B, U)
    with torch.no_grad():
        y, (h, c) = ref(x, (h0, c0))
        out, hT, cT, _, _ = _ext.lstm_sequence(x, h0[0], c0[0], ref.weight_ih_l0, ref.weight_hh_l0,
                                               ref.bias_ih_l0 + ref.bias_hh_l0, want_c=False, want_gates=False)
    torch.testing.assert_close(out, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cT, c[0], atol=1e-5, rtol=1e-5)
    g = nn.GRU(5, U, batch_first=True)
    with torch.no_grad():
        y, h = g(x, h0)
        out, hT, _ = _ext.gru_sequence(x, h0[0], g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0,
                                       want_gates=False)
    torch.testing.assert_close(out, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hT, h[0], atol=1e-5, rtol=1e-5)
print(_ext.small_batch_isa(), _ext.small_batch_loop(x, U))
"""


@needs_ext
def test_portable_build_equals_nn_lstm_and_gru():
    """RNNSTATE_SMALL_BATCH=generic: the portable build (what CPUs without AVX-512 run) on this CPU too."""
    isa, runs = _run_with_env("generic", _EQUALS_NN_LSTM_GRU).split()
    assert isa != "avx512" and runs == "True"


@needs_ext
def test_switched_off_runs_the_general_loop():
    isa, runs = _run_with_env("0", _EQUALS_NN_LSTM_GRU).split()
    assert runs == "False"


# ---- GRU (reset_after=True) ----------------------------------------------------------------------------------
@needs_ext
@pytest.mark.parametrize("B,U", SHAPES)
def test_gru_layer_equals_nn_gru_and_says_small_batch(B, U):
    torch.manual_seed(0)
    ref = nn.GRU(F, U, batch_first=True)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0.0, 1.5 / max(U, F) ** 0.5)
    layer = L.GRU(U, return_sequences=True, return_state=True)
    layer(torch.zeros(1, T, F))
    # torch layout -> Keras layout by hand: transpose; gate order r, z, n -> z, r, h
    perm = lambda a: np.concatenate([a[U:2 * U], a[:U], a[2 * U:]], 0)   # noqa: E731
    w = [t.detach().numpy() for t in (ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0)]
    layer.set_weights([perm(w[0]).T, perm(w[1]).T, np.stack([perm(w[2]), perm(w[3])])])
    x, h0 = torch.randn(B, T, F), torch.randn(1, B, U)
    with torch.no_grad():
        y, h = ref(x, h0)
        out = layer(x, initial_state=[h0[0]])
    torch.testing.assert_close(out.output, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.h, h[0], atol=1e-5, rtol=1e-5)
    if HERE:
        assert layer.last_path == fused.SMALL_BATCH_GRU_PATH


@needs_ext
@pytest.mark.parametrize("B,U", SHAPES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_gru_kernel_equals_reference_loop_with_gates(B, U, use_bias):
    cell = _gru_cell(U, use_bias)
    x, h0 = torch.randn(B, T, F), torch.randn(B, U)
    with torch.no_grad():
        ref = reference.time_loop(cell, x, cell.state_type(h0), collect_gates=True)
        out, h, gates = _ext.gru_sequence(x, h0, cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                          getattr(cell, "bias_hh", None), want_gates=True)
    torch.testing.assert_close(out, ref.outputs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, ref.state.h, atol=1e-5, rtol=1e-5)
    for name, a, b in zip("zrn", gates, ref.gates):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f"gate {name}")


@needs_ext
def test_gru_training_forward_uses_it_and_gradients_equal_the_loop():
    """gru_train (train=True: the forward also keeps h_{t-1} @ W_hn^T for the compiled backward)."""
    B, U = 3, 21
    cell = _gru_cell(U)
    x = torch.randn(B, T, F, requires_grad=True)
    h0 = torch.randn(B, U, requires_grad=True)
    params = [x, h0, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    out, h = _ext.gru_train(x, h0, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    got = torch.autograd.grad((out ** 2).sum() + h.sum(), params)
    ref = reference.time_loop(cell, x, cell.state_type(h0))
    want = torch.autograd.grad((ref.outputs ** 2).sum() + ref.state.h.sum(), params)
    for name, g, w in zip(["x", "h0", "w_ih", "w_hh", "b_ih", "b_hh"], got, want):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4, msg=name)
