"""rnnstate.export.onnx: the written graph, run by onnxruntime, equals rnnstate's own run.

Oracle: the rnnstate model itself (tested against Keras and torch elsewhere), on fresh inputs of batch
sizes and lengths the export never saw (export reads weights and configuration only, never an example
input), and the rnnstate full-sequence run for streamed ONNX runs with states fed back.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import rnnstate as rs
from rnnstate import export, layers as L

F, U = 3, 4
SHAPES = [(1, 1), (2, 7), (5, 3)]             # (B, T) of fresh inputs


def _init(model, seed=0):
    """Random weights (biases too, so that bias handling is tested)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def _export(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    info = export.onnx(model, path)
    onnx.checker.check_model(str(path), full_check=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return info, ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _np(x):
    return [t.detach().numpy() for t in (x if isinstance(x, (list, tuple)) else [x])]


def _run(info, sess, xs, states=None):
    xs = xs if isinstance(xs, list) else [xs]
    feed = dict(zip(info.input_names, xs))
    feed.update(info.zero_states(xs[0].shape[0]) if states is None else states)
    return dict(zip(info.output_names, sess.run(None, feed)))


def _assert_outputs(model, info, out, xs, atol=1e-5):
    ref = _np(model(xs))
    names = info.output_names[:len(ref)]
    assert len(ref) == len(model.outputs)
    for n, r in zip(names, ref):
        assert out[n].shape == r.shape, n
        np.testing.assert_allclose(out[n], r, atol=atol, rtol=0, err_msg=n)


def _x(B, T, seed=1):
    return np.random.default_rng(seed + 7 * B + T).standard_normal((B, T, F)).astype(np.float32)


KINDS = {
    "lstm": lambda **kw: L.LSTM(U, **kw),
    "gru": lambda **kw: L.GRU(U, **kw),
    "gru_reset_before": lambda **kw: L.GRU(U, reset_after=False, **kw),
    "rnn_tanh": lambda **kw: L.SimpleRNN(U, **kw),
    "rnn_relu": lambda **kw: L.SimpleRNN(U, activation="relu", **kw),
    "rnn_sigmoid": lambda **kw: L.SimpleRNN(U, activation="sigmoid", **kw),
}


# ---- single layers: every kind, flag and direction ------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layer_matches_rnnstate(tmp_path, kind, return_sequences, go_backwards):
    inp = rs.Input((None, F))
    res = KINDS[kind](return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)(inp)
    model = _init(rs.Model(inp, list(res)))
    info, sess = _export(model, tmp_path)
    n_states = 2 if kind == "lstm" else 1
    assert len(info.states) == n_states
    for B, T in SHAPES:
        x = _x(B, T)
        out = _run(info, sess, x)
        _assert_outputs(model, info, out, x)
        ref = _np(model(x))
        for s, r in zip(info.states, ref[1:]):          # the state outputs equal the returned states
            np.testing.assert_allclose(out[s["output"]], r, atol=1e-5, rtol=0)


def test_nonzero_initial_states_fed_as_inputs(tmp_path):
    """Feeding `<layer>/initial_h`, `initial_c` equals rnnstate's initial_state."""
    inp, h0, c0 = rs.Input((None, F)), rs.Input((U,)), rs.Input((U,))
    y = L.LSTM(U, return_sequences=True, go_backwards=True, name="enc")(inp, initial_state=[h0, c0])
    graph_init = _init(rs.Model([inp, h0, c0], y))
    inp2 = rs.Input((None, F))
    lstm = L.LSTM(U, return_sequences=True, go_backwards=True, name="enc")
    plain = rs.Model(inp2, lstm(inp2))
    plain.set_weights(graph_init.get_weights())
    info, sess = _export(plain, tmp_path)
    assert info.state_input_names == ["enc/initial_h", "enc/initial_c"]
    rng = np.random.default_rng(3)
    for B, T in SHAPES:
        x, h, c = _x(B, T), *rng.standard_normal((2, B, U)).astype(np.float32)
        out = _run(info, sess, x, {"enc/initial_h": h, "enc/initial_c": c})
        ref = _np(graph_init([x, h, c]))[0]
        np.testing.assert_allclose(out["enc"], ref, atol=1e-5, rtol=0)


def test_initial_state_from_the_graph(tmp_path):
    """Encoder-decoder: the decoder's initial state is the encoder's final state (no state input for it)."""
    enc_in, dec_in = rs.Input((None, F)), rs.Input((None, 2))
    _, h, c = L.LSTM(U, return_state=True, name="encoder")(enc_in)
    dec = L.LSTM(U, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    y = L.Dense(2, activation="softmax")(dec)
    model = _init(rs.Model([enc_in, dec_in], y))
    info, sess = _export(model, tmp_path)
    assert info.state_input_names == ["encoder/initial_h", "encoder/initial_c"]
    assert info.state_output_names == ["encoder/Y_h", "encoder/Y_c", "decoder/Y_h", "decoder/Y_c"]
    for B, T in SHAPES:
        xs = [_x(B, T), np.random.default_rng(B).standard_normal((B, T + 2, 2)).astype(np.float32)]
        _assert_outputs(model, info, _run(info, sess, xs), xs)


def test_tutorial_model_exports_with_dynamic_axes(tmp_path):
    """The README's Keras-style model: Input -> LSTM(return_sequences, return_state)."""
    inputs = rs.Input(shape=(10, F), name="x")        # a fixed T in the model: the export still takes any T
    out, h, c = L.LSTM(U, return_sequences=True, return_state=True, name="lstm")(inputs)
    model = _init(rs.Model(inputs, [out, h, c]))
    info, sess = _export(model, tmp_path)
    dims = {i.name: i.shape for i in sess.get_inputs()}
    assert dims == {"x": ["batch", "time", F], "lstm/initial_h": ["batch", U],
                    "lstm/initial_c": ["batch", U]}
    for B, T in [(2, 10), (3, 4), (1, 13)]:
        x = _x(B, T)
        _assert_outputs(model, info, _run(info, sess, x), x)


# ---- Bidirectional, stacked ----------------------------------------------------------------------------------
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_bidirectional(tmp_path, merge_mode, kind):
    inp = rs.Input((None, F))
    res = L.Bidirectional(KINDS[kind](return_sequences=True, return_state=True), merge_mode=merge_mode)(inp)
    model = _init(rs.Model(inp, list(res)))
    info, sess = _export(model, tmp_path)
    nodes = [n for n in onnx.load(info.path).graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    assert len(nodes) == 1 and any(a.s == b"bidirectional" for a in nodes[0].attribute)
    for B, T in SHAPES:
        x = _x(B, T)
        _assert_outputs(model, info, _run(info, sess, x), x)


def test_bidirectional_last_output_and_backwards_wrapped_layer(tmp_path):
    inp = rs.Input((None, F))
    a = L.Bidirectional(L.LSTM(U))(inp)
    b = L.Bidirectional(L.GRU(U, return_sequences=True, go_backwards=True), merge_mode="sum")(inp)
    model = _init(rs.Model(inp, [a, b]))
    info, sess = _export(model, tmp_path)
    for B, T in SHAPES:
        x = _x(B, T)
        _assert_outputs(model, info, _run(info, sess, x), x)


def test_bidirectional_with_a_different_backward_layer(tmp_path):
    """backward_layer of another kind: two nodes instead of one bidirectional node."""
    inp = rs.Input((None, F))
    y = L.Bidirectional(L.GRU(U, return_sequences=True, return_state=True),
                        backward_layer=L.SimpleRNN(U, activation="relu", return_sequences=True, return_state=True,
                                                   go_backwards=True))(inp)
    model = _init(rs.Model(inp, list(y)))
    info, sess = _export(model, tmp_path)
    assert [n.op_type for n in onnx.load(info.path).graph.node if n.op_type in ("RNN", "GRU")] == ["GRU", "RNN"]
    for B, T in SHAPES:
        x = _x(B, T)
        _assert_outputs(model, info, _run(info, sess, x), x)


def test_stacked_layers_and_stacked_cells(tmp_path):
    inp = rs.Input((None, F))
    y = L.LSTM(U, return_sequences=True)(inp)
    y = L.GRU(5, return_sequences=True, go_backwards=True)(y)
    y = L.Dropout(0.5)(y)
    y, (h0, c0), h1 = L.RNN([L.LSTMCell(3), L.GRUCell(U)], return_sequences=True, return_state=True, name="rnn")(y)
    z = L.Bidirectional(L.RNN([L.GRUCell(2), L.SimpleRNNCell(3)]))(y)
    model = _init(rs.Model(inp, [y, h0, c0, h1, L.Dense(2, activation="tanh")(z)]))
    info, sess = _export(model, tmp_path)
    assert "rnn/initial_h_0" in info.state_input_names and "rnn/Y_h_1" in info.state_output_names
    for B, T in SHAPES:
        x = _x(B, T)
        _assert_outputs(model, info, _run(info, sess, x), x)


def test_sequential_head(tmp_path):
    model = _init(rs.Sequential([rs.Input((None, F)), L.SimpleRNN(U, return_sequences=True),
                                 L.TimeDistributed(L.Dense(2, activation="softmax")), L.Activation("relu")]))
    info, sess = _export(model, tmp_path)
    for B, T in SHAPES:
        x = _x(B, T)
        _assert_outputs(model, info, _run(info, sess, x), x)


# ---- masks ----------------------------------------------------------------------------------------------------------
def _ids(B, T, seed):
    """Right-padded ids (0 = padding): lengths T, 0, then random strictly in between (when T > 1)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 9, (B, T))
    lens = rng.integers(1, T, B) if T > 1 else np.ones(B, np.int64)
    lens[0] = T
    if B > 1:
        lens[1] = 0
    ids[np.arange(T)[None, :] >= lens[:, None]] = 0
    return ids.astype(np.int64)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_embedding_mask_zero(tmp_path, kind, go_backwards, zero_output_for_mask):
    inp = rs.Input((None,), dtype="int64")
    e = L.Embedding(9, F, mask_zero=True)(inp)
    res = KINDS[kind](return_sequences=True, return_state=True, go_backwards=go_backwards,
                      zero_output_for_mask=zero_output_for_mask)(e)
    last = KINDS[kind](go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask)(res[0])
    model = _init(rs.Model(inp, list(res) + [last, L.Dense(2)(last)]))
    info, sess = _export(model, tmp_path)
    assert [i.shape for i in sess.get_inputs()][0] == ["batch", "time"]
    for B, T in [(3, 1), (4, 6), (2, 9)]:
        ids = _ids(B, T, B * T)
        _assert_outputs(model, info, _run(info, sess, ids), ids)


def test_masking_layer_bidirectional(tmp_path):
    inp = rs.Input((None, F))
    m = L.Masking(0.0)(inp)
    y = L.Bidirectional(L.LSTM(U, return_sequences=True, return_state=True))(m)
    z = L.Bidirectional(L.GRU(U), merge_mode="ave")(y[0])
    model = _init(rs.Model(inp, [*y, z]))
    info, sess = _export(model, tmp_path)
    for B, T in [(3, 5), (4, 2)]:
        x = _x(B, T)
        lens = np.array([T, 0, 1, T - 1][:B])
        x[np.arange(T)[None, :] >= lens[:, None]] = 0.0
        _assert_outputs(model, info, _run(info, sess, x), x)


def test_mask_through_concatenate_and_dense(tmp_path):
    inp = rs.Input((None,), dtype="int64")
    e1 = L.Embedding(9, F, mask_zero=True)(inp)
    e2 = L.Embedding(9, 2)(inp)
    y = L.Dense(3, activation="relu")(L.Concatenate()([e1, e2]))
    t = L.Concatenate(axis=1)([L.Embedding(9, F)(inp), e1])       # along time: [all valid, e1's mask]
    model = _init(rs.Model(inp, [L.LSTM(U, return_sequences=True)(y), L.GRU(U, go_backwards=True)(t)]))
    info, sess = _export(model, tmp_path)
    for B, T in [(4, 5), (2, 1)]:
        ids = _ids(B, T, 11 + T)
        _assert_outputs(model, info, _run(info, sess, ids), ids)


def test_mask_not_right_padded_gives_nan_rows(tmp_path):
    """A hole in a mask can't go through sequence_lens: that row is NaN, never quietly different; the
    other rows are exact."""
    inp = rs.Input((None,), dtype="int64")
    y, h, c = L.LSTM(U, return_sequences=True, return_state=True)(L.Embedding(9, F, mask_zero=True)(inp))
    model = _init(rs.Model(inp, [y, h, c]))
    info, sess = _export(model, tmp_path)
    ids = np.array([[1, 0, 3, 0], [2, 3, 0, 0], [0, 4, 5, 6]], np.int64)     # a hole, right-padded, left-padded
    out = _run(info, sess, ids)
    ref = _np(model(ids))
    for name, r in zip(info.output_names, ref):
        assert np.isnan(out[name][[0, 2]]).all(), name
        np.testing.assert_allclose(out[name][1], r[1], atol=1e-5, rtol=0)


# ---- streaming: a stateless runtime, states fed back -------------------------------------------------------------
def _stream_equal(model, tmp_path, T, B, chunk=1):
    info, sess = _export(model, tmp_path)
    x = _x(B, T, seed=5)
    states = info.zero_states(B)
    steps = []
    for t in range(0, T, chunk):
        out = _run(info, sess, x[:, t:t + chunk], states)
        states = info.next_states([out[n] for n in info.output_names])
        steps.append(out)
    return info, x, steps, states


def test_streamed_lstm_equals_full_run(tmp_path):
    inp = rs.Input((None, F))
    y = L.LSTM(U, return_sequences=True, name="lstm")(inp)
    y = L.GRU(3, return_sequences=True, name="gru")(y)
    model = _init(rs.Model(inp, L.TimeDistributed(L.Dense(2))(y)))
    info, x, steps, final = _stream_equal(model, tmp_path, T=9, B=2)
    ref = _np(model(x))[0]
    np.testing.assert_allclose(np.concatenate([s[info.output_names[0]] for s in steps], 1), ref, atol=1e-5, rtol=0)
    _, full_states = model.stream().step(torch.as_tensor(x))
    np.testing.assert_allclose(final["lstm/initial_h"], full_states["lstm"].h.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(final["lstm/initial_c"], full_states["lstm"].c.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(final["gru/initial_h"], full_states["gru"].h.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", [1, 3])
def test_streamed_last_output_model(tmp_path, chunk):
    """LSTM -> Dense: streaming one step (or chunk) at a time gives the prediction after every chunk; the
    last equals the full run's output."""
    model = _init(rs.Sequential([rs.Input((None, F)), L.SimpleRNN(U, return_sequences=True),
                                 L.LSTM(U), L.Dense(1)]))
    info, x, steps, _ = _stream_equal(model, tmp_path, T=7, B=3, chunk=chunk)
    for k, s in enumerate(steps):
        t = min(chunk * (k + 1), 7)
        np.testing.assert_allclose(s[info.output_names[0]], _np(model(x[:, :t]))[0], atol=1e-5, rtol=0)


def test_stateful_layer_exports_its_state_as_io(tmp_path):
    inp = rs.Input(batch_shape=(2, None, F))
    model = _init(rs.Model(inp, L.GRU(U, stateful=True, return_sequences=True, name="gru")(inp)))
    x1, x2 = _x(2, 4), _x(2, 3, seed=9)
    info, sess = _export(model, tmp_path)
    assert info.state_input_names == ["gru/initial_h"]
    y1 = _run(info, sess, x1)
    model.reset_states()
    ref1 = _np(model(x1))[0]
    carried = model.get_states()["gru"].h.numpy()
    np.testing.assert_allclose(y1["gru/Y_h"], carried, atol=1e-5, rtol=0)
    y2 = _run(info, sess, x2, {"gru/initial_h": y1["gru/Y_h"]})
    np.testing.assert_allclose(y1["gru"], ref1, atol=1e-5, rtol=0)
    np.testing.assert_allclose(y2["gru"], _np(model(x2))[0], atol=1e-5, rtol=0)     # continues from the carried state


def test_zero_states_from_file(tmp_path):
    inp = rs.Input((None, F))
    model = rs.Model(inp, L.Bidirectional(L.LSTM(U), name="bidirectional")(inp))
    info, _ = _export(model, tmp_path)
    z = export.zero_states(info.path, batch_size=3)
    assert list(z) == ["bidirectional/forward/initial_h", "bidirectional/forward/initial_c",
                       "bidirectional/backward/initial_h", "bidirectional/backward/initial_c"]
    assert all(v.shape == (3, U) and not v.any() for v in z.values())


# ---- plain layers -----------------------------------------------------------------------------------------------
ACTS = ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu", "softplus", "softsign",
        "exponential", "leaky_relu", "relu6", "hard_sigmoid", "silu", "hard_silu", "gelu", "mish"]


def test_dense_activations_add_concatenate(tmp_path):
    inp = rs.Input((None, F))
    outs = [L.Dense(3, activation=a, name=f"d_{a}")(inp) for a in ACTS]
    outs.append(L.Add()([outs[0], outs[1], outs[2]]))
    outs.append(L.Concatenate(axis=1)([outs[3], outs[4]]))
    outs.append(L.Dense(2, use_bias=False)(L.LSTM(U)(inp)))
    model = _init(rs.Model(inp, outs))
    info, sess = _export(model, tmp_path)
    for B, T in SHAPES:
        x = _x(B, T)
        _assert_outputs(model, info, _run(info, sess, x), x)


# ---- refusals: the reason, the layer, and no file -----------------------------------------------------------------
class _MyCell(L.LSTMCell):
    def recurrent_step(self, xw_t, state, rec_mask=None, return_gates=False):
        return super().recurrent_step(xw_t * 2, state, rec_mask, return_gates)


class _MyDense(L.Dense):
    def forward(self, x, training=None):
        return super().forward(x) * 2


@pytest.mark.parametrize("make, match", [
    (lambda x: _MyDense(2)(x), r"_MyDense overrides `forward` of Dense"),
    (lambda x: L.TimeDistributed(_MyDense(2))(x), r"_MyDense overrides `forward` of Dense"),
    (lambda x: L.Flatten()(x), r"Flatten 'flatten.*'.*no ONNX conversion"),
    (lambda x: L.RepeatVector(2)(L.LSTM(U)(x)), r"RepeatVector.*no ONNX conversion"),
    (lambda x: L.LSTM(U, activation="relu")(x), r"LSTM 'lstm.*'.*activation='tanh'.*received activation='relu'"),
    (lambda x: L.GRU(U, recurrent_activation="hard_sigmoid")(x), r"GRU.*recurrent_activation='hard_sigmoid'"),
    (lambda x: L.SimpleRNN(U, activation="elu")(x), r"SimpleRNN.*activation 'elu'"),
    (lambda x: L.LSTM(U, return_cell_sequence=True)(x)[0], r"return_cell_sequence"),
    (lambda x: L.RNN(_MyCell(U))(x), r"_MyCell overrides `recurrent_step`"),
    (lambda x: L.Dense(2, activation=lambda v: v * 2)(x), r"Dense.*activation.*no ONNX conversion"),
    (lambda x: L.TimeDistributed(L.Flatten())(x), r"TimeDistributed\(Flatten\)"),
])
def test_unsupported_raises_with_reason_and_writes_nothing(tmp_path, make, match):
    inp = rs.Input((None, F))
    model = rs.Model(inp, make(inp))
    path = tmp_path / "bad.onnx"
    with pytest.raises(export.ExportError, match=match):
        export.onnx(model, path)
    assert not path.exists()


def test_unbuilt_sequential_and_non_models_refused(tmp_path):
    with pytest.raises(export.ExportError, match="not built"):
        export.onnx(rs.Sequential([L.LSTM(U)]), tmp_path / "b.onnx")
    with pytest.raises(export.ExportError, match="expects a Model"):
        export.onnx(L.LSTM(U), tmp_path / "c.onnx")
    assert not list(tmp_path.iterdir())


def test_nested_model_and_shared_layers(tmp_path):
    """A model used as a layer (twice) and a layer called twice: each call its own states."""
    inner_in = rs.Input((None, F))
    inner = rs.Model(inner_in, L.GRU(U, return_sequences=True, name="g")(inner_in), name="enc")
    a, c = rs.Input((None, F), name="a"), rs.Input((None, F), name="c")
    shared = L.LSTM(3, name="shared")
    model = _init(rs.Model([a, c], [shared(inner(a)), shared(inner(c))]))
    info, sess = _export(model, tmp_path)
    assert info.state_input_names == ["enc/g/initial_h", "shared/initial_h", "shared/initial_c",
                                      "enc/call_1/g/initial_h", "shared/call_1/initial_h", "shared/call_1/initial_c"]
    for B, T in SHAPES:
        xs = [_x(B, T), _x(B, T + 1, seed=4)]
        _assert_outputs(model, info, _run(info, sess, xs), xs)


def test_masked_stacked_cells_no_bias_and_mask_past_initial_state(tmp_path):
    """Stacked cells under a mask; biases off; a layer given initial_state uses no mask (Keras) but still
    passes the input's mask on to the next layer."""
    inp, h0 = rs.Input((None,), dtype="int64"), rs.Input((U,))
    e = L.Embedding(9, F, mask_zero=True)(inp)
    y = L.RNN([L.LSTMCell(3, use_bias=False), L.GRUCell(U, use_bias=False)], return_sequences=True,
              go_backwards=True)(e)
    y = L.GRU(U, return_sequences=True)(y, initial_state=[h0])
    z = L.SimpleRNN(2, return_state=True)(y)
    model = _init(rs.Model([inp, h0], [y, *z]))
    info, sess = _export(model, tmp_path)
    for B, T in [(3, 5), (4, 2)]:
        xs = [_ids(B, T, T), np.random.default_rng(T).standard_normal((B, U)).astype(np.float32)]
        _assert_outputs(model, info, _run(info, sess, xs), xs)


def test_explicit_mask_argument(tmp_path):
    """`LSTM(...)(x, mask=m)` with a bool model input: the mask is a graph input too."""
    inp, m = rs.Input((None, F), name="x"), rs.Input((None,), dtype="bool", name="m")
    y = L.GRU(U, return_sequences=True, go_backwards=True)(inp, mask=m)
    model = _init(rs.Model([inp, m], [y, L.LSTM(U)(inp, mask=m)]))
    info, sess = _export(model, tmp_path)
    for B, T in [(3, 4), (2, 1)]:
        x = _x(B, T)
        mask = np.arange(T)[None, :] < np.array([T, 0, 1][:B])[:, None]
        _assert_outputs(model, info, _run(info, sess, [x, mask]), [x, mask])


def test_export_bench_smoke(tmp_path):
    """benchmarks/bench_export.py --smoke runs, checks agreement, writes its JSON."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "export.json"
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_export.py"), "--smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=240, cwd=root)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["streaming_step"]["timings"]["onnxruntime"]["median_ms"] > 0
    assert data["forward"]["max_abs_diff"] < 1e-5


def test_streaming_example_runs(tmp_path, monkeypatch, capsys):
    """examples/export_onnx.py (the README's listing) runs and its streamed ONNX run equals rnnstate's."""
    import runpy
    from pathlib import Path
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(Path(__file__).resolve().parent.parent / "examples" / "export_onnx.py"), run_name="__main__")
    assert (tmp_path / "lstm.onnx").exists()
    assert "['lstm/initial_h', 'lstm/initial_c']" in capsys.readouterr().out
