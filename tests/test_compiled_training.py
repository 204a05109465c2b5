"""The compiled LSTM forward + backward (rnnstate._ext.lstm_train) used when training on short sequences:
its values and every gradient equal torch's nn.LSTM (converted weights) and the reference loop; the layer
picks it only where it applies and says so in last_path, and falls back to oneDNN elsewhere."""
import itertools

import pytest
import torch

from rnnstate import _ext
from rnnstate import layers as L
from rnnstate.loop import fused

needs_ext = pytest.mark.skipif(_ext.unavailable_reason() is not None,
                               reason=f"compiled kernel unavailable: {_ext.unavailable_reason()}")


def _torch_lstm(F, U, dtype, seed=0):
    torch.manual_seed(seed)
    m = torch.nn.LSTM(F, U, batch_first=True).to(dtype)
    return m


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors, allow_unused=True)


@needs_ext
@pytest.mark.parametrize("B,T,F,U", [(1, 1, 3, 4), (3, 5, 4, 6), (8, 32, 5, 7), (9, 3, 2, 130)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("use", ["seq", "last", "states_only"])
def test_kernel_gradients_equal_torch_lstm(B, T, F, U, dtype, use):
    """Oracle: torch.nn.LSTM's own autograd (b_ih + b_hh folded into one bias, as rnnstate stores it)."""
    m = _torch_lstm(F, U, dtype)
    x = torch.randn(B, T, F, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, U, dtype=dtype, requires_grad=True)
    c0 = torch.randn(B, U, dtype=dtype, requires_grad=True)
    w_ih, w_hh = m.weight_ih_l0, m.weight_hh_l0
    b = (m.bias_ih_l0 + m.bias_hh_l0).detach().requires_grad_(True)
    wy = torch.randn(B, T, U, dtype=dtype)

    def loss(out, h, c):
        if use == "seq":
            return (out * wy).sum() + (h ** 2).sum() + (1.5 * c).sum()
        if use == "last":
            return (out[:, -1] * wy[:, 0]).sum()
        return (h * wy[:, 0]).sum() + (c ** 2).sum()

    out, (h, c) = m(x, (h0[None], c0[None]))
    ref = _grads(loss(out, h[0], c[0]), [x, h0, c0, w_ih, w_hh, m.bias_ih_l0])
    out2, h2, c2 = _ext.lstm_train(x, h0, c0, w_ih, w_hh, b)
    got = _grads(loss(out2, h2, c2), [x, h0, c0, w_ih, w_hh, b])
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(out2, out, **tol)
    for name, r, g in zip(["x", "h0", "c0", "w_ih", "w_hh", "b"], ref, got):
        torch.testing.assert_close(g, r, msg=name, **tol)


@needs_ext
def test_kernel_gradcheck_float64():
    d = dict(dtype=torch.float64, requires_grad=True)
    args = [torch.randn(2, 4, 3, **d), torch.randn(2, 5, **d), torch.randn(2, 5, **d), torch.randn(20, 3, **d),
            torch.randn(20, 5, **d), torch.randn(20, **d)]
    assert torch.autograd.gradcheck(lambda *a: _ext.lstm_train(*a), args)
    assert torch.autograd.gradcheck(lambda *a: _ext.lstm_train(*a, None), args[:5])


def _pair(B, T, F, U, **kw):
    torch.manual_seed(0)
    a = L.LSTM(U, path="auto", **kw)
    b = L.LSTM(U, path="loop", **kw)
    a(torch.zeros(1, T, F))
    b(torch.zeros(1, T, F))
    b.set_weights(a.get_weights())
    return a, b, torch.randn(B, T, F, requires_grad=True), [torch.randn(B, U), torch.randn(B, U)]


@needs_ext
@pytest.mark.parametrize("go_backwards,with_init,return_sequences,use_bias",
                         list(itertools.product([False, True], [False, True], [False, True], [True, False])))
def test_layer_training_uses_compiled_path_and_equals_reference_loop(go_backwards, with_init, return_sequences,
                                                                    use_bias):
    B, T, F, U = 8, 6, 4, 5
    a, b, x, init = _pair(B, T, F, U, return_sequences=return_sequences, return_state=True,
                          go_backwards=go_backwards, use_bias=use_bias)
    init = init if with_init else None
    ra, rb = a(x, initial_state=init, training=True), b(x, initial_state=init, training=True)
    assert a.last_path == fused.COMPILED_TRAIN_PATH
    assert b.last_path.startswith("reference loop")
    for name in ra._fields:
        torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5, msg=name)
    wy = torch.randn_like(ra[0])
    la = (ra[0] * wy).sum() + ra.h.square().sum() + ra.c.sum()
    lb = (rb[0] * wy).sum() + rb.h.square().sum() + rb.c.sum()
    ga = _grads(la, [x] + list(a.parameters()))
    gb = _grads(lb, [x] + list(b.parameters()))
    for i, (p, q) in enumerate(zip(ga, gb)):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5, msg=f"grad {i}")


@needs_ext
def test_path_choice_by_size_and_reason():
    """Training steps up to COMPILED_TRAIN_MAX_STEP_MACS run compiled at any length and batch; larger
    steps and calls without autograd do not."""
    a, _, x, _ = _pair(8, 40, 3, 4, return_sequences=True)
    a(x)
    assert a.last_path == fused.COMPILED_TRAIN_PATH
    a(torch.randn(1, 5, 3, requires_grad=True))
    assert a.last_path == fused.COMPILED_TRAIN_PATH
    big = fused.COMPILED_TRAIN_MAX_STEP_MACS // (4 * 4 * 4) + 1          # rows of a step over the limit
    a(torch.randn(big, 2, 3, requires_grad=True))
    assert a.last_path.startswith("fused-")
    with torch.no_grad():
        a(torch.randn(9, 20, 3))            # inference beyond the small-batch loop's B <= 8: oneDNN
    assert a.last_path.startswith("fused-")
    cell = a.cell
    assert "multiply-adds" in fused.compiled_train_reason(cell, torch.zeros(big, 4, 3), (torch.zeros(big, 4),) * 2)
    assert fused.compiled_train_reason(cell, torch.zeros(2, 400, 3), (torch.zeros(2, 4),) * 2) is None
    assert "dtype" in fused.compiled_train_reason(cell, torch.zeros(8, 4, 3, dtype=torch.float16),
                                                  (torch.zeros(8, 4),) * 2)


@needs_ext
def test_input_dropout_in_training_runs_compiled_with_the_dropped_input():
    """dropout (on the inputs) is applied before the kernel; recurrent_dropout needs the loop."""
    a, _, x, _ = _pair(8, 5, 3, 4, dropout=0.5)
    a(x, training=True)
    assert a.last_path == fused.COMPILED_TRAIN_PATH
    r, _, x, _ = _pair(8, 5, 3, 4, recurrent_dropout=0.5)
    r(x, training=True)
    assert r.last_path.startswith("reference loop") and "recurrent_dropout" in r.last_path


@needs_ext
def test_unavailable_kernel_trains_on_onednn(monkeypatch):
    monkeypatch.setattr(_ext, "_REASON", "rnnstate._ext._C is not built (test)")
    a, b, x, _ = _pair(8, 5, 3, 4, return_sequences=True)
    ra, rb = a(x), b(x)
    assert a.last_path.startswith("fused-")
    (ga,) = _grads(ra.sum(), [x])
    (gb,) = _grads(rb.sum(), [x])
    torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-5)


# ---- GRU (reset_after=True) -----------------------------------------------------------------------------
@needs_ext
@pytest.mark.parametrize("B,T,F,U", [(1, 1, 3, 4), (3, 5, 4, 6), (9, 40, 2, 130)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_kernel_gradients_equal_torch_gru(B, T, F, U, dtype, bias):
    """Oracle: torch.nn.GRU's own autograd, same parameters (torch's layout and gate order r, z, n)."""
    torch.manual_seed(0)
    m = torch.nn.GRU(F, U, batch_first=True, bias=bias).to(dtype)
    x = torch.randn(B, T, F, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, U, dtype=dtype, requires_grad=True)
    ps = list(m.parameters())
    wy = torch.randn(B, T, U, dtype=dtype)
    out, h = m(x, h0[None])
    ref = _grads((out * wy).sum() + (h[0] ** 2).sum(), [x, h0] + ps)
    out2, h2 = _ext.gru_train(x, h0, *(ps if bias else ps + [None, None]))
    got = _grads((out2 * wy).sum() + (h2 ** 2).sum(), [x, h0] + ps)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(out2, out, **tol)
    for i, (r, g) in enumerate(zip(ref, got)):
        torch.testing.assert_close(g, r, msg=f"grad {i}", **tol)


@needs_ext
def test_gru_kernel_gradcheck_float64():
    d = dict(dtype=torch.float64, requires_grad=True)
    args = [torch.randn(2, 4, 3, **d), torch.randn(2, 5, **d), torch.randn(15, 3, **d), torch.randn(15, 5, **d),
            torch.randn(15, **d), torch.randn(15, **d)]
    assert torch.autograd.gradcheck(lambda *a: _ext.gru_train(*a), args)


@needs_ext
def test_gru_layer_training_path():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, requires_grad=True)
    a = L.GRU(4)
    a(x)
    assert a.last_path == fused.COMPILED_GRU_TRAIN_PATH
    r = L.GRU(4, reset_after=False)
    r(x)
    assert r.last_path.startswith("reference loop") and "reset_after=False" in r.last_path


# ---- SimpleRNN ---------------------------------------------------------------------------------------------
@needs_ext
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("B,T,F,U,dtype,bias", [(3, 5, 4, 6, torch.float64, True), (1, 1, 2, 3, torch.float64, False),
                                                (9, 40, 2, 130, torch.float32, True)])
def test_rnn_kernel_gradients_equal_torch_rnn(relu, B, T, F, U, dtype, bias):
    """Oracle: torch.nn.RNN's own autograd, same parameters."""
    torch.manual_seed(0)
    m = torch.nn.RNN(F, U, batch_first=True, bias=bias, nonlinearity="relu" if relu else "tanh").to(dtype)
    x = torch.randn(B, T, F, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, U, dtype=dtype, requires_grad=True)
    ps = list(m.parameters())
    wy = torch.randn(B, T, U, dtype=dtype)
    out, h = m(x, h0[None])
    ref = _grads((out * wy).sum() + (h[0] ** 2).sum(), [x, h0] + ps)
    out2, h2 = _ext.rnn_train(x, h0, *(ps if bias else ps + [None, None]), relu=relu)
    got = _grads((out2 * wy).sum() + (h2 ** 2).sum(), [x, h0] + ps)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(out2, out, **tol)
    for i, (r, g) in enumerate(zip(ref, got)):
        torch.testing.assert_close(g, r, msg=f"grad {i}", **tol)


@needs_ext
def test_gru_and_rnn_training_choose_torch_for_large_batch_times_units():
    big = fused.COMPILED_TRAIN_MAX_BATCH_UNITS // 4 + 1
    for layer in (L.GRU(4), L.SimpleRNN(4)):
        layer(torch.randn(big, 3, 2, requires_grad=True))
        assert layer.last_path.startswith("fused-")
        assert "batch x units" in fused.compiled_train_reason(layer.cell, torch.zeros(big, 3, 2),
                                                              (torch.zeros(big, 4),))


# Shapes around the packed small GEMM's blocks (gemm.cpp: panels of 32 columns, row blocks of 8, four
# panels at once below 4 rows): every row tail 1..9, 16 and 33 rows, column tails (U = 7, 33, 130 ->
# 4U = 28, 132, 520), and a step large enough to split across threads.
@needs_ext
@pytest.mark.parametrize("B,U", [(1, 7), (2, 33), (3, 130), (4, 8), (5, 7), (6, 33), (7, 16), (9, 130),
                                 (16, 33), (33, 7), (64, 128)])
def test_packed_gemm_shapes_equal_torch_ops(B, U):
    """Forward and backward of the compiled LSTM, GRU and SimpleRNN loops (float32, T > 1: the packed
    GEMM) against torch's own modules' values and gradients."""
    T, F = 4, 5
    torch.manual_seed(B * 1000 + U)
    x = torch.randn(B, T, F, requires_grad=True)
    wy = torch.randn(B, T, U)
    tol = dict(atol=2e-5, rtol=2e-5)
    m = torch.nn.LSTM(F, U, batch_first=True)
    h0, c0 = torch.randn(B, U), torch.randn(B, U)
    out, _ = m(x, (h0[None], c0[None]))
    ref = _grads((out * wy).sum(), [x, m.weight_ih_l0, m.weight_hh_l0])
    b = (m.bias_ih_l0 + m.bias_hh_l0).detach()
    out2, _, _ = _ext.lstm_train(x, h0, c0, m.weight_ih_l0, m.weight_hh_l0, b)
    torch.testing.assert_close(out2, out, **tol)
    for r, g in zip(ref, _grads((out2 * wy).sum(), [x, m.weight_ih_l0, m.weight_hh_l0])):
        torch.testing.assert_close(g, r, **tol)
    with torch.no_grad():
        seq = torch.ops.rnnstate.lstm_sequence(x, h0, c0, m.weight_ih_l0, m.weight_hh_l0, b, False, False)[0]
    torch.testing.assert_close(seq, out, **tol)
    g = torch.nn.GRU(F, U, batch_first=True)
    out, _ = g(x, h0[None])
    ref = _grads((out * wy).sum(), [x, g.weight_ih_l0, g.weight_hh_l0])
    res = torch.ops.rnnstate.gru_sequence(x, h0, g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0,
                                          False, True)
    torch.testing.assert_close(res[0], out, **tol)
    for r, gg in zip(ref, _grads((res[0] * wy).sum(), [x, g.weight_ih_l0, g.weight_hh_l0])):
        torch.testing.assert_close(gg, r, **tol)
    s = torch.nn.RNN(F, U, batch_first=True)
    out, _ = s(x, h0[None])
    ref = _grads((out * wy).sum(), [x, s.weight_ih_l0, s.weight_hh_l0])
    res = torch.ops.rnnstate.rnn_sequence(x, h0, s.weight_ih_l0, s.weight_hh_l0, s.bias_ih_l0, s.bias_hh_l0, False)
    torch.testing.assert_close(res[0], out, **tol)
    for r, gg in zip(ref, _grads((res[0] * wy).sum(), [x, s.weight_ih_l0, s.weight_hh_l0])):
        torch.testing.assert_close(gg, r, **tol)
