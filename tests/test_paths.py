"""Fused kernels == the reference loop (values and gradients) over the flag grid; path reporting."""
import itertools

import numpy as np
import pytest
import torch

from rnnstate import layers as L

from .conftest import B, F, T, U

KINDS = ["LSTM", "GRU", "SimpleRNN"]


def _pair(kind, wseed=0, **kw):
    torch.manual_seed(wseed)
    a = getattr(L, kind)(U, path="auto", **kw)
    b = getattr(L, kind)(U, path="loop", **kw)
    a(torch.zeros(1, T, F))
    b(torch.zeros(1, T, F))
    w = [np.random.default_rng(wseed).standard_normal(x.shape).astype("float32") * 0.5 for x in a.get_weights()]
    a.set_weights(w)
    b.set_weights(w)
    return a, b


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kernels", ["auto", "torch ops only"])
@pytest.mark.parametrize("go_backwards,with_init,return_sequences",
                         list(itertools.product([False, True], [False, True], [False, True])))
def test_fused_equals_loop_values_and_grads(kind, kernels, go_backwards, with_init, return_sequences, monkeypatch):
    """Every fast path under autograd (the compiled training loops; torch's fused ops with the compiled
    kernels switched off) equals the reference loop."""
    from rnnstate import _ext
    if kernels != "auto":
        monkeypatch.setattr(_ext, "_REASON", "switched off by the test")
    a, b = _pair(kind, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    x = torch.randn(B, T, F, requires_grad=True)
    n = 2 if kind == "LSTM" else 1
    init = [torch.randn(B, U, requires_grad=True) for _ in range(n)] if with_init else None
    ra = a(x, initial_state=init, training=True)
    compiled = kernels == "auto" and _ext.unavailable_reason() is None     # small steps: compiled training
    assert a.last_path.startswith(f"compiled-{kind} (training" if compiled else "fused-")
    gx_a = torch.autograd.grad(sum(r.square().sum() for r in ra), [x] + list(a.parameters()) + (init or []))
    rb = b(x, initial_state=init, training=True)
    assert b.last_path.startswith("reference loop")
    gx_b = torch.autograd.grad(sum(r.square().sum() for r in rb), [x] + list(b.parameters()) + (init or []))
    for u, v in zip(ra, rb):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)
    for u, v in zip(gx_a, gx_b):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_state_and_gate_sequences_equal_loop(kind, go_backwards):
    extra = {"return_cell_sequence": True} if kind == "LSTM" else {}
    a, b = _pair(kind, return_sequences=True, return_state=True, go_backwards=go_backwards,
                 return_gate_sequences=True, **extra)
    x = torch.randn(B, T, F, requires_grad=True)
    ra, rb = a(x, training=True), b(x, training=True)
    assert "gate recompute" in a.last_path and b.last_path.startswith("reference loop")
    assert ra._fields == rb._fields
    for name in ra._fields:
        torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5, msg=name)
    ga = torch.autograd.grad(sum(r.sum() for r in ra), [x] + list(a.parameters()))
    gb = torch.autograd.grad(sum(r.sum() for r in rb), [x] + list(b.parameters()))
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)


def test_lstm_sequences_obey_equations():
    """c_t = f*c_{t-1} + i*g and h_t = o*tanh(c_t), from the returned sequences themselves."""
    layer = L.LSTM(U, return_sequences=True, return_state=True, return_cell_sequence=True,
                   return_gate_sequences=True)
    r = layer(torch.randn(B, T, F))
    c_prev = torch.cat([torch.zeros(B, 1, U), r.c_seq[:, :-1]], 1)
    torch.testing.assert_close(r.c_seq, r.gate_f * c_prev + r.gate_i * r.gate_g, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(r.output, r.gate_o * torch.tanh(r.c_seq), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(r.c_seq[:, -1], r.c)
    assert isinstance(r.gates, tuple) and r.gates.f is r.gate_f


def test_input_dropout_runs_fused_and_equals_loop_with_same_seed():
    a, b = _pair("LSTM", return_sequences=True, dropout=0.5, seed=3)
    x = torch.randn(B, T, F)
    ya, yb = a(x, training=True), b(x, training=True)
    assert a.last_path.startswith(("fused-", "compiled-LSTM (training"))
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    # inference ignores dropout
    torch.testing.assert_close(a(x), b(x), atol=1e-5, rtol=1e-5)


def test_reasons_for_the_loop():
    x = torch.randn(B, T, F)
    cases = [
        (L.LSTM(U, activation="relu"), "activation='relu'"),
        (L.LSTM(U, recurrent_activation="hard_sigmoid"), "recurrent_activation='hard_sigmoid'"),
        (L.GRU(U, reset_after=False), "reset_after=False"),
        (L.SimpleRNN(U, activation="sigmoid"), "activation='sigmoid'"),
    ]
    for layer, why in cases:
        layer(x)
        assert layer.last_path.startswith("reference loop") and why in layer.last_path
    rd = L.LSTM(U, recurrent_dropout=0.3)
    rd(x)
    assert not rd.last_path.startswith("reference loop")      # inference: no dropout, a fast path
    rd(x, training=True)
    assert "recurrent_dropout" in rd.last_path


def test_forcing_an_impossible_fused_path_raises_with_the_reason():
    layer = L.GRU(U, reset_after=False, path="fused")
    with pytest.raises(ValueError, match=r"GRU '.*': path='fused' was requested .*reset_after=False"):
        layer(torch.randn(B, T, F))
    with pytest.raises(ValueError, match="argument `path` must be one of"):
        L.LSTM(U, path="cudnn")


def test_use_cudnn_keras_argument_maps_to_paths():
    x = torch.randn(B, T, F)
    loop = L.LSTM(U, use_cudnn=False)
    loop(x)
    assert loop.last_path.startswith("reference loop")
    with pytest.raises(ValueError, match="reset_after=False"):
        L.GRU(U, reset_after=False, use_cudnn=True)(x)


@pytest.mark.parametrize("kind", KINDS)
def test_single_step_cell_op_equals_loop(kind):
    a, b = _pair(kind, return_sequences=True, return_state=True)
    x = torch.randn(B, 1, F)
    n = 2 if kind == "LSTM" else 1
    init = [torch.randn(B, U) for _ in range(n)]
    with torch.no_grad():
        ra, rb = a(x, initial_state=init), b(x, initial_state=init)
    # inference: the compiled loops
    small = _ext_small_batch(x, U)                     # float32 B <= 8 on AVX-512: the LSTM's small-batch loop
    assert a.last_path == {"LSTM": "compiled-LSTM (small-batch loop: packed weights, one pass per step)" if small
                           else "compiled-LSTM (h, c and gate sequences in one time loop)",
                           "GRU": "compiled-GRU (small-batch loop: packed weights, one pass per step)" if small
                           else "compiled-GRU (h and gate sequences in one time loop)",
                           "SimpleRNN": "compiled-SimpleRNN (one time loop)"}[kind]
    for u, v in zip(ra, rb):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)
    ra = a(x, initial_state=init)                      # under autograd: the sequence kernel (faster backward)
    assert a.last_path.startswith(f"compiled-{kind} (training")
    assert "cell ops" not in a.last_path
    for u, v in zip(ra, rb):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)


def _ext_small_batch(x, units):
    from rnnstate import _ext
    return _ext.small_batch_loop(x, units)


def test_step_by_step_equals_full_sequence():
    layer = L.LSTM(U, return_sequences=True, return_state=True)
    x = torch.randn(B, T, F)
    full = layer(x)
    state = None
    outs = []
    for t in range(T):
        out, *state = layer(x[:, t:t + 1], initial_state=state)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), full.output, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(state[1], full.c, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_sequences_without_autograd_equal_loop(kind):
    extra = {"return_cell_sequence": True} if kind == "LSTM" else {}
    a, b = _pair(kind, return_sequences=True, return_state=True, return_gate_sequences=True, **extra)
    x = torch.randn(B, T, F)
    with torch.inference_mode():
        ra, rb = a(x), b(x)
    for name in ra._fields:
        torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5, msg=name)


def test_short_sequence_inference_runs_compiled_and_equals_loop():
    from rnnstate import _ext
    assert _ext.unavailable_reason() is None, _ext.unavailable_reason()     # `make` builds it
    a, b = _pair("LSTM", return_sequences=True, return_state=True)
    init = [torch.randn(B, U), torch.randn(B, U)]
    for steps in (1, 3):
        x = torch.randn(B, steps, F)
        with torch.no_grad():
            ra, rb = a(x, initial_state=init), b(x, initial_state=init)
        assert a.last_path.startswith("compiled-LSTM")
        for u, v in zip(ra, rb):
            torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)
