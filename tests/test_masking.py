"""Masking, against Keras 3 itself (weights transplanted): an ``Embedding(mask_zero=True)`` or ``Masking``
mask reaches the recurrent layers after it through the graph, a masked step keeps the state and repeats
the previous output, the loss averages over the valid steps only; and the eager ``mask=`` argument."""
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L
from rnnstate.models import load_model

keras = pytest.importorskip("keras")

T = 6


@pytest.fixture
def ids():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 10, (5, T))
    x[0, 3:] = 0                    # right-padded
    x[1, 1:] = 0                    # one valid step
    x[2, :2] = 0                    # left-padded
    x[3, 2] = 0                     # a hole
    x[4, :] = 0                     # nothing valid
    return x


def _pair(build):
    km, rm = build(keras, keras.layers), build(rnnstate, L)
    rm.set_weights(km.get_weights())
    return km, rm


def _same(a, b, atol=1e-5):
    a = a if isinstance(a, list) else [a]
    b = b if isinstance(b, list) else [b]
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=atol, rtol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("return_sequences,go_backwards", [(True, False), (False, False), (True, True)])
def test_embedding_mask_reaches_recurrent_layer(kind, return_sequences, go_backwards, ids):
    def build(k, l):
        i = k.Input((T,), dtype="int32")
        e = l.Embedding(10, 3, mask_zero=True)(i)
        r = getattr(l, kind)(4, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)(e)
        y = l.TimeDistributed(l.Dense(2))(r[0]) if return_sequences else l.Dense(2)(r[0])
        return k.Model(i, [y] + list(r[1:]))
    km, rm = _pair(build)
    _same(km.predict(ids, verbose=0), rm.predict(ids, verbose=0))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
def test_bidirectional_and_stacked_layers_take_the_mask(merge_mode, ids):
    def build(k, l):
        i = k.Input((T,), dtype="int32")
        e = l.Embedding(10, 3, mask_zero=True)(i)
        h = l.Bidirectional(l.LSTM(4, return_sequences=True), merge_mode=merge_mode)(e)
        h = l.Concatenate()(h) if merge_mode is None else h
        return k.Model(i, l.GRU(3)(h))
    km, rm = _pair(build)
    _same(km.predict(ids, verbose=0), rm.predict(ids, verbose=0))


def test_masking_layer_and_zero_output_for_mask():
    x = np.random.default_rng(1).standard_normal((3, T, 2)).astype("float32")
    x[0, 4:] = 0.0
    x[1, :2] = -1.0
    x[2, 3] = -1.0

    def build(k, l):
        i = k.Input((T, 2))
        m = l.Masking(mask_value=-1.0)(i)
        a = l.LSTM(3, return_sequences=True, zero_output_for_mask=True)(m)
        b = l.SimpleRNN(3, return_sequences=True)(m)
        return k.Model(i, [m, a, b])
    km, rm = _pair(build)
    _same(km.predict(x, verbose=0), rm.predict(x, verbose=0))


def test_initial_state_call_gets_no_mask_like_keras3(ids):
    """Keras 3 fills in `mask` only when the layer is called on that one tensor: an LSTM also given
    `initial_state` tensors runs unmasked (the mask is still applied with an explicit `mask=`)."""
    def build(k, l):
        i = k.Input((T,), dtype="int32")
        h0, c0 = k.Input((4,)), k.Input((4,))
        e = l.Embedding(10, 3, mask_zero=True)(i)
        return k.Model([i, h0, c0], [l.LSTM(4, return_sequences=True)(e, initial_state=[h0, c0]),
                                     l.LSTM(4, return_sequences=True)(e)])
    km, rm = _pair(build)
    z = np.full((len(ids), 4), 0.1, "float32")
    _same(km.predict([ids, z, z], verbose=0), rm.predict([ids, z, z], verbose=0))


def test_merge_layers_combine_masks_like_keras(ids):
    def build(k, l):
        i = k.Input((T,), dtype="int32")
        f = k.Input((T, 3))
        e = l.Embedding(10, 3, mask_zero=True)(i)
        e2 = l.Embedding(10, 3, mask_zero=True)(i)
        add = l.LSTM(2, return_sequences=True)(l.Add()([e, e2]))         # OR of two masks
        cat = l.LSTM(2, return_sequences=True)(l.Concatenate()([e, f]))   # f unmasked: all valid
        return k.Model([i, f], [add, cat])
    km, rm = _pair(build)
    f = np.random.default_rng(2).standard_normal((len(ids), T, 3)).astype("float32")
    _same(km.predict([ids, f], verbose=0), rm.predict([ids, f], verbose=0))


def test_sequential_with_mask_zero(ids):
    def build(k, l):
        return k.Sequential([k.Input((T,), dtype="int32"), l.Embedding(10, 4, mask_zero=True), l.LSTM(3),
                             l.Dense(1)])
    km, rm = _pair(build)
    _same(km.predict(ids, verbose=0), rm.predict(ids, verbose=0))


def test_training_averages_the_loss_over_valid_steps_like_keras(ids):
    """Loss and updated weights equal Keras' over two epochs of SGD; evaluate() gives Keras' loss and
    masked accuracy. (Keras 3's running metrics inside fit() ignore the mask; rnnstate's use it.)"""
    rng = np.random.default_rng(3)
    x = np.concatenate([ids, ids[::-1]])
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, (len(x), T))]

    def build(k, l):
        i = k.Input((T,), dtype="int32")
        h = l.LSTM(5, return_sequences=True)(l.Embedding(10, 4, mask_zero=True)(i))
        m = k.Model(i, l.TimeDistributed(l.Dense(3, activation="softmax"))(h))
        opt = keras.optimizers.SGD(0.5) if k is keras else rnnstate.optimizers.SGD(0.5)
        m.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"])
        return m
    km, rm = _pair(build)
    hk = km.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    hr = rm.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(hr["loss"], hk["loss"], rtol=1e-5)
    _same(km.get_weights(), rm.get_weights())
    np.testing.assert_allclose(rm.evaluate(x, y, verbose=0), km.evaluate(x, y, verbose=0), rtol=1e-5)
    valid = x != 0
    hits = (rm.predict(x, verbose=0).argmax(-1) == y.argmax(-1))
    np.testing.assert_allclose(rm.evaluate(x, y, verbose=0)[1], hits[valid].mean(), rtol=1e-6)


def test_keras_file_with_mask_zero_loads_and_predicts_the_same(ids, tmp_path):
    km = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(10, 4, mask_zero=True),
                           keras.layers.GRU(3, return_sequences=True), keras.layers.Masking(),
                           keras.layers.LSTM(2)])
    km.save(tmp_path / "m.keras")
    rm = load_model(tmp_path / "m.keras")
    _same(km.predict(ids, verbose=0), rm.predict(ids, verbose=0))
    rm.save(tmp_path / "back.keras")
    _same(km.predict(ids, verbose=0), keras.models.load_model(tmp_path / "back.keras").predict(ids, verbose=0))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_eager_mask_argument_equals_keras_layer(kind):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, T, 2)).astype("float32")
    mask = rng.random((3, T)) > 0.4
    kl = getattr(keras.layers, kind)(4, return_sequences=True, return_state=True)
    want = kl(x, mask=mask)
    rl = getattr(L, kind)(4, return_sequences=True, return_state=True)
    rl(x)
    rl.set_weights(kl.get_weights())
    got = rl(x, mask=mask)
    assert rl.last_path.startswith("reference loop")
    _same([np.asarray(w) for w in want], [g.detach().numpy() for g in got])


def test_all_valid_mask_runs_fused_and_bad_masks_are_refused():
    layer = L.LSTM(3, return_sequences=True)
    x = torch.randn(2, T, 2)
    plain = layer(x)
    masked = layer(x, mask=np.ones((2, T), bool))
    assert layer.last_path.startswith(("fused", "compiled"))
    torch.testing.assert_close(masked, plain)
    with pytest.raises(ValueError, match=r"LSTM.*`mask`.*\(2, 6\).*\(2, 5\)"):
        layer(x, mask=np.ones((2, T - 1), bool))
    with pytest.raises(ValueError, match=r"Masking.*`mask_value` must be a number"):
        L.Masking(mask_value="zero")


# ---- right-padded masks on the fused kernels (oracle: the reference loop, values and gradients) -----------
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("go_backwards,zero_output,return_state,grad",
                         [(False, False, True, True), (False, False, True, False), (True, False, True, True),
                          (True, True, True, False), (False, True, False, True), (False, False, False, False),
                          (True, False, False, True)])
def test_right_padded_masks_run_fused_and_equal_the_loop(kind, go_backwards, zero_output, return_state, grad):
    B, F, U = 6, 3, 4
    lengths = torch.tensor([T, 3, 0, 1, 5, T - 1])
    mask = torch.arange(T)[None, :] < lengths[:, None]
    kw = dict(return_sequences=True, return_state=return_state, go_backwards=go_backwards,
              zero_output_for_mask=zero_output)
    torch.manual_seed(0)
    a, b = getattr(L, kind)(U, **kw), getattr(L, kind)(U, path="loop", **kw)
    x = torch.randn(B, T, F, requires_grad=grad)
    a(x), b(x)
    b.set_weights(a.get_weights())
    init = [torch.randn(B, U, requires_grad=grad) for _ in a.state_size]
    with torch.set_grad_enabled(grad):
        ra, rb = a(x, initial_state=init, mask=mask), b(x, initial_state=init, mask=mask)
    assert "right-padded mask" in a.last_path and b.last_path.startswith("reference loop")
    ra, rb = (list(ra), list(rb)) if return_state else ([ra], [rb])
    for p, q in zip(ra, rb):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-6)
    if grad:
        wts = [torch.randn_like(r) for r in ra]
        ga = torch.autograd.grad(sum((r * w).sum() for r, w in zip(ra, wts)), [x, *init, *a.parameters()])
        gb = torch.autograd.grad(sum((r * w).sum() for r, w in zip(rb, wts)), [x, *init, *b.parameters()])
        for p, q in zip(ga, gb):
            torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5)


def test_other_masks_run_on_the_loop_and_say_why():
    layer = L.GRU(3, return_sequences=True)
    x = torch.randn(2, T, 2)
    left_padded = torch.tensor([[False, False] + [True] * (T - 2), [True] * T])
    layer(x, mask=left_padded)
    assert layer.last_path.startswith("reference loop") and "not right-padded" in layer.last_path
    with pytest.raises(ValueError, match="path='fused'.*not right-padded"):
        L.GRU(3, path="fused")(x, mask=left_padded)
