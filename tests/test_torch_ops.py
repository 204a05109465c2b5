"""The compiled kernels as torch ops (torch.ops.rnnstate.*): opcheck, torch.compile(fullgraph=True),
torch.export with dynamic batch and time, vmap, torch.jit.trace / torch.onnx.export (correct or refused),
batch 0, 0 timesteps, dtypes and autocast. Oracles: eager rnnstate, the reference loop (path="loop"),
torch's nn.LSTM / nn.GRU with the same weights, onnxruntime."""
import numpy as np
import pytest
import torch

from rnnstate import _ext
from rnnstate import layers as L
from rnnstate import models as M
from rnnstate.cells import LSTMCell
from rnnstate.states import Streamer

from .conftest import B, F, T, U

needs_ext = pytest.mark.skipif(_ext.unavailable_reason() is not None, reason=str(_ext.unavailable_reason()))
KINDS = ["LSTM", "GRU", "SimpleRNN"]


def _model(seed=0):
    """Input -> LSTM -> GRU -> SimpleRNN -> Dense, with weights large enough that paths would differ."""
    torch.manual_seed(seed)
    m = M.Sequential([L.Input((None, F)), L.LSTM(U, return_sequences=True), L.GRU(5, return_sequences=True),
                      L.SimpleRNN(3, return_sequences=True), L.Dense(2)])
    rng = np.random.default_rng(seed)
    m.set_weights([(rng.standard_normal(w.shape) * 0.5).astype("float32") for w in m.get_weights()])
    return m


def _close(a, b, tol=1e-5):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


# ---- the ops themselves ---------------------------------------------------------------------------------
def _weights(G, U_, F_, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(G * U_, F_, generator=g, dtype=dtype) * 0.5, torch.randn(G * U_, U_, generator=g, dtype=dtype) * 0.5,
            torch.randn(G * U_, generator=g, dtype=dtype) * 0.1, torch.randn(G * U_, generator=g, dtype=dtype) * 0.1]


@needs_ext
@pytest.mark.parametrize("grad", [False, True])
def test_opcheck_sequence_ops(grad):
    """Schema, fake kernels (also with dynamic shapes, through AOT dispatch) and autograd registration
    of every sequence op, in inference and training form."""
    ops = torch.ops.rnnstate
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=grad)
    h0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=grad)
    c0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=grad)
    wl, wg, wr = _weights(4, 5, 4), _weights(3, 5, 4), _weights(1, 5, 4)
    for w in wl + wg + wr:
        w.requires_grad_(grad)
    cases = [(ops.lstm_sequence.default, (x, h0, c0, wl[0], wl[1], wl[2], True, True)),
             (ops.gru_sequence.default, (x, h0, wg[0], wg[1], wg[2], wg[3], True, True)),
             (ops.rnn_sequence.default, (x, h0, wr[0], wr[1], wr[2], wr[3], True)),
             (ops.rnn_sequence.default, (x, h0, wr[0], wr[1], None, None, False))]
    if not grad:          # inference forms (not differentiable: no gradients to check)
        cases += [(ops.lstm_sequence.default, (x, h0, c0, wl[0], wl[1], None, False, False)),
                  (ops.gru_sequence.default, (x, h0, wg[0], wg[1], wg[2], wg[3], False, False)),
                  (ops.lstm_step.default, (x[:, 0], h0, c0, wl[0], wl[1], wl[2]))]
    for op, args in cases:
        torch.library.opcheck(op, args)


@needs_ext
def test_opcheck_backward_ops():
    ops = torch.ops.rnnstate
    x, h0, c0 = torch.randn(2, 3, 4), torch.randn(2, 5), torch.randn(2, 5)
    wl, wg, wr = _weights(4, 5, 4, torch.float32), _weights(3, 5, 4, torch.float32), _weights(1, 5, 4, torch.float32)
    out, _, _, cs, gi, gf, gg, go = ops.lstm_sequence(x, h0, c0, wl[0], wl[1], wl[2], True, True)
    dout, dh = torch.randn(2, 3, 5), torch.randn(2, 5)
    torch.library.opcheck(ops.lstm_backward.default, (x, h0, c0, wl[0], wl[1], True, out, cs, gi, gf, gg, go,
                                                      dout, dh, None, True, True))
    out, _, z, r, n, ghn = ops.gru_sequence(x, h0, *wg, True, True)
    torch.library.opcheck(ops.gru_backward.default, (x, h0, wg[0], wg[1], wg[3], True, out, z, r, n, ghn, dout, None,
                                                     False, True))
    out, _ = ops.rnn_sequence(x, h0, *wr, False)
    torch.library.opcheck(ops.rnn_backward.default, (x, h0, wr[0], wr[1], True, False, out, None, dh, True, False))


@needs_ext
def test_ops_gradcheck_float64():
    """The registered autograd (the compiled backwards) against finite differences."""
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    wl, wg = [w.requires_grad_() for w in _weights(4, 5, 4)], [w.requires_grad_() for w in _weights(3, 5, 4)]
    assert torch.autograd.gradcheck(lambda *a: _ext.lstm_train(*a), (x, h0, c0, wl[0], wl[1], wl[2]))
    assert torch.autograd.gradcheck(lambda *a: _ext.gru_train(*a), (x, h0, *wg))


# ---- torch.compile / torch.export -------------------------------------------------------------------------
@needs_ext
def test_compile_fullgraph_inference_and_training_equal_eager():
    """One model of LSTM/GRU/SimpleRNN/Dense, compiled with fullgraph=True (no graph break), predicts and
    trains (two SGD steps) with the same numbers as eager."""
    eager, comp = _model(), _model()
    cm = torch.compile(comp, fullgraph=True, backend="aot_eager")
    x = torch.randn(B, T, F)
    with torch.no_grad():
        _close(cm(x), eager(x))
    assert comp.layers[0].last_path.startswith("compiled-LSTM (torch.compile/export")
    opt_e = torch.optim.SGD(eager.parameters(), lr=0.1)
    opt_c = torch.optim.SGD(comp.parameters(), lr=0.1)
    for step in range(2):
        xs, ys = torch.randn(B, T, F), torch.randn(B, T, 2)
        for model, fn, opt in ((eager, eager, opt_e), (comp, cm, opt_c)):
            opt.zero_grad()
            loss = (fn(xs) - ys).square().mean()
            loss.backward()
            opt.step()
        assert "(training)" in comp.layers[1].last_path
    for a, b in zip(eager.parameters(), comp.parameters()):
        _close(a, b, 1e-5)


@needs_ext
def test_export_dynamic_batch_and_time_runs_other_shapes():
    from torch.export import Dim
    m = _model()
    ep = torch.export.export(m, (torch.randn(3, 5, F),), dynamic_shapes=({0: Dim("batch"), 1: Dim("time")},))
    for b, t in ((2, 7), (6, 3), (1, 1), (4, 40)):
        x = torch.randn(b, t, F)
        with torch.no_grad():
            _close(ep.module()(x), m(x))


# ---- vmap -----------------------------------------------------------------------------------------------
@needs_ext
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_vmap_over_a_model(kind):
    m = M.Sequential([L.Input((None, F)), getattr(L, kind)(U, return_sequences=True), L.Dense(2)])
    xs = torch.randn(4, B, T, F)
    with torch.no_grad():
        _close(torch.func.vmap(m)(xs), torch.stack([m(x) for x in xs]))


@needs_ext
def test_vmap_over_stacked_weights_ensemble():
    """vmap over per-model weights (an ensemble via functional_call): the op runs once per slice."""
    layers = [L.GRU(U, return_sequences=True) for _ in range(3)]
    x = torch.randn(B, T, F)
    for l in layers:
        l(x)
    params = {k: torch.stack([dict(l.named_parameters())[k].detach() for l in layers]) for k, _ in
              layers[0].named_parameters()}
    with torch.no_grad():
        y = torch.func.vmap(lambda p: torch.func.functional_call(layers[0], p, (x,)))(params)
        _close(y, torch.stack([l(x) for l in layers]))


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_per_sample_gradients_with_vmap_of_grad(kind):
    """torch.func.vmap(torch.func.grad(...)): per-sample gradients equal one backward per sample (the
    reference loop runs under grad transforms, and last_path says why)."""
    layer = getattr(L, kind)(U, return_sequences=True)
    x = torch.randn(B, T, F)
    layer(x)
    params = {k: v.detach() for k, v in layer.named_parameters()}

    def loss(p, xi):
        return torch.func.functional_call(layer, p, (xi.unsqueeze(0),)).square().sum()

    g = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, x)
    assert "torch.func.grad" in layer.last_path
    for i in range(B):
        layer.zero_grad()
        layer(x[i:i + 1], training=True).square().sum().backward()
        for k, p in layer.named_parameters():
            _close(g[k][i], p.grad)


# ---- tracing and ONNX: correct for other shapes, or refused --------------------------------------------------
def test_jit_trace_equals_eager_on_other_shapes_or_refuses():
    m = _model()
    with torch.no_grad():
        tr = torch.jit.trace(m, (torch.randn(B, T, F),))
        for b, t in ((2, 7), (6, 3), (1, 1)):
            x = torch.randn(b, t, F)
            _close(tr(x), m(x))
        seq = L.LSTM(U, return_sequences=True, return_cell_sequence=True)
        seq(torch.randn(B, T, F))
        with pytest.raises(RuntimeError, match="can't capture this call correctly: cell/gate sequences"):
            torch.jit.trace(seq, (torch.randn(B, T, F),))
        st = L.GRU(U, stateful=True)
        st(torch.randn(B, T, F))
        with pytest.raises(RuntimeError, match="can't capture a stateful layer"):
            torch.jit.trace(st, (torch.randn(B, T, F),))
        odd = L.LSTM(U, activation="relu")
        odd(torch.randn(B, T, F))
        with pytest.raises(RuntimeError, match=r"LSTM '.*'.*activation='relu'.*fixed to this input's number"):
            torch.jit.trace(odd, (torch.randn(B, T, F),))


def test_onnx_export_torchscript_is_correct_on_other_shapes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = _model()
    path = str(tmp_path / "m.onnx")
    with torch.no_grad():
        torch.onnx.export(m, (torch.randn(B, T, F),), path, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 1: "time"}, "y": {0: "batch", 1: "time"}})
    import onnx
    graph = onnx.load(path).graph
    assert [i.name for i in graph.input] == ["x"]
    assert {"LSTM", "GRU", "RNN"} <= {n.op_type for n in graph.node}
    sess = ort.InferenceSession(path)
    for b, t in ((2, 7), (6, 3)):
        x = torch.randn(b, t, F)
        with torch.no_grad():
            np.testing.assert_allclose(sess.run(None, {"x": x.numpy()})[0], m(x).numpy(), atol=1e-5, rtol=1e-5)


def test_onnx_export_dynamo_is_correct_or_raises(tmp_path):
    """torch's export-based ONNX exporter sees the registered ops: it either writes a graph that
    onnxruntime runs with rnnstate's numbers on other shapes, or raises (never a constant graph)."""
    ort = pytest.importorskip("onnxruntime")
    m = _model()
    path = str(tmp_path / "m.onnx")
    from torch.export import Dim
    try:
        torch.onnx.export(m, (torch.randn(B, T, F),), path, dynamo=True,
                          dynamic_shapes=({0: Dim("batch"), 1: Dim("time")},))
    except Exception as e:          # e.g. onnxscript missing, or no ONNX translation for rnnstate::lstm_sequence
        assert str(e)
        return
    sess = ort.InferenceSession(path)
    name = sess.get_inputs()[0].name
    for b, t in ((2, 7), (6, 3)):
        x = torch.randn(b, t, F)
        with torch.no_grad():
            np.testing.assert_allclose(sess.run(None, {name: x.numpy()})[0], m(x).numpy(), atol=1e-5, rtol=1e-5)


def test_onnx_export_of_what_onnx_cannot_express_raises(tmp_path):
    odd = L.GRU(U, activation="relu")
    odd(torch.randn(B, T, F))
    with pytest.raises(RuntimeError, match="activation='relu'"):
        torch.onnx.export(odd, (torch.randn(B, T, F),), str(tmp_path / "odd.onnx"), dynamo=False)


def test_jit_script_refuses_clearly():
    layer = L.LSTM(U)
    layer(torch.randn(B, T, F))
    with pytest.raises(TypeError, match=r"LSTM '.*': can't be compiled by torch.jit.script"):
        torch.jit.script(layer)


# ---- cells own their kernels -----------------------------------------------------------------------------
class MyLSTMCell(LSTMCell):
    """A subclass with the same equations: it keeps the fast paths."""


class PeepholeishCell(LSTMCell):
    """A subclass with other equations: the kernels must not run it."""

    def recurrent_step(self, xw_t, state, rec_mask=None, return_gates=False):
        res = super().recurrent_step(xw_t, state, rec_mask, return_gates)
        return (res[0] * 0.5,) + tuple(res[1:])


def test_cell_subclasses_keep_or_lose_the_kernels_by_their_equations():
    x = torch.randn(B, T, F)
    fast = L.RNN(MyLSTMCell(U), return_sequences=True)
    with torch.no_grad():
        fast(x)
    assert fast.last_path.startswith("fused-") or fast.last_path.startswith("compiled-")
    odd = L.RNN(PeepholeishCell(U), return_sequences=True)
    odd(x)
    assert odd.last_path.startswith("reference loop (PeepholeishCell overrides `recurrent_step`")


def test_paths_say_why_the_compiled_kernel_is_missing(monkeypatch):
    monkeypatch.setattr(_ext, "_REASON", "switched off by the test")
    layer = L.GRU(U, return_sequences=True)
    with torch.no_grad():
        layer(torch.randn(B, T, F))
    assert layer.last_path.startswith("fused-") and "(no compiled kernel: switched off by the test)" in layer.last_path


# ---- batch 0, no timesteps --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_batch_zero_gives_empty_outputs_on_every_path(kind):
    x0, x = torch.zeros(0, T, F), torch.randn(2, T, F)
    for kw in ({}, {"path": "loop"}, {"go_backwards": True}):
        layer = getattr(L, kind)(U, return_sequences=True, return_state=True, **kw)
        layer(x)
        n_states = 2 if kind == "LSTM" else 1
        with torch.no_grad():
            r = layer(x0)
        assert tuple(r[0].shape) == (0, T, U) and all(tuple(s.shape) == (0, U) for s in r[1:1 + n_states])
        for short in (x0[:, :1], x0[:, :2]):                                # short sequences (streaming)
            with torch.no_grad():
                assert tuple(layer(short)[0].shape) == (0, short.shape[1], U)
        x0g = x0.clone().requires_grad_()
        r = layer(x0g, training=True)                                       # training: compiled or torch's
        sum(t.sum() for t in r).backward()
        assert x0g.grad.shape == x0.shape
        mask = torch.ones(0, T, dtype=torch.bool)
        with torch.no_grad():
            assert tuple(layer(x0, mask=mask)[0].shape) == (0, T, U)
    if kind in ("LSTM", "GRU"):
        extra = {"return_cell_sequence": True} if kind == "LSTM" else {}
        layer = getattr(L, kind)(U, return_sequences=True, return_gate_sequences=True, **extra)
        layer(x)
        with torch.no_grad():
            assert all(t.shape[0] == 0 for t in layer(x0))


def test_batch_zero_streaming_and_predict():
    layer = L.LSTM(U, return_state=True)
    layer(torch.randn(2, T, F))
    s = Streamer(layer)
    y, st = s.step(torch.zeros(0, F))                                      # the compiled one-step kernel
    assert tuple(y[0].shape) == (0, U) and tuple(st.h.shape) == (0, U)
    model = M.Sequential([L.Input((None, F)), L.GRU(U, return_sequences=True), L.SimpleRNN(U), L.Dense(2)])
    assert model.predict(np.zeros((0, T, F), "float32"), verbose=0).shape == (0, 2)
    y, states = model.stream().step(np.zeros((0, F), "float32"))
    assert tuple(y.shape) == (0, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_timesteps_is_a_clear_error(kind):
    layer = getattr(L, kind)(U)
    layer(torch.randn(2, T, F))
    with pytest.raises(ValueError, match=r"needs at least one timestep .*received an input of shape \(2, 0, 4\)"):
        layer(torch.zeros(2, 0, F))


# ---- dtypes and autocast -----------------------------------------------------------------------------------
def _pair(kind, dtype, **kw):
    torch.manual_seed(0)
    a, b = getattr(L, kind)(U, **kw), getattr(L, kind)(U, path="loop", **kw)
    a(torch.zeros(1, T, F))
    b(torch.zeros(1, T, F))
    b.load_state_dict(a.state_dict())
    return a.to(dtype), b.to(dtype)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtypes_forward_and_backward_equal_reference_loop(kind, dtype):
    tol = 1e-10 if dtype == torch.float64 else 3e-2
    for T_ in (2, T):                                         # short (streaming) and longer sequences
        a, b = _pair(kind, dtype, return_sequences=True, return_state=True)
        x = torch.randn(B, T_, F, dtype=dtype)
        with torch.no_grad():
            for u, v in zip(a(x), b(x)):
                assert u.dtype == dtype
                _close(u, v, tol)
        if dtype == torch.bfloat16:                       # torch's ops, and the path says why
            assert a.last_path.startswith("fused-") and "bfloat16" in a.last_path
        elif _ext.unavailable_reason() is None:           # float64: the compiled loops where float32 has them
            assert a.last_path.startswith("compiled-") or a.last_path == "fused-oneDNN"
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ra, rb = a(xa, training=True), b(xb, training=True)
        sum(r.float().square().sum() for r in ra).backward()
        sum(r.float().square().sum() for r in rb).backward()
        _close(xa.grad, xb.grad, tol * 10)
        for p, q in zip(a.parameters(), b.parameters()):
            _close(p.grad, q.grad, tol * 10 if dtype == torch.float64 else 0.3)


def test_model_converted_to_float64_predicts_and_trains():
    """model.double() (or .to(float64)): inputs are cast to the layers' dtype, as Keras does; every
    layer then runs in float64, equal to the float32 model to float32 precision."""
    m32 = _model()
    m64 = _model().double()
    x = np.random.default_rng(1).standard_normal((B, T, F)).astype("float32")
    y64 = m64.predict(x, verbose=0)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, m32.predict(x, verbose=0), atol=1e-5, rtol=1e-4)
    loss = m64(torch.as_tensor(x, dtype=torch.float64)).square().sum()
    loss.backward()
    assert all(p.grad.dtype == torch.float64 for p in m64.parameters())


@pytest.mark.parametrize("kind,torch_cls", [("LSTM", torch.nn.LSTM), ("GRU", torch.nn.GRU),
                                            ("SimpleRNN", torch.nn.RNN)])
def test_autocast_cpu_behaves_like_torch_modules(kind, torch_cls):
    """Under CPU autocast a layer gives what the torch module with the same weights gives: same dtype
    (bfloat16 for the LSTM and the RNN, float32 for the GRU: torch's autocast lists), close values."""
    layer = getattr(L, kind)(U, return_sequences=True)
    x = torch.randn(B, T, F)
    layer(x)
    ref = torch_cls(F, U, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih"):
            getattr(ref, name + "_l0").copy_(getattr(layer.cell, name))
        ref.bias_hh_l0.copy_(layer.cell.bias_hh)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        y, y_ref = layer(x), ref(x)[0]
    assert y.dtype == y_ref.dtype
    assert "autocast" in layer.last_path
    _close(y.float(), y_ref.float(), 1e-6)
