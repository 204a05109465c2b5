"""The compiled LSTM and GRU kernels (rnnstate._ext) == the reference loop; the layer uses it in inference and
says so in last_path; without it (or under autograd) the layer falls back and says why."""
import itertools

import pytest
import torch

from rnnstate import _ext
from rnnstate import layers as L
from rnnstate.cells.lstm import LSTMCell
from rnnstate.loop import fused, reference

needs_ext = pytest.mark.skipif(_ext.unavailable_reason() is not None,
                               reason=f"compiled kernel unavailable: {_ext.unavailable_reason()}")


def _cell(U, F, dtype, use_bias=True, seed=0):
    torch.manual_seed(seed)
    cell = LSTMCell(U, use_bias=use_bias)
    cell._maybe_build((1, F))
    cell = cell.to(dtype)
    with torch.no_grad():                      # non-trivial but not chaotic dynamics
        for p in cell.parameters():
            p.normal_(0.0, 1.0 / max(U, F) ** 0.5)
    return cell


# (B, T, F, U): B=1 (matrix-vector path), B>1, T=1, odd sizes; the last one spans two chunks of the
# input projection (chunk = 2**20 // (B * 4U) steps).
SHAPES = [(1, 7, 3, 5), (4, 9, 6, 16), (2, 1, 4, 8), (5, 13, 3, 33), (64, 25, 4, 200)]


@needs_ext
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_equals_reference_loop(shape, dtype):
    B, T, F, U = shape
    cell = _cell(U, F, dtype)
    x = torch.randn(B, T, F, dtype=dtype)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-12)
    for with_init, want_c, want_g in itertools.product([False, True], repeat=3):
        state = (cell.state_type(torch.randn(B, U, dtype=dtype), torch.randn(B, U, dtype=dtype)) if with_init
                 else cell.initial_state(B, dtype=dtype))
        with torch.no_grad():
            ref = reference.time_loop(cell, x, state, collect_states=True, collect_gates=True)
            out, h, c, cs, gates = _ext.lstm_sequence(x, state.h, state.c, cell.weight_ih, cell.weight_hh,
                                                      cell.bias_ih, want_c=want_c, want_gates=want_g)
        msg = f"init={with_init} c={want_c} gates={want_g}"
        torch.testing.assert_close(out, ref.outputs, **tol, msg=msg)
        torch.testing.assert_close(h, ref.state.h, **tol, msg=msg)
        torch.testing.assert_close(c, ref.state.c, **tol, msg=msg)
        assert (cs is not None) == want_c and (gates is not None) == want_g
        if want_c:
            torch.testing.assert_close(cs, ref.state_seqs[1], **tol, msg=msg)
        if want_g:
            for name, a, b in zip("ifgo", gates, ref.gates):
                torch.testing.assert_close(a, b, **tol, msg=f"{msg} gate {name}")


@needs_ext
def test_kernel_without_bias_and_with_strided_input():
    B, T, F, U = 3, 6, 5, 7
    cell = _cell(U, F, torch.float32, use_bias=False)
    x = torch.randn(T, B, F).transpose(0, 1)                       # non-contiguous (B, T, F)
    state = cell.state_type(torch.randn(B, U), torch.randn(B, U))
    with torch.no_grad():
        ref = reference.time_loop(cell, x, state, collect_states=True, collect_gates=True)
        out, h, c, cs, gates = _ext.lstm_sequence(x, *state, cell.weight_ih, cell.weight_hh, None,
                                                  want_c=True, want_gates=True)
    torch.testing.assert_close(out, ref.outputs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cs, ref.state_seqs[1], atol=1e-5, rtol=1e-5)
    for a, b in zip(gates, ref.gates):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _layers(**kw):
    B, T, F, U = 2, 6, 4, 5
    torch.manual_seed(0)
    a = L.LSTM(U, path="auto", **kw)
    b = L.LSTM(U, path="loop", **kw)
    a(torch.zeros(1, T, F))
    b(torch.zeros(1, T, F))
    b.set_weights(a.get_weights())
    return a, b, torch.randn(B, T, F), [torch.randn(B, U), torch.randn(B, U)]


@needs_ext
@pytest.mark.parametrize("go_backwards,with_init", list(itertools.product([False, True], [False, True])))
def test_layer_runs_compiled_kernel_in_inference(go_backwards, with_init):
    a, b, x, init = _layers(return_sequences=True, return_state=True, return_cell_sequence=True,
                            return_gate_sequences=True, go_backwards=go_backwards)
    init = init if with_init else None
    with torch.no_grad():
        ra, rb = a(x, initial_state=init), b(x, initial_state=init)
    assert a.last_path == _expected_compiled_path(x, 5)
    assert ra._fields == rb._fields
    for name in ra._fields:
        torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5, msg=name)


@needs_ext
def test_layer_gates_only_and_inference_mode():
    a, b, x, _ = _layers(return_gate_sequences=True)
    with torch.inference_mode():
        ra, rb = a(x), b(x)
    assert a.last_path == _expected_compiled_path(x, 5)
    for name in ra._fields:
        torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5, msg=name)


def test_autograd_keeps_differentiable_recompute_path():
    a, b, x, _ = _layers(return_sequences=True, return_cell_sequence=True)
    x.requires_grad_(True)
    ra = a(x)
    assert "gate recompute" in a.last_path
    if _ext.unavailable_reason() is None:
        assert "autograd" in a.last_path
    (g,) = torch.autograd.grad(ra.c_seq.sum(), [x])
    assert torch.isfinite(g).all()


def test_unavailable_kernel_falls_back_and_says_why(monkeypatch):
    monkeypatch.setattr(_ext, "_REASON", "rnnstate._ext._C is not built (test)")
    a, b, x, _ = _layers(return_sequences=True, return_cell_sequence=True, return_gate_sequences=True)
    with torch.no_grad():
        ra, rb = a(x), b(x)
    assert "gate recompute" in a.last_path and "not built (test)" in a.last_path
    for name in ra._fields:
        torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5, msg=name)


def _expected_compiled_path(x, units, gru=False):
    """The compiled LSTM's / GRU's label: the small-batch loop where it runs (float32, B <= 8, B * T >= 32,
    AVX-512 CPU)."""
    if (_ext.small_batch_isa() == "avx512" and x.dtype == torch.float32 and x.shape[0] <= 8 and units <= 512
            and x.shape[0] * x.shape[1] >= 32):
        return fused.SMALL_BATCH_GRU_PATH if gru else fused.SMALL_BATCH_PATH
    return fused.COMPILED_GRU_PATH if gru else fused.COMPILED_PATH


def test_plain_calls_keep_onednn_beyond_small_batches():
    a, _, _, _ = _layers(return_sequences=True)
    with torch.no_grad():
        a(torch.randn(9, 6, 4))                  # B = 9: beyond the small-batch loop
    assert a.last_path.startswith("fused-")


# ---- GRU (reset_after=True) ---------------------------------------------------------------------------
def _gru_cell(U, F, dtype, use_bias=True, seed=0):
    from rnnstate.cells.gru import GRUCell
    torch.manual_seed(seed)
    cell = GRUCell(U, use_bias=use_bias)
    cell._maybe_build((1, F))
    cell = cell.to(dtype)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, 1.0 / max(U, F) ** 0.5)
    return cell


# B=1 (matrix-vector path), B>1, T=1, odd sizes; the last one spans several input-projection chunks.
GRU_SHAPES = [(1, 7, 3, 5), (1, 12, 4, 40), (4, 9, 6, 16), (2, 1, 4, 8), (5, 13, 3, 33), (64, 25, 4, 200)]


@needs_ext
@pytest.mark.parametrize("shape", GRU_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("use_bias", [True, False])
def test_gru_kernel_equals_reference_loop(shape, dtype, use_bias):
    B, T, F, U = shape
    cell = _gru_cell(U, F, dtype, use_bias=use_bias)
    assert (cell.bias_ih is None) == (cell.bias_hh is None) == (not use_bias)
    x = torch.randn(B, T, F, dtype=dtype)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-12)
    for with_init, want_g in itertools.product([False, True], repeat=2):
        state = (cell.state_type(torch.randn(B, U, dtype=dtype)) if with_init
                 else cell.initial_state(B, dtype=dtype))
        with torch.no_grad():
            ref = reference.time_loop(cell, x, state, collect_states=True, collect_gates=True)
            out, h, gates = _ext.gru_sequence(x, state.h, cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                              cell.bias_hh, want_gates=want_g)
        msg = f"init={with_init} gates={want_g}"
        torch.testing.assert_close(out, ref.outputs, **tol, msg=msg)
        torch.testing.assert_close(h, ref.state.h, **tol, msg=msg)
        assert (gates is not None) == want_g
        if want_g:
            for name, a, b in zip("zrn", gates, ref.gates):
                torch.testing.assert_close(a, b, **tol, msg=f"{msg} gate {name}")


@needs_ext
def test_gru_kernel_strided_input():
    B, T, F, U = 3, 6, 5, 7
    cell = _gru_cell(U, F, torch.float32)
    x = torch.randn(T, B, F).transpose(0, 1)                       # non-contiguous (B, T, F)
    state = cell.state_type(torch.randn(B, U))
    with torch.no_grad():
        ref = reference.time_loop(cell, x, state, collect_gates=True)
        out, h, gates = _ext.gru_sequence(x, state.h, cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                          cell.bias_hh, want_gates=True)
    torch.testing.assert_close(out, ref.outputs, atol=1e-5, rtol=1e-5)
    for a, b in zip(gates, ref.gates):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _gru_layers(B=2, T=6, F=4, U=5, **kw):
    torch.manual_seed(0)
    a = L.GRU(U, path="auto", **kw)
    b = L.GRU(U, path="loop", **kw)
    a(torch.zeros(1, T, F))
    b(torch.zeros(1, T, F))
    b.set_weights(a.get_weights())
    return a, b, torch.randn(B, T, F), [torch.randn(B, U)]


@needs_ext
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("go_backwards,with_init,use_bias",
                         list(itertools.product([False, True], [False, True], [False, True])))
def test_gru_layer_runs_compiled_kernel_in_inference(B, go_backwards, with_init, use_bias):
    a, b, x, init = _gru_layers(B=B, return_sequences=True, return_state=True, return_gate_sequences=True,
                                go_backwards=go_backwards, use_bias=use_bias)
    init = init if with_init else None
    with torch.no_grad():
        ra, rb = a(x, initial_state=init), b(x, initial_state=init)
    assert a.last_path == _expected_compiled_path(x, 5, gru=True)
    assert ra._fields == rb._fields
    for name in ra._fields:
        torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5, msg=name)


@needs_ext
@pytest.mark.parametrize("steps", [1, 3])
def test_gru_short_sequence_inference_runs_compiled(steps):
    a, b, x, init = _gru_layers(T=steps, return_sequences=True, return_state=True)
    with torch.inference_mode():
        ra, rb = a(x, initial_state=init), b(x, initial_state=init)
    assert a.last_path == _expected_compiled_path(x, 5, gru=True)
    for u, v in zip(ra, rb):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)


def test_gru_autograd_and_reset_before_keep_other_paths():
    a, _, x, _ = _gru_layers(return_sequences=True, return_gate_sequences=True)
    x.requires_grad_(True)
    ra = a(x)
    assert "gate recompute" in a.last_path
    (g,) = torch.autograd.grad(ra.z.sum() if hasattr(ra, "z") else ra[1].sum(), [x])
    assert torch.isfinite(g).all()
    c = L.GRU(5, reset_after=False, return_gate_sequences=True)
    with torch.no_grad():
        c(torch.randn(2, 6, 4))
    assert c.last_path.startswith("reference loop")


@needs_ext
@pytest.mark.parametrize("return_sequences,go_backwards", [(True, False), (False, True)])
def test_plain_gru_inference_runs_compiled_and_equals_loop(return_sequences, go_backwards):
    torch.manual_seed(0)
    kw = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    a, b = L.GRU(5, **kw), L.GRU(5, path="loop", **kw)
    x = torch.randn(3, 9, 4)
    a(x), b(x)
    b.set_weights(a.get_weights())
    with torch.no_grad():
        ra, rb = a(x), b(x)
    assert a.last_path == _expected_compiled_path(x, 5, gru=True)
    for p, q in zip(ra, rb):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-6)
    a(x.requires_grad_())                       # under autograd: the compiled training loop
    assert a.last_path == fused.COMPILED_GRU_TRAIN_PATH


def test_extension_is_built_where_a_compiler_exists():
    """The build is optional, so a failed compile is silent at install: here it must not be. And a module
    built from other sources than those next to it (a stale build) is refused."""
    import os
    import shutil
    if os.environ.get("RNNSTATE_NO_EXT"):
        pytest.skip("RNNSTATE_NO_EXT is set: built without the extension on purpose")
    if not any(shutil.which(c) for c in (os.environ.get("CXX", "c++"), "g++", "clang++")):
        pytest.skip("no C++ compiler on this machine")
    assert _ext.unavailable_reason() is None


def test_stale_build_is_detected(tmp_path):
    (tmp_path / "a.cpp").write_text("int f() { return 1; }")
    (tmp_path / "a.h").write_text("int f();")
    d1 = _ext._sources_digest(str(tmp_path))
    (tmp_path / "a.cpp").write_text("int f() { return 2; }")
    assert _ext._sources_digest(str(tmp_path)) != d1
    assert _ext._sources_digest(str(tmp_path / "empty")) is None


@needs_ext
@pytest.mark.parametrize("activation,use_bias,B", [("tanh", True, 3), ("relu", True, 1), ("tanh", False, 2)])
def test_simple_rnn_inference_runs_compiled_and_equals_torch_and_loop(activation, use_bias, B):
    """Oracles: the reference loop, and torch.nn.RNN with the same weights."""
    torch.manual_seed(0)
    kw = dict(activation=activation, use_bias=use_bias, return_sequences=True, return_state=True)
    a, b = L.SimpleRNN(6, **kw), L.SimpleRNN(6, path="loop", **kw)
    x = torch.randn(B, 40, 4)
    a(x), b(x)
    b.set_weights(a.get_weights())
    h0 = torch.randn(B, 6)
    with torch.no_grad():
        ra, rb = a(x, initial_state=[h0]), b(x, initial_state=[h0])
    assert a.last_path == fused.COMPILED_RNN_PATH
    m = torch.nn.RNN(4, 6, nonlinearity=activation, bias=use_bias, batch_first=True)
    with torch.no_grad():
        m.weight_ih_l0.copy_(a.cell.weight_ih)
        m.weight_hh_l0.copy_(a.cell.weight_hh)
        if use_bias:
            m.bias_ih_l0.copy_(a.cell.bias_ih)
            m.bias_hh_l0.zero_()
        ref, _ = m(x, h0[None])
    for p, q in zip(ra, rb):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ra.output, ref, atol=1e-6, rtol=1e-6)
