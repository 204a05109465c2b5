"""Streaming whole models one step at a time on the step plan (rnnstate/states/_plan.py): outputs and states
equal the full-sequence run (``model.predict``) and torch's own modules with converted weights (1e-5);
StateStore on the plan; the fallback to the model graph says why."""
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import GRUState, LSTMState, SimpleRNNState, layers as L
from rnnstate.states import StateStore, Streamer

ATOL = 1e-5
F, T = 4, 6
needs_ext = pytest.mark.skipif(rnnstate._ext.unavailable_reason() is not None, reason="compiled kernel unavailable")
pytestmark = needs_ext


# ---- oracle: torch modules with the model's weights, run over the whole sequence ----------------------------
def _torch_twin(layer):
    """The torch module equal to `layer` (rnnstate keeps torch's layout: the weights copy as they are)."""
    with torch.no_grad():
        if isinstance(layer, L.Dense):
            m = torch.nn.Linear(layer.input_dim, layer.units, bias=layer.use_bias)
            m.weight.copy_(layer.kernel.t())
            if layer.use_bias:
                m.bias.copy_(layer.bias)
            return m
        cell = layer.cell
        cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}.get(cell.kernel_label)
        kw = {} if cls else {"nonlinearity": cell.activation_name}
        m = (cls or torch.nn.RNN)(cell.input_dim, cell.units, batch_first=True, bias=cell.use_bias, **kw)
        m.weight_ih_l0.copy_(cell.weight_ih)
        m.weight_hh_l0.copy_(cell.weight_hh)
        if cell.use_bias:
            m.bias_ih_l0.copy_(cell.bias_ih)
            m.bias_hh_l0.copy_(cell.bias_hh)
        return m


def _torch_run(layers, x):
    """A stack of recurrent/Dense layers as torch modules over x (B, T, F): (per-step outputs (B, T, n) of
    the last layer, {layer name: final states as a tuple})."""
    h = torch.as_tensor(x)
    finals = {}
    with torch.no_grad():
        for layer in layers:
            m = _torch_twin(layer)
            if isinstance(m, torch.nn.Linear):
                h = m(h)
                if layer.activation is not None and layer.get_config().get("activation") != "linear":
                    h = layer.activation(h)
                continue
            h, st = m(h)
            finals[layer.name] = tuple(s[0] for s in st) if isinstance(st, tuple) else (st[0],)
    return h, finals


def _stack(kinds):
    """Sequential: Input -> recurrent layers (all return_sequences) -> Dense(3)."""
    made = {"lstm": lambda: L.LSTM(5, return_sequences=True), "gru": lambda: L.GRU(4, return_sequences=True),
            "rnn": lambda: L.SimpleRNN(3, return_sequences=True),
            "relu": lambda: L.SimpleRNN(3, activation="relu", return_sequences=True),
            "nobias": lambda: L.LSTM(4, use_bias=False, return_sequences=True)}
    return rnnstate.Sequential([rnnstate.Input((None, F))] + [made[k]() for k in kinds] + [L.Dense(3)])


def _step_all(stream, x, timed=False, states=None):
    outs = []
    for t in range(x.shape[1]):
        y, states = stream.step(x[:, t:t + 1] if timed else x[:, t], states)
        outs.append(np.asarray(y))
    return outs, states


@pytest.mark.parametrize("kinds", [["lstm"], ["gru", "lstm"], ["lstm", "gru", "rnn"], ["relu", "nobias"]])
@pytest.mark.parametrize("batch", [1, 3])
def test_sequential_stack_steps_equal_full_run_and_torch(kinds, batch, rng):
    model = _stack(kinds)
    x = rng.standard_normal((batch, T, F)).astype("float32")
    full = model.predict(x, verbose=0)
    want, finals = _torch_run(model.layers, x)
    np.testing.assert_allclose(full, want.numpy(), atol=ATOL)            # the oracles agree
    stream = model.stream()
    assert stream.reason is None and stream.path.startswith("step plan (")
    outs, states = _step_all(stream, x)
    assert stream.last_path == stream.path
    np.testing.assert_allclose(np.stack(outs, 1), full, atol=ATOL)
    assert list(states) == [l.name for l in model.layers[:-1]]
    for name, st in states.items():
        assert type(st) in (LSTMState, GRUState, SimpleRNNState)
        for got, ref in zip(st, finals[name]):
            np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=ATOL)
    outs3, _ = _step_all(stream, x, timed=True)                           # Keras' (B, 1, F) steps
    assert outs3[0].shape == (batch, 1, 3)
    np.testing.assert_allclose(np.concatenate(outs3, 1), full, atol=ATOL)


def test_last_step_output_and_return_state_outputs(rng):
    """return_sequences=False: each step gives the prediction after that step (the last one equals the full
    run's); return_state=True outputs carry the layer's states."""
    inp = rnnstate.Input((None, F))
    y1 = L.GRU(4, return_sequences=True)(inp)
    out, h, c = L.LSTM(5, return_state=True)(y1)
    model = rnnstate.Model(inp, [L.Dense(2, activation="tanh")(out), h, c])
    x = rng.standard_normal((2, T, F)).astype("float32")
    stream = model.stream()
    assert stream.reason is None
    states, ys = None, []
    for t in range(T):
        ys, states = stream.step(x[:, t:t + 1], states)
        assert [tuple(v.shape) for v in ys] == [(2, 2), (2, 5), (2, 5)]
    full = model.predict(x, verbose=0)
    for got, ref in zip(ys, full):
        np.testing.assert_allclose(got.numpy(), ref, atol=ATOL)
    lstm = model.layers[2]
    np.testing.assert_allclose(states[lstm.name].c.numpy(), full[2], atol=ATOL)
    np.testing.assert_allclose(ys[0].numpy(), model.predict(x[:, :T], verbose=0)[0], atol=ATOL)


def test_functional_dag_with_branches_and_merges(rng):
    inp = rnnstate.Input((None, F))
    a = L.LSTM(5, return_sequences=True)(inp)
    b = L.TimeDistributed(L.Dense(5, activation="relu"))(L.SimpleRNN(5, return_sequences=True)(L.Dropout(0.5)(inp)))
    m = L.Concatenate()([a, L.Add()([a, b])])
    g = L.GRU(3, return_sequences=True)(m)
    model = rnnstate.Model(inp, [L.Dense(2, activation="sigmoid")(g), L.Activation("relu")(L.Multiply()([a, b]))])
    x = rng.standard_normal((3, T, F)).astype("float32")
    full = model.predict(x, verbose=0)
    stream = model.stream()
    assert stream.reason is None, stream.reason
    states, outs = None, []
    for t in range(T):
        ys, states = stream.step(torch.from_numpy(x[:, t]), states)
        outs.append([y.numpy() for y in ys])
    assert stream.last_path.startswith("step plan")
    for k in range(2):
        np.testing.assert_allclose(np.stack([o[k] for o in outs], 1), full[k], atol=ATOL)


def test_embedding_input_streams_one_id_at_a_time(rng):
    inp = rnnstate.Input((None,), dtype="int64")
    h = L.LSTM(6, return_sequences=True)(L.Embedding(11, 4)(inp))
    model = rnnstate.Model(inp, L.Dense(3)(h))
    ids = rng.integers(0, 11, (2, T))
    full = model.predict(ids, verbose=0)
    stream = model.stream()
    assert stream.reason is None and "Embedding" in stream.path
    outs, _ = _step_all(stream, ids)
    assert stream.last_path == stream.path
    np.testing.assert_allclose(np.stack(outs, 1), full, atol=ATOL)
    outs2, _ = _step_all(stream, ids, timed=True)                          # (B, 1) id steps
    np.testing.assert_allclose(np.concatenate(outs2, 1), full, atol=ATOL)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 11\)"):    # the model graph's clear error
        stream.step(np.array([3, 11]))


def test_state_reset_and_partial_states(rng):
    model = _stack(["lstm", "gru"])
    x = rng.standard_normal((2, T, F)).astype("float32")
    full = model.predict(x, verbose=0)
    stream = model.stream()
    _, states = _step_all(stream, x[:, :3])
    outs, _ = _step_all(stream, x)                                         # states=None: from zeros again
    np.testing.assert_allclose(np.stack(outs, 1), full, atol=ATOL)
    lstm, gru = model.layers[:2]
    # a layer missing from `states` starts from zeros: the GRU restarts, the LSTM goes on
    _, st = _step_all(stream, x[:, :3])
    y, new = stream.step(x[:, 3], {lstm.name: st[lstm.name]})
    assert stream.last_path == stream.path and set(new) == {lstm.name, gru.name}
    with torch.no_grad():
        h_lstm = lstm(torch.from_numpy(x[:, :4]))                          # the LSTM's own full run
        gru_alone = gru(h_lstm[:, 3:4])
    np.testing.assert_allclose(new[lstm.name].h.numpy(), h_lstm[:, -1].numpy(), atol=ATOL)
    np.testing.assert_allclose(new[gru.name].h.numpy(), gru_alone[:, -1].numpy(), atol=ATOL)


def test_plan_sees_new_weights(rng):
    model = _stack(["gru"])
    x = rng.standard_normal((2, T, F)).astype("float32")
    stream = model.stream()
    _step_all(stream, x)
    model.set_weights([w * 0.5 for w in model.get_weights()])
    outs, _ = _step_all(stream, x)
    np.testing.assert_allclose(np.stack(outs, 1), model.predict(x, verbose=0), atol=ATOL)


@pytest.mark.parametrize("kind", ["GRU", "SimpleRNN"])
@pytest.mark.parametrize("timed", [False, True])
def test_single_gru_and_simple_rnn_layers_have_a_compiled_step(kind, timed, rng):
    layer = getattr(L, kind)(5, return_sequences=True, return_state=True)
    x = rng.standard_normal((3, T, F)).astype("float32")
    layer(x)
    twin = _torch_twin(layer)
    with torch.no_grad():
        want, h_last = twin(torch.from_numpy(x))
    stream = Streamer(layer)
    assert stream.reason is None
    state, outs = None, []
    for t in range(T):
        res, state = stream.step(x[:, t:t + 1] if timed else torch.from_numpy(x[:, t]), state)
        assert stream.last_path == f"compiled-{kind} step (streaming fast path)"
        assert res.output.shape == ((3, 1, 5) if timed else (3, 5))
        outs.append(res.output.reshape(3, 5))
    assert type(state) is (GRUState if kind == "GRU" else SimpleRNNState)
    torch.testing.assert_close(torch.stack(outs, 1), want, atol=ATOL, rtol=0)
    torch.testing.assert_close(state.h, h_last[0], atol=ATOL, rtol=0)


def test_fallback_says_why_and_still_equals_full_run(rng):
    inp = rnnstate.Input((None, F))
    h = L.LSTM(4, return_sequences=True, name="lstm")(inp)
    model = rnnstate.Model(inp, L.LayerNormalization(name="norm")(h))
    x = rng.standard_normal((2, T, F)).astype("float32")
    stream = model.stream()
    assert "'norm'" in stream.reason and "no one-step form" in stream.reason
    assert stream.path.startswith("model graph (")
    outs, _ = _step_all(stream, x)
    assert stream.last_path == "model graph"
    np.testing.assert_allclose(np.stack(outs, 1), model.predict(x, verbose=0), atol=ATOL)
    relu = rnnstate.Sequential([rnnstate.Input((None, F)), L.LSTM(3, activation="relu")])
    assert "activation='relu'" in relu.stream().reason
    masked = rnnstate.Sequential([rnnstate.Input((None,), dtype="int64"), L.Embedding(5, 2, mask_zero=True),
                                  L.GRU(3)])
    assert "mask" in masked.stream().reason
    assert "grad=True" in _stack(["lstm"]).stream(grad=True).reason


def test_plan_refusals_run_the_graph_and_its_errors(rng):
    model = _stack(["lstm"])
    x = rng.standard_normal((2, T, F)).astype("float32")
    stream = model.stream()
    stream.step(x[:, :2])                                                  # a chunk of 2 steps: the graph
    assert stream.last_path == "model graph"
    with pytest.raises(ValueError, match="expects shape"):
        stream.step(x[:, 0, :3])                                           # 3 features, not 4
    _, states = stream.step(x[:, 0])
    with pytest.raises(ValueError, match=r"must have shape \(3, 5\)"):
        stream.step(np.concatenate([x[:, 0], x[:1, 0]]), states)           # batch 3, states of batch 2
    with pytest.raises(ValueError):
        stream.step(x[:, 0], {"no_such_layer": states[model.layers[0].name]})


def test_state_store_on_the_plan_equals_each_streams_full_run(rng):
    model = _stack(["lstm", "gru"])
    keys = ["a", "b", "c", 7, ("x", 1)]
    order = [["a", "b", "c"], ["b", 7], ["a", "c", 7, "b"], [("x", 1), "a"], ["b", "c"], ["a", "b", "c", 7]] * 2
    seqs = {k: rng.standard_normal((len(order), F)).astype("float32") for k in keys}
    pos, got, evicted = {k: 0 for k in keys}, {k: [] for k in keys}, []

    def on_evict(key, states):             # an evicted stream starts again from zeros at its next step
        evicted.append(key)
        pos[key], got[key] = 0, []

    store = StateStore(model, max_streams=4, on_evict=on_evict)
    for step_keys in order:
        x = np.stack([seqs[k][pos[k]] for k in step_keys])
        y = store.step(step_keys, x)
        assert store.streamer.last_path.startswith("step plan")
        for k, row in zip(step_keys, np.asarray(y)):
            got[k].append(row)
            pos[k] += 1
    assert evicted                                                         # max_streams=4 of 5: LRU went
    for k in keys:
        if got[k]:
            want = model.predict(seqs[k][None, :pos[k]], verbose=0)[0]
            np.testing.assert_allclose(np.stack(got[k]), want, atol=ATOL)
    store.drop("b")                                                        # reset: "b" restarts from zeros
    y = store.step(["b"], seqs["b"][None, 0])
    np.testing.assert_allclose(np.asarray(y)[0], model.predict(seqs["b"][None, :1], verbose=0)[0, 0], atol=ATOL)


def test_compiled_step_ops_are_registered_torch_ops(rng):
    x, h = torch.randn(2, F), torch.randn(2, 3)
    for op, w, args, ref in ((torch.ops.rnnstate.gru_step.default, 9, (), torch.gru_cell),
                             (torch.ops.rnnstate.rnn_step.default, 3, (True,), torch.rnn_relu_cell)):
        w_ih, w_hh, b_ih, b_hh = torch.randn(w, F), torch.randn(w, 3), torch.randn(w), torch.randn(w)
        torch.library.opcheck(op, (x, h, w_ih, w_hh, b_ih, b_hh, *args), test_utils=("test_schema", "test_faketensor"))
        torch.testing.assert_close(op(x, h, w_ih, w_hh, b_ih, b_hh, *args), ref(x, h, w_ih, w_hh, b_ih, b_hh),
                                   atol=1e-6, rtol=0)


def test_sequential_without_input_gets_its_plan_after_the_first_step(rng):
    model = rnnstate.Sequential([L.GRU(4, return_sequences=True), L.Dense(2)])       # no Input: no graph yet
    x = rng.standard_normal((2, T, F)).astype("float32")
    stream = model.stream()
    states, outs = None, []
    for t in range(T):
        y, states = stream.step(x[:, t], states)
        outs.append(np.asarray(y))
    assert stream.last_path.startswith("step plan") and stream.reason is None
    np.testing.assert_allclose(np.stack(outs, 1), model.predict(x, verbose=0), atol=ATOL)
    y0, s0 = stream.step(x[:, 0], stream.initial_states(2))                          # zero states as given
    assert stream.last_path.startswith("step plan")
    np.testing.assert_allclose(np.asarray(y0), outs[0], atol=ATOL)


def test_float64_steps_run_on_the_plan_converted_like_the_layers():
    """A float64 step (numpy's default) is converted to the weights' dtype as the layers convert inputs,
    and runs on the plan (not through an error and the graph); oracle: predict on the float32 sequence."""
    import rnnstate
    from rnnstate import layers as L
    from rnnstate.states import Streamer
    torch.manual_seed(0)
    m = rnnstate.Sequential([rnnstate.Input((5, 3)), L.LSTM(8, return_sequences=True), L.GRU(4), L.Dense(2)])
    x = np.random.default_rng(0).random((2, 5, 3))
    full = m.predict(x.astype("float32"), verbose=0)
    s, st = m.stream(), None
    for t in range(5):
        y, st = s.step(x[:, t:t + 1], st)
        assert s.last_path.startswith("step plan")
    np.testing.assert_allclose(np.asarray(y), full, atol=1e-5)
    one = Streamer(m.layers[0])
    h, _ = one.step(x[:, 0], None)
    assert one.last_path.startswith("compiled-LSTM step")
    ref = m.layers[0](torch.from_numpy(x[:, :1].astype("float32")))[:, 0]
    torch.testing.assert_close(torch.as_tensor(h), ref, atol=1e-5, rtol=1e-5)
