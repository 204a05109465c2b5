"""ConvLSTM1D / ConvLSTM2D / ConvLSTM3D against Keras 3 (JAX) with the same weights: outputs and states over
the flag grid, initial_state, masks, one SGD step, stateful calls, `.keras` files both ways, errors."""
import itertools

import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L

from ._keras_pairs import close, keras_files_both_ways, random_weights, sgd_step_matches

B, T, H, W, C, FL = 2, 4, 6, 5, 3, 4        # batch, timesteps, rows, cols, channels, filters


@pytest.fixture(scope="module")
def x2():
    return np.random.default_rng(0).standard_normal((B, T, H, W, C)).astype("float32")


@pytest.fixture(scope="module")
def x1():
    return np.random.default_rng(1).standard_normal((B, T, H, C)).astype("float32")


FAST = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}   # Keras: no QR compile (replaced)


def _pair(kcls, rcls, x, rng, **kw):
    """The same layer in Keras and rnnstate, built on `x`, with the same random weights."""
    kl, rl = kcls(**kw, **FAST), rcls(**kw)
    kl(x)
    rl(x)
    w = random_weights(kl, rng)
    kl.set_weights(w)
    rl.set_weights(w)
    return kl, rl


# One Keras run per geometry (return_sequences and return_state on); rnnstate's four flag combinations are
# checked against it: the last output step for return_sequences=False, the states only with return_state.
GRID2 = [dict(),
         dict(padding="same", strides=2, go_backwards=True),
         dict(kernel_size=(2, 3), dilation_rate=2),
         dict(kernel_size=(2, 2), padding="same", strides=(2, 1), use_bias=False, unit_forget_bias=False,
              activation="relu", recurrent_activation="hard_sigmoid")]     # even kernel: asymmetric "same"


@pytest.mark.parametrize("kw", GRID2, ids=[",".join(f"{k}={v}" for k, v in kw.items()) or "default" for kw in GRID2])
def test_conv_lstm2d_matches_keras(kw, x2, rng):
    kw = {"filters": FL, "kernel_size": 3, **kw}
    kl, _ = _pair(keras.layers.ConvLSTM2D, L.ConvLSTM2D, x2, rng, return_sequences=True, return_state=True, **kw)
    seq, h, c = [np.asarray(v) for v in kl(x2)]
    kspec = kl.compute_output_shape((None, T, H, W, C))
    for rs, st in itertools.product([False, True], [False, True]):
        rl = L.ConvLSTM2D(return_sequences=rs, return_state=st, **kw)
        rl(x2)
        rl.set_weights(kl.get_weights())
        assert [tuple(w.shape) for w in rl.weights] == [tuple(w.shape) for w in kl.weights]
        out = seq if rs else seq[:, -1]
        close(rl(x2), [out, h, c] if st else out)
        spec = rl.compute_output_shape((None, T, H, W, C))
        want = [tuple(kspec[0]) if rs else (None, *kspec[0][2:]), tuple(kspec[1]), tuple(kspec[2])]
        assert spec == (want if st else want[0])
    assert [tuple(w.shape) for w in rl.weights][:2] == [(*rl.kernel_size, C, 4 * FL), (*rl.kernel_size, FL, 4 * FL)]
    assert rl.last_path.startswith("reference loop (ConvLSTM has no fused kernel")


GRID1 = [dict(return_sequences=True, return_state=True, padding="same", strides=2),
         dict(dilation_rate=2, go_backwards=True, return_sequences=True)]


@pytest.mark.parametrize("kw", GRID1, ids=[",".join(f"{k}={v}" for k, v in kw.items()) for kw in GRID1])
def test_conv_lstm1d_matches_keras(kw, x1, rng):
    kw = {"filters": FL, "kernel_size": 3, **kw}
    kl, rl = _pair(keras.layers.ConvLSTM1D, L.ConvLSTM1D, x1, rng, **kw)
    close(rl(x1), kl(x1))


def test_conv_lstm3d_and_channels_first_match_keras(rng):
    x3 = rng.standard_normal((B, 3, 4, 4, 3, 2)).astype("float32")
    kl, rl = _pair(keras.layers.ConvLSTM3D, L.ConvLSTM3D, x3, rng, filters=3, kernel_size=2, padding="same",
                   return_state=True)
    close(rl(x3), kl(x3))
    # channels_first (Keras' JAX backend runs it on CPU): input (B, T, C, H, W), states (B, F, H', W')
    xc = rng.standard_normal((B, T, C, H, W)).astype("float32")
    kl, rl = _pair(keras.layers.ConvLSTM2D, L.ConvLSTM2D, xc, rng, filters=FL, kernel_size=3,
                   data_format="channels_first", return_sequences=True, return_state=True)
    got = rl(xc)
    close(got, kl(xc))
    assert tuple(got.h.shape) == (B, FL, H - 2, W - 2)


def test_initial_state_and_named_results_match_keras(x2, rng):
    kl, rl = _pair(keras.layers.ConvLSTM2D, L.ConvLSTM2D, x2, rng, filters=FL, kernel_size=3, padding="same",
                   return_sequences=True, return_state=True)
    h0 = rng.standard_normal((B, H, W, FL)).astype("float32")
    c0 = rng.standard_normal((B, H, W, FL)).astype("float32")
    want = kl(x2, initial_state=[h0, c0])
    res = rl(x2, initial_state=[h0, c0])
    close(res, want)
    out, h, c = res                                     # unpacks like Keras' list, and names its fields
    assert res._fields == ("output", "h", "c")
    close([res.h, res.c], [want[1], want[2]])
    assert torch.equal(out[:, -1], h)                   # the last output step is h
    # Keras 2's layer([x, h, c]) form
    close(rl([torch.from_numpy(x2), torch.from_numpy(h0), torch.from_numpy(c0)]), want)


def _keras_on_valid_steps(kl, x, mask):
    """Keras' semantics of a mask, computed by Keras on each sample's valid steps only (Keras' own ConvLSTM
    can't take a mask on the JAX backend: its (B, 1) step mask doesn't broadcast against (B, H, W, F) states).
    Masked steps keep the states and repeat the previous output (zeros before the first valid step)."""
    seqs, hs, cs = [], [], []
    for b in range(x.shape[0]):
        idx = np.flatnonzero(mask[b])
        out, h, c = [np.asarray(v) for v in kl(x[b:b + 1, idx])]
        full, prev, k = [], np.zeros_like(out[0, 0]), 0
        for t in range(x.shape[1]):
            if mask[b, t]:
                prev, k = out[0, k], k + 1
            full.append(prev)
        seqs.append(np.stack(full))
        hs.append(h[0])
        cs.append(c[0])
    return [np.stack(seqs), np.stack(hs), np.stack(cs)]


def test_mask_matches_keras_on_the_valid_steps(x2, rng):
    """A mask that is not right-padded: masked steps keep the states and repeat the previous output."""
    kl, rl = _pair(keras.layers.ConvLSTM2D, L.ConvLSTM2D, x2, rng, filters=FL, kernel_size=3,
                   return_sequences=True, return_state=True)
    mask = np.array([[True, False, True, True], [False, True, True, False]])
    want = _keras_on_valid_steps(kl, x2, mask)
    close(rl(x2, mask=mask), want)


def _sequential(lib):
    fast = FAST if lib is keras else {}
    return lib.Sequential([lib.Input((T, H, W, C)),
                           lib.layers.ConvLSTM2D(2, (2, 3), strides=(2, 1), padding="same", **fast),
                           lib.layers.Flatten(), lib.layers.Dense(1)])


def test_training_step_matches_keras(x2, rng):
    km, rm = _sequential(keras), _sequential(rnnstate)
    w = random_weights(km, rng, scale=0.3)
    km.set_weights(w)
    rm.set_weights(w)
    close(rm.predict(x2), km.predict(x2, verbose=0))
    y = rng.standard_normal((B, 1)).astype("float32")
    sgd_step_matches(km, rm, x2, y)


def test_stateful_carries_states_like_keras(x2, rng):
    kin = keras.Input(batch_shape=(B, T, H, W, C))
    km = keras.Model(kin, keras.layers.ConvLSTM2D(FL, 3, padding="same", stateful=True, **FAST)(kin))
    rin = rnnstate.Input((T, H, W, C), batch_size=B)
    rm = rnnstate.Model(rin, L.ConvLSTM2D(FL, 3, padding="same", stateful=True)(rin))
    w = random_weights(km, rng, scale=0.3)
    km.set_weights(w)
    rm.set_weights(w)
    xb = x2[::-1].copy()
    for xx in (x2, xb):                                    # the second call starts from the first's states
        close(rm(xx), km(xx))
    layer = rm.layers[1]
    h, c = layer.get_states()
    assert (tuple(h.shape), tuple(c.shape)) == ((B, H, W, FL), (B, H, W, FL))
    close([h, c], [np.asarray(v.value) for v in km.layers[1].states])
    layer.reset_states(samples=[1])                        # episode boundary in sample 1 only
    h1, c1 = layer.get_states()
    assert torch.equal(h1[0], h[0]) and not h1[1].any() and not c1[1].any()
    layer.set_states({"h": np.ones((B, H, W, FL)), "c": np.zeros((B, H, W, FL))})
    assert float(layer.get_states().h.mean()) == 1.0
    with pytest.raises(ValueError, match=r"\(2, 6, 5, 4\)"):
        layer.set_states([np.ones((B, H, W, 3)), np.ones((B, H, W, 3))])
    rm.reset_states()
    km.layers[1].reset_state()
    close(rm(x2), km(x2))


def test_keras_files_both_ways(x2, rng, tmp_path):
    def build(lib):          # zero initializers on both sides: the loading Keras runs no QR (weights replaced)
        inp = lib.Input((T, H, W, C))
        seq, h, c = lib.layers.ConvLSTM2D(FL, 3, strides=(1, 2), padding="same", return_sequences=True,
                                          return_state=True, go_backwards=True, **FAST)(inp)
        return lib.Model(inp, [seq, h, c])

    km, rm = build(keras), build(rnnstate)
    w = random_weights(km, rng, scale=0.3)
    km.set_weights(w)
    rm.set_weights(w)
    keras_files_both_ways(km, rm, x2, tmp_path)


@pytest.mark.parametrize("ext", ["keras", "safetensors"])
def test_carried_states_saved_and_restored(ext, x2, tmp_path):
    from rnnstate.models import load_model
    inp = rnnstate.Input((T, H, W, C), batch_size=B)
    model = rnnstate.Model(inp, L.ConvLSTM2D(FL, 3, stateful=True)(inp))
    model.predict(x2)
    model.save(tmp_path / f"m.{ext}", include_states=True)
    again = load_model(tmp_path / f"m.{ext}")
    close(list(again.layers[1].get_states()), list(model.layers[1].get_states()))
    close(again.predict(x2), model.predict(x2))                     # both continue from the same states


def test_config_round_trips_both_ways():
    rl = L.ConvLSTM2D(5, (3, 2), strides=(1, 2), padding="same", dilation_rate=1, activation="relu",
                      unit_forget_bias=False, dropout=0.25, recurrent_dropout=0.5, return_sequences=True, seed=3,
                      kernel_regularizer="l2", name="clstm")
    cfg = rl.get_config()
    assert cfg["kernel_size"] == [3, 2] and "rank" not in cfg and "cell" not in cfg
    again = L.ConvLSTM2D.from_config(cfg)
    assert again.get_config() == cfg
    kl = keras.layers.ConvLSTM2D.from_config(cfg)                         # Keras reads rnnstate's config
    assert (kl.filters, kl.kernel_size, kl.strides, kl.padding, kl.dropout) == (5, (3, 2), (1, 2), "same", 0.25)
    back = L.ConvLSTM2D.from_config(kl.get_config())                      # and rnnstate reads Keras'
    assert {k: back.get_config()[k] for k in cfg} == cfg
    assert rnnstate.serialization.deserialize_layer(rnnstate.serialization.serialize_layer(rl)).get_config() == cfg


def test_dropout_trains_and_inference_is_deterministic(x2):
    rl = L.ConvLSTM2D(FL, 3, dropout=0.5, recurrent_dropout=0.5, seed=1)
    plain = L.ConvLSTM2D(FL, 3)
    plain(x2)
    rl(x2)
    rl.set_weights(plain.get_weights())
    close(rl(x2), plain(x2))                                              # inference: no dropout
    a, b = rl(x2, training=True), rl(x2, training=True)
    assert a.shape == (B, H - 2, W - 2, FL) and not torch.allclose(a, b)  # training: fresh masks per call
    a.sum().backward()
    assert rl.cell.weight_hh.grad is not None


def test_dropout_masks_per_gate_match_the_keras_cell(x2, rng):
    """Keras' ConvLSTM draws one input and one recurrent mask per gate (i, f, c, o), kept over time: the same
    masks given to Keras' cell and to rnnstate's (a per-gate copy of x, then a grouped conv) give the same steps."""
    kl, rl = _pair(keras.layers.ConvLSTM2D, L.ConvLSTM2D, x2, rng, filters=FL, kernel_size=(3, 2), padding="same",
                   dropout=0.5, recurrent_dropout=0.5)
    m_in = [(rng.random((B, H, W, C)) < 0.5).astype("float32") * 2 for _ in range(4)]
    m_rec = [(rng.random((B, H, W, FL)) < 0.5).astype("float32") * 2 for _ in range(4)]
    kl.cell._dropout_mask, kl.cell._recurrent_dropout_mask = m_in, m_rec     # Keras' cached per-call masks
    cell, state = rl.cell, rl.cell.initial_state(B)
    kstate = [np.zeros((B, H, W, FL), "float32")] * 2
    rec = torch.from_numpy(np.concatenate(m_rec, -1))                           # (B, H, W, 4F)
    for t in range(2):
        ky, kstate = kl.cell.call(x2[:, t], kstate, training=True)
        xt = torch.cat([torch.from_numpy(x2[:, t] * m) for m in m_in], -1)      # (B, H, W, 4C)
        y, state = cell.recurrent_step(cell.project_input(xt), state, rec_mask=rec)
        close([y, state.h, state.c], [ky, *kstate])
    # the layer draws them so: four different masks of one step's shape, the same at every step
    xd, rd = cell.gate_dropout(torch.ones(B, T, H, W, C), state)
    assert tuple(xd.shape) == (B, T, H, W, 4 * C) and tuple(rd.shape) == (B, H, W, 4 * FL)
    assert set(torch.unique(xd).tolist()) == {0.0, 2.0} and bool((xd == xd[:, :1]).all())
    assert not torch.equal(xd[..., :C], xd[..., C:2 * C])


def test_summary_shows_shapes_and_states(capsys):
    m = _sequential(rnnstate)
    m.summary()
    out = capsys.readouterr().out
    assert "(None, 3, 5, 2)" in out and "h (None, 3, 5, 2), c (None, 3, 5, 2)" in out


def test_cell_steps_equal_the_layer(x2, rng):
    """The cell's `step` over time (the documented equivalent loop) gives the layer's sequence."""
    rl = L.ConvLSTM2D(FL, 3, return_sequences=True)
    want = rl(x2)
    state = rl.cell.initial_state(B)
    outs = []
    for t in range(T):
        y, state = rl.cell.step(torch.from_numpy(x2[:, t]), state)
        outs.append(y)
    close(torch.stack(outs, 1), want)
    assert "no fused kernel" in rl.cell.fused_reason()


# ---- errors -------------------------------------------------------------------------------------------------
def test_errors_name_layer_argument_expected_and_received(x2):
    with pytest.raises(ValueError, match=r"ConvLSTM2D 'cl'.*5-D input of shape \(batch, timesteps, rows, cols, "
                                         r"channels\); received an input of shape \(2, 4, 3\)"):
        L.ConvLSTM2D(2, 3, name="cl")(np.zeros((2, 4, 3), "float32"))
    with pytest.raises(ValueError, match=r"ConvLSTM1D.*4-D input of shape \(batch, timesteps, steps, channels\); "
                                         r"received an input of shape \(2, 4, 6, 5, 3\) \(5-D\)"):
        L.ConvLSTM1D(2, 3)(x2)
    with pytest.raises(ValueError, match="argument `padding`.*'causal'"):
        L.ConvLSTM2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="`strides` > 1 and `dilation_rate` > 1"):
        L.ConvLSTM2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="argument `kernel_size`.*tuple of 2 integers.*received \\(3, 3, 3\\)"):
        L.ConvLSTM2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="argument `filters`"):
        L.ConvLSTM1D(0, 3)
    with pytest.raises(ValueError, match="argument `data_format`"):
        L.ConvLSTM1D(2, 3, data_format="NHWC")
    with pytest.raises(NotImplementedError, match="argument `kernel_constraint`"):
        L.ConvLSTM1D(2, 3, kernel_constraint="non_neg")
    with pytest.raises(TypeError, match="`bogus`"):
        L.ConvLSTM1D(2, 3, bogus=1)
    with pytest.raises(ValueError, match=r"leaves no output"):
        L.ConvLSTM2D(2, 7)(x2)
    layer = L.ConvLSTM2D(2, 3, return_state=True)
    layer(x2)
    with pytest.raises(ValueError, match=r"built for input steps of shape \(None, 6, 5, 3\); received steps of "
                                         r"shape \(None, 7, 5, 3\)"):
        layer(np.zeros((B, T, 7, W, C), "float32"))
    with pytest.raises(ValueError, match=r"argument `initial_state` entry 0 \(h\) must have shape \(2, 4, 3, 2\)"
                                         r".*received shape \(2, 2\)"):
        layer(x2, initial_state=[np.zeros((B, 2), "float32"), np.zeros((B, 2), "float32")])
    with pytest.raises(ValueError, match=r"argument `initial_state` must be 2 tensors \(h, c\)"):
        layer(x2, initial_state=[np.zeros((B, 4, 3, 2), "float32")])
    with pytest.raises(ValueError, match=r"argument `mask`.*\(2, 4\).*\(2, 3\)"):
        layer(x2, mask=np.ones((B, 3), bool))
    sym = rnnstate.Input((T, H, W, C))
    with pytest.raises(ValueError, match=r"ConvLSTM1D.*4-D input"):
        L.ConvLSTM1D(2, 3)(sym)


def test_bidirectional_and_streaming(x1, rng):
    """Bidirectional(ConvLSTM1D) as Keras'; `model.stream()` steps give the layer's sequence."""
    kl = keras.layers.Bidirectional(keras.layers.ConvLSTM1D(FL, 3, padding="same", return_sequences=True, **FAST))
    rl = L.Bidirectional(L.ConvLSTM1D(FL, 3, padding="same", return_sequences=True))
    kl(x1)
    rl(x1)
    w = random_weights(kl, rng)
    kl.set_weights(w)
    rl.set_weights(w)
    close(rl(x1), kl(x1))
    inp = rnnstate.Input((T, H, C))
    model = rnnstate.Model(inp, L.ConvLSTM1D(FL, 3, return_sequences=True)(inp))
    want = model.predict(x1)
    stream, states, ys = model.stream(), None, []
    for t in range(T):
        y, states = stream.step(x1[:, t], states)
        ys.append(np.asarray(y))
    close(np.stack(ys, 1), want)
