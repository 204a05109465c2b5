"""Streaming: chunk-by-chunk runs with explicit states equal the full run (1e-6); StateStore."""
import os
import threading

import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import GRUState, LSTMState, layers as L
from rnnstate.states import StateStore, Streamer
from rnnstate._symbolic import flatten

from .conftest import B, F, T, U

ATOL = 1e-6


def _np(t):
    return t.detach().cpu().numpy()


def _model(kind, head="dense", batch_size=None):
    """Input -> <kind> (return_sequences, return_state) -> head; outputs [y, *final states]."""
    inp = rnnstate.Input(shape=(None, F), batch_size=batch_size)
    res = getattr(L, kind)(U, return_sequences=True, return_state=True, name="rnn")(inp)
    y = L.TimeDistributed(L.Dense(2))(res.output) if head == "td" else L.Dense(2)(res.output)
    return rnnstate.Model(inp, [y] + list(res[1:]))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("chunk", [1, 2, T])
def test_stream_equals_full_run(kind, chunk, rng):
    m = _model(kind, head="td" if chunk == 2 else "dense")
    x = rng.standard_normal((B, T, F)).astype("float32")
    y, *final = m(x)
    ys, states = m.stream().run(x, chunk=chunk)
    np.testing.assert_allclose(_np(ys[0]), _np(y), atol=ATOL)
    st = states["rnn"]
    assert isinstance(st, {"LSTM": LSTMState}.get(kind, GRUState if kind == "GRU" else tuple))
    for got, want in zip(st, final):
        np.testing.assert_allclose(_np(got), _np(want), atol=ATOL)


def test_stacked_layers_and_last_only_output(rng):
    """Stacked LSTM -> GRU(return_sequences=False) -> Dense: after each step the stream gives the
    model's prediction for the prefix so far; the last one equals the full run."""
    inp = rnnstate.Input(shape=(T, F))
    h = L.LSTM(U, return_sequences=True)(inp)
    h = L.SimpleRNN(U, return_sequences=True)(h)
    out = L.Dense(1)(L.GRU(U)(h))
    m = rnnstate.Model(inp, out)
    x = rng.standard_normal((B, T, F)).astype("float32")
    stream = m.stream()
    states = None
    for t in range(T):
        y_t, states = stream.step(x[:, t], states)                     # (B, F): one step
        np.testing.assert_allclose(_np(y_t), _np(m(x[:, :t + 1])), atol=ATOL)
    assert list(states) == [l.name for l in m.layers if isinstance(l, L.RNN)]
    np.testing.assert_allclose(_np(y_t), _np(m(x)), atol=ATOL)


def test_any_batch_size_without_rebuilding(rng):
    """A stateful model declared for batch 4 streams one sequence at batch 1; its own state is untouched."""
    m = rnnstate.Sequential([rnnstate.Input(batch_shape=(4, T, F)), L.LSTM(U, stateful=True, return_sequences=True),
                             L.Dense(3)])
    x4 = rng.standard_normal((4, T, F)).astype("float32")
    full = _np(m(x4))
    carried = m.get_states()
    m.reset_states()
    m(x4)
    kept = m.get_states(as_list=True)
    for i in range(4):                                                  # each sequence alone, one step at a time
        states, outs = None, []
        for t in range(T):
            y, states = m.stream().step(x4[i:i + 1, t], states)
            outs.append(_np(y))
        np.testing.assert_allclose(np.stack(outs, 1)[0], full[i], atol=ATOL)
        np.testing.assert_allclose(_np(states[m.layers[0].name].c[0]), _np(carried[m.layers[0].name].c[i]), atol=ATOL)
    for a, b in zip(kept, m.get_states(as_list=True)):
        assert torch.equal(a, b)


def test_graph_initial_state_applies_at_t0_only(rng):
    """A Dense output as the initial c (a reader's question) then streaming: equal to the full run."""
    seq = rnnstate.Input(shape=(T, F))
    ctx = rnnstate.Input(shape=(2,))
    c0 = L.Dense(U)(ctx)
    h0 = L.Dense(U, activation="tanh")(ctx)
    out = L.LSTM(U, return_sequences=True)(seq, initial_state=[h0, c0])
    m = rnnstate.Model([seq, ctx], out)
    x, c = rng.standard_normal((B, T, F)).astype("float32"), rng.standard_normal((B, 2)).astype("float32")
    ys, _ = m.stream().run([x, c], chunk=2)
    np.testing.assert_allclose(_np(ys), _np(m([x, c])), atol=ATOL)


def test_single_layer_stream_uses_its_named_state(rng):
    layer = L.GRU(U, return_sequences=True)
    x = rng.standard_normal((B, T, F)).astype("float32")
    full = layer(x)
    stream = Streamer(layer)
    state = stream.initial_states(B)
    assert isinstance(state, GRUState)
    y1, state = stream.step(x[:, :3], state)
    y2, state = stream.step(x[:, 3:], state)
    np.testing.assert_allclose(_np(torch.cat([y1, y2], 1)), _np(full), atol=ATOL)
    with pytest.raises(ValueError, match=r"state `h` must have shape \(2, 6\)"):
        stream.step(x[:2], state)


def test_stream_with_grad_backpropagates_through_states(rng):
    layer = L.LSTM(U, return_sequences=True)
    x = torch.as_tensor(rng.standard_normal((B, T, F)), dtype=torch.float32)
    layer(x)
    stream = Streamer(layer, grad=True)
    y1, s = stream.step(x[:, :2])
    y2, s = stream.step(x[:, 2:], s)
    assert s.h.grad_fn is not None
    (y2.sum()).backward()
    g = layer.cell.weight_ih.grad.clone()
    layer.zero_grad()
    layer(x)[:, 2:].sum().backward()
    np.testing.assert_allclose(g.numpy(), layer.cell.weight_ih.grad.numpy(), atol=1e-5)


def test_unstreamable_models_are_refused():
    inp = rnnstate.Input(shape=(T, F))
    for layer, msg in [(L.Bidirectional(L.LSTM(U)), "backward direction"), (L.GRU(U, go_backwards=True),
                                                                              "go_backwards")]:
        m = rnnstate.Model(inp, layer(inp))
        with pytest.raises(ValueError, match=f"can't be streamed: .*{msg}"):
            m.stream().step(np.zeros((1, T, F), "float32"))
    enc = L.LSTM(U)(inp)
    m = rnnstate.Model(inp, L.LSTM(U, return_sequences=True)(L.RepeatVector(3)(enc)))
    with pytest.raises(ValueError, match="RepeatVector .*can't be streamed: it repeats one vector"):
        m.stream().step(np.zeros((1, T, F), "float32"))
    dense_only = rnnstate.Model(inp, L.Dense(2)(inp))
    with pytest.raises(ValueError, match="no recurrent layer"):
        dense_only.stream().step(np.zeros((1, T, F), "float32"))


def test_unbuilt_sequential_streams(rng):
    m = rnnstate.Sequential([L.GRU(U, return_sequences=True), L.Dense(1)])
    x = rng.standard_normal((B, T, F)).astype("float32")
    ys, _ = m.stream().run(x, chunk=1)
    np.testing.assert_allclose(_np(ys), _np(m(x)), atol=ATOL)


# ---- StateStore ----------------------------------------------------------------------------------------------
def _store_model():
    inp = rnnstate.Input(shape=(None, F))
    h = L.LSTM(U, return_sequences=True)(inp)
    return rnnstate.Model(inp, L.Dense(2)(L.GRU(U, return_sequences=True)(h)))


def _per_stream_truth(m, seqs):
    return {k: _np(m(v[None]))[0] for k, v in seqs.items()}


def test_store_interleaves_streams_like_separate_runs(rng):
    m = _store_model()
    seqs = {k: rng.standard_normal((T, F)).astype("float32") for k in ["a", "b", 7, ("user", 3)]}
    truth = _per_stream_truth(m, seqs)
    store = StateStore(m)
    pos = {k: 0 for k in seqs}
    schedule = [["a", "b"], [7], ["b", ("user", 3), "a"], ["a", 7, "b", ("user", 3)]] + [list(seqs)] * T
    for keys in schedule:
        keys = [k for k in keys if pos[k] < T]
        if not keys:
            continue
        y = store.step(keys, np.stack([seqs[k][pos[k]] for k in keys]))
        for row, k in enumerate(keys):
            np.testing.assert_allclose(_np(y[row]), truth[k][pos[k]], atol=ATOL)
            pos[k] += 1
    assert len(store) == 4 and "a" in store
    store.drop("a")                                                     # a new "a" starts from zeros
    y = store.step(["a"], seqs["a"][:1])
    np.testing.assert_allclose(_np(y[0]), truth["a"][0], atol=ATOL)
    with pytest.raises(ValueError, match="keys repeat within one step"):
        store.step(["b", "b"], np.zeros((2, F), "float32"))
    with pytest.raises(ValueError, match="`keys` has 1 entries but `x` has 2 rows"):
        store.step(["b"], np.zeros((2, F), "float32"))
    with pytest.raises(ValueError, match="stream keys must be str, int or tuples"):
        store.step([1.5], np.zeros((1, F), "float32"))


def test_store_evicts_least_recently_used(rng):
    m = _store_model()
    evicted = []
    store = StateStore(m, max_streams=3, on_evict=lambda k, s: evicted.append((k, s)))
    x = rng.standard_normal((1, F)).astype("float32")
    for k in ["a", "b", "c"]:
        store.step([k], x)
    store.step(["a"], x)                                                # b is now the least recently used
    store.step(["d"], x)
    assert [k for k, _ in evicted] == ["b"] and store.keys() == ["c", "a", "d"]
    assert set(evicted[0][1]) == {l.name for l in m.layers if isinstance(l, L.RNN)}
    store.step(["e", "c"], np.concatenate([x, x]))                     # c is in the step: a goes, not c
    assert [k for k, _ in evicted] == ["b", "a"] and store.keys() == ["d", "e", "c"]
    with pytest.raises(ValueError, match="exceeds max_streams=3"):
        store.step(list("wxyz"), np.zeros((4, F), "float32"))


def test_store_save_load_roundtrip_atomic(rng, tmp_path):
    m = _store_model()
    seqs = {k: rng.standard_normal((T, F)).astype("float32") for k in ["s1", "s2", 3]}
    truth = _per_stream_truth(m, seqs)
    store = StateStore(m)
    for t in range(2):
        store.step(list(seqs), np.stack([v[t] for v in seqs.values()]))
    path = tmp_path / "states.safetensors"
    path.write_bytes(b"old")                                            # replaced whole, never half-written
    assert store.save(path) == os.fspath(path)
    assert sorted(os.listdir(tmp_path)) == ["states.safetensors"]       # no temp file left behind
    again = StateStore(m).load(path)
    assert again.keys() == store.keys()
    for k, v in again.get("s2").items():
        for a, b in zip(v, store.get("s2")[k]):
            assert torch.equal(a, b)
    y = again.step(list(seqs), np.stack([v[2] for v in seqs.values()]))   # continues where the saved one was
    for row, k in enumerate(seqs):
        np.testing.assert_allclose(_np(y[row]), truth[k][2], atol=ATOL)
    small = StateStore(m, max_streams=2).load(path)                     # most recent two kept
    assert small.keys() == store.keys()[-2:]
    inp = rnnstate.Input(shape=(None, F))
    other = rnnstate.Model(inp, L.GRU(U, return_sequences=True)(inp))
    with pytest.raises(ValueError, match="holds states for layers"):
        StateStore(other).load(path)


def test_store_threads_never_mix_streams(rng):
    """Threads step their own streams concurrently (new keys arriving, the pool growing); every output
    equals that stream's own full run."""
    m = _store_model()
    n_threads, per_thread, steps = 4, 4, 8
    seqs = {(t, i): rng.standard_normal((steps, F)).astype("float32") for t in range(n_threads)
            for i in range(per_thread)}
    truth = _per_stream_truth(m, seqs)
    store = StateStore(m, max_streams=64)
    got, errors = {}, []
    barrier = threading.Barrier(n_threads)

    def worker(t):
        try:
            pos = {(t, i): 0 for i in range(per_thread)}
            barrier.wait()
            for s in range(steps + per_thread):
                keys = [k for k in pos if k[1] <= s and pos[k] < steps]     # key i joins at step i
                if not keys:
                    continue
                y = store.step(keys, np.stack([seqs[k][pos[k]] for k in keys]))
                for row, k in enumerate(keys):
                    got[(k, pos[k])] = _np(y[row])
                    pos[k] += 1
        except Exception as e:              # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(got) == n_threads * per_thread * steps
    for (k, s), y in got.items():
        np.testing.assert_allclose(y, truth[k][s], atol=ATOL)


# ---- the one-step fast path (a single LSTM layer, compiled step kernel) ------------------------------------
FAST = "compiled-LSTM step (streaming fast path)"
needs_ext = pytest.mark.skipif(rnnstate._ext.unavailable_reason() is not None, reason="compiled kernel unavailable")


@needs_ext
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("return_state,return_sequences,use_bias",
                         [(True, True, True), (False, True, True), (True, False, True), (False, False, False)])
def test_fast_step_equals_full_run_and_general_path(batch, return_state, return_sequences, use_bias, rng):
    layer = L.LSTM(U, return_state=return_state, return_sequences=return_sequences, use_bias=use_bias)
    x = torch.as_tensor(rng.standard_normal((batch, T, F)), dtype=torch.float32)
    full = layer(x)
    fast, slow = Streamer(layer), Streamer(layer)
    slow._fast = False                                   # the general path (the model machinery)
    sf = ss = None
    outs = []
    for t in range(T):
        yf, sf = fast.step(x[:, t], sf)
        ys, ss = slow.step(x[:, t], ss)
        assert fast.last_path == FAST and slow.last_path != FAST
        assert type(yf) is type(ys) and type(sf) is type(ss) is LSTMState
        for a, b in zip(flatten_(yf), flatten_(ys)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
        outs.append(yf[0] if return_state else yf)
    want = full[0] if return_state else full
    got = torch.stack(outs, 1) if return_sequences else outs[-1]
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    h_full = full.h if return_state else None
    if h_full is not None:
        torch.testing.assert_close(sf.h, h_full, atol=1e-6, rtol=1e-6)


def flatten_(v):
    return list(v) if isinstance(v, tuple) else [v]


@needs_ext
def test_fast_step_sees_new_weights_and_dtype(rng):
    layer = L.LSTM(U)
    x = torch.as_tensor(rng.standard_normal((2, 1, F)), dtype=torch.float32)
    layer(x)
    stream = Streamer(layer)
    stream.step(x[:, 0])
    layer.set_weights([w * 0.5 for w in layer.get_weights()])
    y, _ = stream.step(x[:, 0])
    assert stream.last_path == FAST
    torch.testing.assert_close(y, layer(x), atol=1e-6, rtol=1e-6)
    layer.to(torch.float64)
    x64 = x.double()
    y, _ = stream.step(x64[:, 0])
    assert stream.last_path == FAST and y.dtype == torch.float64
    torch.testing.assert_close(y, layer(x64), atol=1e-12, rtol=1e-12)


@needs_ext
def test_fast_step_falls_back_where_it_cannot_run(rng):
    layer = L.LSTM(U, return_sequences=True)
    x = rng.standard_normal((2, T, F)).astype("float32")
    layer(x)
    stream = Streamer(layer)
    stream.step(x[:, 0])                                   # float32 numpy in: the fast path takes it as is
    assert stream.last_path == FAST
    y32, _ = stream.step(x[:, 0])
    y64, _ = stream.step(x[:, 0].astype("float64"))        # another dtype: converted as the layer converts it
    assert stream.last_path == FAST
    torch.testing.assert_close(torch.as_tensor(y64), torch.as_tensor(y32))
    y, s = stream.step(torch.as_tensor(x[:, 0]), [torch.zeros(2, U), torch.zeros(2, U)])   # a list state
    assert stream.last_path != FAST and isinstance(s, LSTMState)
    stream.step(torch.as_tensor(x[:, :2]))                 # a chunk of 2 steps
    assert stream.last_path != FAST
    with pytest.raises(ValueError, match=r"state `h` must have shape \(2, 6\)"):
        stream.step(torch.as_tensor(x[:, 0]), (torch.zeros(3, U), torch.zeros(3, U)))
    g = Streamer(layer, grad=True)
    g.step(torch.as_tensor(x[:, 0]))
    assert g.last_path != FAST


def test_token_model_with_fixed_length_streams_one_id_at_a_time():
    """A model built on Input(shape=(T,), dtype=int) streams ids one step at a time (the time axis of a
    token input is its last axis; only the feature axis is fixed). Oracle: the full-sequence predict."""
    import rnnstate as rs
    inp = rs.Input(shape=(6,), batch_size=2, dtype="int32")
    h = rs.layers.LSTM(8, return_sequences=True, stateful=True)(rs.layers.Embedding(10, 4)(inp))
    model = rs.Model(inp, rs.layers.Dense(3)(h))
    ids = np.random.default_rng(0).integers(0, 10, (2, 6))
    full = model.predict(ids, peek=True, verbose=0)
    stream, states, outs = model.stream(), None, []
    for t in range(6):
        y, states = stream.step(ids[:, t], states)
        outs.append(np.asarray(y))
    np.testing.assert_allclose(np.stack(outs, 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="expects shape"):
        model.predict(ids[:, :3], verbose=0)              # outside streaming the declared length still holds


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_streamer_fast_path_takes_keras_shaped_steps(return_sequences, return_state):
    """x_t as (B, 1, F) (what a Keras user passes) and as numpy run the compiled one-step kernel and
    return what the general path returns for that chunk (oracle: the general path, fast path off)."""
    layer = L.LSTM(U, return_sequences=return_sequences, return_state=return_state)
    x = np.random.default_rng(3).standard_normal((B, 4, F)).astype("float32")
    layer(x)
    fast, slow = Streamer(layer), Streamer(layer)
    slow._fast = False
    sf = ss = None
    for t in range(4):
        for x_t in (x[:, t:t + 1], torch.from_numpy(x[:, t:t + 1])):
            yf, sf_new = fast.step(x_t, sf)
            assert fast.last_path.startswith("compiled-LSTM step"), fast.last_path
            ys, ss_new = slow.step(x_t, ss)
            for a, b in zip(flatten(yf), flatten(ys)):
                assert a.shape == b.shape
                torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        sf, ss = sf_new, ss_new
    torch.testing.assert_close(sf.c, ss.c, atol=1e-6, rtol=0)
