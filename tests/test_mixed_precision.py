"""Mixed precision (rnnstate.mixed_precision, Keras 3's API). Oracles: keras.mixed_precision itself (policy
attributes, errors, layer dtypes, outputs with transplanted weights, .keras files both ways), rnnstate's
float32 layers with the same weights, and a float32 reference of the mixed kernel's arithmetic (bf16-rounded
products, float32 gate math and state)."""
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import Input, Model, Sequential, layers
from rnnstate import mixed_precision as mp
from rnnstate.loop import mixed as loop_mixed

keras = pytest.importorskip("keras")
kmp = keras.mixed_precision

B, T, F, U = 3, 5, 4, 6
NAMES = ["float32", "float64", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16"]
BF16_UNITS = loop_mixed.bf16_units_reason() is None


@pytest.fixture(autouse=True)
def restore_policies():
    """Every test leaves both global policies as it found them."""
    ours, theirs = mp.global_policy(), kmp.global_policy()
    yield
    mp.set_global_policy(ours)
    kmp.set_global_policy(theirs)


def _x(seed=0, shape=(B, T, F)):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# ---- policy API against keras.mixed_precision --------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_policy_attributes_match_keras(name):
    ours, theirs = mp.Policy(name), kmp.Policy(name)
    assert (ours.name, ours.compute_dtype, ours.variable_dtype) == \
        (theirs.name, theirs.compute_dtype, theirs.variable_dtype)
    assert repr(ours) == repr(theirs)
    assert ours.get_config() == theirs.get_config()
    assert mp.DTypePolicy(name) == ours and mp.DTypePolicy is mp.Policy


def test_global_policy_set_and_read_like_keras():
    assert mp.global_policy().name == kmp.global_policy().name == "float32"
    for value in ["mixed_bfloat16", mp.Policy("mixed_float16"), "bfloat16"]:
        mp.set_global_policy(value)
        kmp.set_global_policy(value if isinstance(value, str) else kmp.Policy(value.name))
        assert mp.global_policy().name == kmp.global_policy().name
        assert mp.DTypePolicy().name == kmp.DTypePolicy().name          # no name: the global policy
    assert mp.dtype_policy is mp.global_policy and mp.set_dtype_policy is mp.set_global_policy


@pytest.mark.parametrize("bad", ["mixed_foo", "int8x", "float8"])
def test_bad_policy_names_raise_like_keras(bad):
    with pytest.raises(ValueError):
        kmp.Policy(bad)
    with pytest.raises(ValueError, match=r"cannot convert .*%s.* 'mixed_bfloat16'" % bad):
        mp.Policy(bad)
    with pytest.raises(ValueError):
        kmp.set_global_policy(bad)
    with pytest.raises(ValueError, match="set_global_policy"):
        mp.set_global_policy(bad)
    with pytest.raises(ValueError):
        keras.layers.LSTM(U, dtype=bad)
    with pytest.raises(ValueError, match=r"LSTM.*`dtype`.*%s" % bad):
        layers.LSTM(U, dtype=bad)
    assert mp.global_policy().name == "float32"                        # unchanged by the failed calls


def test_non_string_policies_raise_like_keras():
    with pytest.raises(TypeError):
        kmp.Policy(3)
    with pytest.raises(TypeError, match="must be a string"):
        mp.Policy(3)
    for bad in (3, None):
        with pytest.raises(ValueError):
            kmp.set_global_policy(bad)
        with pytest.raises(ValueError, match=r"set_global_policy: argument `policy`"):
            mp.set_global_policy(bad)


# ---- layers under a policy ---------------------------------------------------------------------------------
def _pair(policy_kw=None):
    """The same small model in Keras and rnnstate: LSTM (sequences + states), Dense, Dense(float32) last."""
    def make(lib):
        i = lib.Input((T, F))
        seq, h, c = lib.layers.LSTM(U, return_sequences=True, return_state=True, name="lstm", **(policy_kw or {}))(i)
        d = lib.layers.Dense(4, activation="tanh", name="d")(seq)
        last = lib.layers.Dense(2, activation="softmax", dtype="float32", name="last")(d)
        return lib.Model(i, [seq, h, c, d, last])
    km = make(keras)
    rm = make(rnnstate)
    rm.set_weights(km.get_weights())
    return km, rm


@pytest.mark.parametrize("how", ["global", "layer name", "layer policy"])
def test_layer_dtypes_match_keras(how):
    if how == "global":
        mp.set_global_policy("mixed_bfloat16")
        kmp.set_global_policy("mixed_bfloat16")
        km, rm = _pair()
    else:
        kw = {"dtype": "mixed_bfloat16"}
        km, rm = _pair(kw if how == "layer name" else None)
        if how == "layer policy":       # a policy object on one layer
            km, rm = (lib.Sequential([lib.Input((T, F)), lib.layers.LSTM(U, dtype=lib.mixed_precision.Policy(
                "mixed_bfloat16"))]) for lib in (keras, rnnstate))
    x = _x()
    k_outs = km(x) if isinstance(km(x), list) else [km(x)]
    with torch.no_grad():
        r_outs = rm(x)
    r_outs = r_outs if isinstance(r_outs, (list, tuple)) else [r_outs]
    assert [str(t.dtype) for t in k_outs] == [str(t.dtype).replace("torch.", "") for t in r_outs]
    for kl, rl in zip(km.layers[1:], rm.layers[1:]):
        assert (rl.dtype_policy.name, rl.compute_dtype, rl.variable_dtype) == \
            (kl.dtype_policy.name, kl.compute_dtype, kl.variable_dtype)
        assert [str(w.dtype) for w in kl.weights] == [w.numpy().dtype.name for w in rl.weights]


def test_mixed_lstm_close_to_float32_and_to_keras():
    mp.set_global_policy("mixed_bfloat16")
    kmp.set_global_policy("mixed_bfloat16")
    km, rm = _pair()
    mp.set_global_policy("float32")
    kmp.set_global_policy("float32")
    _, r32 = _pair()
    r32.set_weights(km.get_weights())
    x = _x(1)
    k_outs = [np.asarray(t, dtype=np.float32) for t in km(x)]
    with torch.no_grad():
        r_outs = [t.float().numpy() for t in rm(x)]
        f_outs = [t.float().numpy() for t in r32(x)]
    lstm = rm.layers[1]
    assert lstm.last_path == (loop_mixed.MIXED_PATH if BF16_UNITS else lstm.last_path)
    if not BF16_UNITS:
        assert "no bfloat16 units" in lstm.last_path
    for r, f, k in zip(r_outs, f_outs, k_outs):
        np.testing.assert_allclose(r, f, atol=2e-2)      # bf16: 8 bits of mantissa
        np.testing.assert_allclose(r, k, atol=2e-2)
    assert not np.array_equal(r_outs[0], f_outs[0])      # it did compute in bfloat16


def test_states_fp32_where_keras_keeps_them_fp32():
    """Keras returns h, c in the compute dtype and carries a stateful layer's state in float32 variables."""
    mp.set_global_policy("mixed_bfloat16")
    kmp.set_global_policy("mixed_bfloat16")
    x = _x(2)
    kl = keras.layers.LSTM(U, stateful=True)
    kl(x)
    rl = layers.LSTM(U, stateful=True, return_state=True)
    with torch.no_grad():
        out, h, c = rl(x)
    assert (out.dtype, h.dtype, c.dtype) == (torch.bfloat16,) * 3
    assert [str(v.dtype) for v in kl.states] == [str(s.dtype).replace("torch.", "") for s in rl.states] \
        == ["float32", "float32"]
    # the carried float32 state continues the sequence: two halves equal one whole call
    whole = layers.LSTM(U, return_state=True)
    with torch.no_grad():
        whole(x)
        whole.set_weights(rl.get_weights())
        rl.reset_states()
        rl(x[:, :2])
        _, h2, c2 = rl(x[:, 2:])
        _, hw, cw = whole(x)
    np.testing.assert_allclose(c2.float().numpy(), cw.float().numpy(), atol=1e-2)


@pytest.mark.skipif(not BF16_UNITS, reason="this CPU has no bfloat16 units (the float32 fallback is tested below)")
@pytest.mark.parametrize("shape", [(3, 5, 7, 5), (2, 4, 6, 9), (5, 3, 33, 20)])
def test_mixed_kernel_matches_its_float32_reference(shape):
    """The kernel's arithmetic: bf16-rounded x, weights and h_{t-1} in the products, float32 everything else
    (odd sizes exercise the padding of the register tiles)."""
    Bn, Tn, Fn, Un = shape
    g = torch.Generator().manual_seed(0)
    x, h0, c0 = torch.randn(Bn, Tn, Fn, generator=g), torch.randn(Bn, Un, generator=g), torch.randn(Bn, Un, generator=g)
    wi, wh = torch.randn(4 * Un, Fn, generator=g) * 0.3, torch.randn(4 * Un, Un, generator=g) * 0.3
    b = torch.randn(4 * Un, generator=g)
    ops = torch.ops.rnnstate
    out, hT, cT = ops.lstm_sequence_bf16(x, h0, c0, ops.pack_lstm_bf16(wi), ops.pack_lstm_bf16(wh), b)
    r = lambda t: t.bfloat16().double()                                    # noqa: E731
    xw = r(x) @ r(wi).t() + b.double()
    h, c, outs = h0.double(), c0.double(), []
    for t in range(Tn):
        i, f, gg, o = (xw[:, t] + r(h) @ r(wh).t()).chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * gg.tanh()
        h = o.sigmoid() * c.tanh()
        outs.append(h)
    assert out.dtype == torch.bfloat16 and hT.dtype == cT.dtype == torch.float32
    np.testing.assert_allclose(cT.numpy(), c.numpy(), atol=2e-5)
    np.testing.assert_allclose(hT.numpy(), h.numpy(), atol=2e-5)
    np.testing.assert_allclose(out.float().numpy(), torch.stack(outs, 1).bfloat16().float().numpy(), atol=1e-2)


def test_without_bf16_units_the_recurrence_runs_float32(monkeypatch):
    monkeypatch.setenv("RNNSTATE_NO_BF16", "1")
    rl = layers.LSTM(U, return_sequences=True, dtype="mixed_bfloat16")
    ref = layers.LSTM(U, return_sequences=True)
    x = _x(3)
    with torch.no_grad():
        got = rl(x)
        ref(x)
        ref.set_weights(rl.get_weights())
        want = ref(torch.from_numpy(x).bfloat16().float())        # the mixed layer's input is cast to bf16 first
    assert "mixed_bfloat16: this CPU has no bfloat16 units" in rl.last_path and "ran float32" in rl.last_path
    assert got.dtype == torch.bfloat16
    np.testing.assert_array_equal(got.float().numpy(), want.bfloat16().float().numpy())


def test_user_autocast_still_follows_nn_lstm():
    """Plain torch.autocast on a float32 layer is not a mixed policy: torch's op, like nn.LSTM."""
    rl = layers.LSTM(U, return_sequences=True)
    x = torch.from_numpy(_x(4))
    with torch.no_grad():
        rl(x)
        ref = torch.nn.LSTM(F, U, batch_first=True)
        ref.weight_ih_l0.copy_(rl.cell.weight_ih)
        ref.weight_hh_l0.copy_(rl.cell.weight_hh)
        ref.bias_ih_l0.copy_(rl.cell.bias_ih)
        ref.bias_hh_l0.zero_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = rl(x)
            want = ref(x)[0]
    assert got.dtype == want.dtype == torch.bfloat16 and "mixed_bfloat16" not in rl.last_path
    np.testing.assert_array_equal(got.float().numpy(), want.float().numpy())


def test_fit_trains_under_mixed_bfloat16():
    mp.set_global_policy("mixed_bfloat16")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, T, F)).astype("float32")
    y = (x[:, :, 0].sum(1) > 0).astype("int64")
    model = Sequential([Input((T, F)), layers.LSTM(8), layers.Dense(2, activation="softmax", dtype="float32")])
    model.compile(optimizer=rnnstate.optimizers.Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.predict(x, verbose=0)               # inference first: fit's updates must reach it after
    hist = model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < 0.6 * hist.history["loss"][0] and hist.history["accuracy"][-1] > 0.85
    assert all(w.numpy().dtype == np.float32 for w in model.weights)
    assert "autocast" in model.layers[0].last_path
    got = model.predict(x, verbose=0)
    assert got.dtype == np.float32                                      # the float32 last layer
    mp.set_global_policy("float32")                                     # inference sees the trained weights
    ref = Sequential([Input((T, F)), layers.LSTM(8), layers.Dense(2, activation="softmax")])
    ref.set_weights(model.get_weights())
    np.testing.assert_allclose(got, ref.predict(x, verbose=0), atol=2e-2)
    assert np.abs(got - before).max() > 0.1


# ---- configs and .keras files ------------------------------------------------------------------------------
def test_config_writes_keras_policy_dict():
    rl = layers.LSTM(U, dtype="mixed_bfloat16")
    kl = keras.layers.LSTM(U, dtype="mixed_bfloat16")
    assert rl.get_config()["dtype"] == kl.get_config()["dtype"] == \
        {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}, "registered_name": None}
    back = layers.LSTM.from_config(kl.get_config())
    assert back.dtype_policy == mp.Policy("mixed_bfloat16")
    assert keras.layers.LSTM.from_config(rl.get_config()).dtype_policy.name == "mixed_bfloat16"
    with pytest.raises(ValueError, match=r"LSTM.*dtype"):
        layers.LSTM.from_config({**rl.get_config(), "dtype": {"class_name": "DTypePolicy",
                                                              "config": {"name": "mixed_int3"}}})


def test_keras_file_round_trip_keeps_the_policy_both_ways(tmp_path):
    x = _x(5)
    kmp.set_global_policy("mixed_bfloat16")
    mp.set_global_policy("mixed_bfloat16")
    km, rm = _pair()
    km.save(tmp_path / "k.keras")
    rm.save(tmp_path / "r.keras")
    kmp.set_global_policy("float32")
    mp.set_global_policy("float32")                                   # files, not the global policy, decide
    from_keras = rnnstate.models.load_model(tmp_path / "k.keras")
    from_ours = keras.models.load_model(tmp_path / "r.keras")
    for ours, theirs in ((from_keras, km), (rm, from_ours)):
        assert [l.dtype_policy.name for l in ours.layers[1:]] == [l.dtype_policy.name for l in theirs.layers[1:]] \
            == ["mixed_bfloat16", "mixed_bfloat16", "float32"]
        with torch.no_grad():
            got = [t.float().numpy() for t in ours(x)]
        for g, k in zip(got, theirs(x)):
            np.testing.assert_allclose(g, np.asarray(k, dtype=np.float32), atol=2e-2)


@pytest.mark.skipif(not torch.ops.rnnstate.bf16_supported(), reason="this CPU has no AVX512-BF16 units")
def test_bf16_ops_have_fake_kernels_for_torch_compile_and_export():
    """torch.library.opcheck (schema, fake kernel vs the real one, dispatch) on the mixed ops."""
    ops = torch.ops.rnnstate
    w_ih, w_hh = torch.randn(4 * 20, 7), torch.randn(4 * 20, 20)
    torch.library.opcheck(ops.pack_lstm_bf16.default, (w_ih,), test_utils=("test_schema", "test_faketensor"))
    args = (torch.randn(3, 5, 7), torch.zeros(3, 20), torch.zeros(3, 20), ops.pack_lstm_bf16(w_ih),
            ops.pack_lstm_bf16(w_hh), torch.randn(80))
    torch.library.opcheck(ops.lstm_sequence_bf16.default, args, test_utils=("test_schema", "test_faketensor"))
