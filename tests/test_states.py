"""Stateful layers and models: batch sizes, detach (truncated BPTT), reset (all / some samples),
get/set states as named structures and Keras-ordered lists, peek. Keras 3 is the oracle for carrying."""
import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import LSTMState, layers as L

from .conftest import B, F, T, U, random_like_weights

FAST = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}   # no QR compile: weights are replaced


def _keras_pair(kind, rng, **kw):
    """A Keras stateful model (batch B) and the same rnnstate model, with the same weights."""
    kin = keras.Input(batch_shape=(B, T, F))
    km = keras.Model(kin, getattr(keras.layers, kind)(U, stateful=True, **FAST, **kw)(kin))
    w = random_like_weights(km.get_weights(), rng)
    km.set_weights(w)
    rin = rnnstate.Input(shape=(T, F), batch_size=B)
    rm = rnnstate.Model(rin, getattr(L, kind)(U, stateful=True, **kw)(rin))
    rm.set_weights(w)
    return km, rm


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_stateful_calls_carry_state_like_keras(kind, rng):
    km, rm = _keras_pair(kind, rng)
    xs = [rng.standard_normal((B, T, F)).astype("float32") for _ in range(2)]
    for x in xs:                                   # each call starts where the last ended
        np.testing.assert_allclose(rm(x).detach().numpy(), np.asarray(km(x)), atol=1e-5)
    km.layers[1].reset_state()
    rm.reset_states()
    np.testing.assert_allclose(rm(xs[0]).detach().numpy(), np.asarray(km(xs[0])), atol=1e-5)


def test_stateful_bidirectional_carries_like_keras(rng):
    kin = keras.Input(batch_shape=(B, T, F))
    km = keras.Model(kin, keras.layers.Bidirectional(keras.layers.LSTM(U, stateful=True, **FAST))(kin))
    w = random_like_weights(km.get_weights(), rng)
    km.set_weights(w)
    rin = rnnstate.Input(batch_shape=(B, T, F))
    rm = rnnstate.Model(rin, L.Bidirectional(L.LSTM(U, stateful=True))(rin))
    rm.set_weights(w)
    for _ in range(2):
        x = rng.standard_normal((B, T, F)).astype("float32")
        np.testing.assert_allclose(rm(x).detach().numpy(), np.asarray(km(x)), atol=1e-5)
    s = rm.get_states()
    assert list(s) == [rm.layers[1].name] and set(s[rm.layers[1].name]) == {"forward", "backward"}
    assert isinstance(s[rm.layers[1].name]["forward"], LSTMState)


def test_batch_size_from_input_batch_input_shape_or_first_call(rng):
    x3 = np.zeros((3, T, F), "float32")
    x2 = np.zeros((2, T, F), "float32")
    inp = rnnstate.Input(shape=(T, F), batch_size=2)                    # declared by Input(batch_size=...)
    m = rnnstate.Model(inp, L.LSTM(U, stateful=True)(inp))
    with pytest.raises(ValueError, match=r"Expected batch size: 2\n- Received batch size: 3"):
        m(x3)                                                            # even before any state exists
    seq = rnnstate.Sequential([L.GRU(U, stateful=True, batch_input_shape=(2, T, F))])     # Keras 2 spelling
    seq(x2)
    with pytest.raises(ValueError, match=r"(?s)Expected batch size: 2\n- Received batch size: 3.*Input\(batch_size"):
        seq(x3)
    seq.reset_states()
    with pytest.raises(ValueError, match="Received batch size: 3"):   # declared: a reset doesn't change it
        seq(x3)
    free = rnnstate.Sequential([L.SimpleRNN(U, stateful=True)])       # taken from the first call
    free(x2)
    with pytest.raises(ValueError, match=r"(?s)Expected batch size: 2\n- Received batch size: 3.*reset_states"):
        free(x3)
    free.reset_states()
    free(x3)                                                             # a reset forgets a first-call size
    with pytest.raises(ValueError, match="Received batch size: 2"):
        free.set_states({free.layers[0].name: [np.zeros((2, U))]})


def test_state_is_detached_between_calls_truncated_bptt(rng):
    inp = rnnstate.Input(shape=(T, F), batch_size=B)
    lstm = L.LSTM(U, stateful=True, return_sequences=True)
    m = rnnstate.Model(inp, L.TimeDistributed(L.Dense(1))(lstm(inp)))
    xs = torch.as_tensor(rng.standard_normal((3, B, T, F)), dtype=torch.float32)
    for x in xs:                                 # backward every batch: no "backward through the graph a second time"
        before = lstm.get_states()
        assert not any(s.requires_grad for s in lstm.states or ())
        loss = m(x, training=True).pow(2).mean()
        for p in m.parameters():
            p.grad = None
        loss.backward()
        grads = [p.grad.clone() for p in m.parameters()]
        # the same gradient as a stateless run started from the carried state, detached
        ref = L.LSTM(U, return_sequences=True)
        ref(x)
        ref.set_weights(lstm.get_weights())
        y = m.layers[-1](ref(x, initial_state=list(before)))
        y.pow(2).mean().backward()
        np.testing.assert_allclose(ref.cell.weight_hh.grad.detach().numpy(), lstm.cell.weight_hh.grad.detach().numpy(), atol=1e-6)
        with torch.no_grad():                   # an SGD step
            for p, g in zip(m.parameters(), grads):
                p -= 0.1 * g


def test_reset_some_samples_only(rng):
    inp = rnnstate.Input(shape=(T, F), batch_size=3)
    layer = L.LSTM(U, stateful=True)
    m = rnnstate.Model(inp, layer(inp))
    x = rng.standard_normal((3, T, F)).astype("float32")
    m(x)
    h_before = layer.get_states().h
    m.reset_states(samples=np.array([True, False, True]))              # episodes 0 and 2 ended
    s = layer.get_states()
    assert torch.all(s.h[[0, 2]] == 0) and torch.all(s.c[[0, 2]] == 0)
    assert torch.equal(s.h[1], h_before[1])
    out = m(x)
    fresh = L.LSTM(U)
    fresh(x)
    fresh.set_weights(layer.get_weights())
    np.testing.assert_allclose(out[[0, 2]].detach().numpy(), fresh(x[[0, 2]]).detach().numpy(), atol=1e-6)
    layer.reset_states(samples=[1])                                     # indices work too
    assert torch.all(layer.get_states().h[1] == 0)
    with pytest.raises(ValueError, match="argument `samples` of `reset_states` must be a bool mask of length 3"):
        m.reset_states(samples=np.array([True, False]))
    with pytest.raises(ValueError, match="either `states`"):
        layer.reset_states(states=[np.zeros((3, U))] * 2, samples=[0])


def test_get_set_states_named_and_keras_ordered(rng):
    inp = rnnstate.Input(shape=(T, F), batch_size=B)
    a = L.LSTM(U, stateful=True, return_sequences=True, name="enc")
    b = L.Bidirectional(L.GRU(U, stateful=True, return_sequences=True), name="bi")
    plain = L.LSTM(U, name="plain")                                     # not stateful: not listed
    m = rnnstate.Model(inp, plain(b(a(inp))))
    x = rng.standard_normal((B, T, F)).astype("float32")
    m(x)
    s = m.get_states()
    assert list(s) == ["enc", "bi"]
    assert isinstance(s["enc"], LSTMState) and s["enc"].h.shape == (B, U)
    assert list(s["bi"]) == ["forward", "backward"]
    flat = m.get_states(as_list=True)                                   # Keras order: h, c, fw h, bw h
    assert len(flat) == 4 and torch.equal(flat[1], s["enc"].c) and torch.equal(flat[3], s["bi"]["backward"].h)
    y1 = m(x)
    m.set_states(s)                                                     # back to after the first call
    np.testing.assert_allclose(m(x).detach().numpy(), y1.detach().numpy(), atol=0)
    m.set_states([f.numpy() for f in flat])                             # the Keras-ordered list, numpy
    np.testing.assert_allclose(m(x).detach().numpy(), y1.detach().numpy(), atol=0)
    m.set_states({"enc": {"h": np.ones((B, U)), "c": np.zeros((B, U))}})   # some layers, by name
    assert torch.all(a.get_states().h == 1)
    with pytest.raises(ValueError, match=r"no recurrent layer\(s\) named \['dec'\].*known: \['enc', 'bi'\]"):
        m.set_states({"dec": s["enc"]})
    with pytest.raises(ValueError, match=r"expects 4 state tensors \(enc.h, enc.c, bi.forward_h, bi.backward_h\)"):
        m.set_states(flat[:3])
    with pytest.raises(ValueError, match=r"state `c` must have shape \(3, 6\)"):
        a.set_states([np.zeros((B, U)), np.zeros((B, U + 1))])


def test_set_state_equals_initial_state(rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    h0, c0 = (rng.standard_normal((B, U)).astype("float32") for _ in range(2))
    stateful = L.LSTM(U, stateful=True)
    stateful(x)
    stateless = L.LSTM(U)
    stateless(x)
    stateless.set_weights(stateful.get_weights())
    stateful.set_states(LSTMState(torch.as_tensor(h0), torch.as_tensor(c0)))
    np.testing.assert_allclose(stateful(x).detach().numpy(), stateless(x, initial_state=[h0, c0]).detach().numpy(), atol=1e-6)


def test_states_need_a_stateful_layer(rng):
    inp = rnnstate.Input(shape=(T, F))
    m = rnnstate.Model(inp, L.LSTM(U)(inp))
    for call in (m.reset_states, m.get_states, lambda: m.set_states({}), lambda: m.predict(np.zeros((1, T, F)),
                                                                                          peek=True)):
        with pytest.raises(ValueError, match="no stateful"):
            call()
    with pytest.raises(ValueError, match="`get_states` needs `stateful=True`"):
        m.layers[1].get_states()
    fresh = L.GRU(U, stateful=True)
    with pytest.raises(ValueError, match="holds no state yet"):
        fresh.get_states()
    declared = rnnstate.Sequential([rnnstate.Input(batch_shape=(2, T, F)), L.GRU(U, stateful=True)])
    assert torch.equal(declared.get_states()[declared.layers[0].name].h, torch.zeros(2, U))


def test_predict_advances_state_unless_peek(rng):
    inp = rnnstate.Input(shape=(T, F), batch_size=B)
    layer = L.GRU(U, stateful=True)
    m = rnnstate.Model(inp, layer(inp))
    x = rng.standard_normal((B, T, F)).astype("float32")
    first = m.predict(x, verbose=0)
    after_first = layer.get_states().h.clone()
    peeked = m.predict(x, verbose=0, peek=True)                        # a look ahead: state unchanged
    assert torch.equal(layer.get_states().h, after_first)
    second = m.predict(x, verbose=0)                                    # default: advances (Keras 2 / tf.keras)
    np.testing.assert_allclose(peeked, second, atol=0)
    assert not np.allclose(first, second)
    with m.peek_states():
        m(x)
    assert not torch.equal(layer.get_states().h, after_first)          # the second predict advanced it
    loss = m(x, training=True).sum()                                    # state kept by predict, then autograd
    loss.backward()


def test_bidirectional_states_in_sequential(rng):
    bi = L.Bidirectional(L.LSTM(U, stateful=True), batch_input_shape=(2, T, F))     # Keras 2 spelling
    m = rnnstate.Sequential([bi, L.Dense(1)])
    x = rng.standard_normal((2, T, F)).astype("float32")
    y1 = m.predict(x, verbose=0)
    s = bi.get_states()
    assert set(s) == {"forward", "backward"} and s["backward"].c.shape == (2, U)
    y2 = m.predict(x, verbose=0)
    assert not np.allclose(y1, y2)                                       # both directions carried
    bi.set_states([np.zeros((2, U))] * 4)                               # forward h, c then backward h, c
    np.testing.assert_allclose(m.predict(x, verbose=0), y1, atol=1e-6)
    bi.reset_states(samples=[0])
    assert torch.all(bi.get_states()["backward"].h[0] == 0) and not torch.all(bi.get_states()["backward"].h[1] == 0)
    with pytest.raises(ValueError, match=r"Expected batch size: 2\n- Received batch size: 3"):
        m.predict(np.zeros((3, T, F), "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"expects 4 state tensors \(forward_h, forward_c, backward_h, backward_c\)"):
        bi.set_states([np.zeros((2, U))] * 3)
