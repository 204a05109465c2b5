"""Model-level dtypes: float64 and bfloat16 models (via `.to`, `Input(dtype=...)` and Keras' `dtype=`) predict,
fit and save/load in that dtype, against torch's nn.LSTM in the same dtype (weights transplanted). One rule
for inputs: floating inputs, numpy or torch, become the layer's compute dtype; Embedding ids stay integers."""
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import Input, Model, Sequential, layers

B, T, F, U = 3, 5, 4, 6


def _torch_lstm(cell, dtype):
    """nn.LSTM holding `cell`'s weights (rnnstate keeps torch's layout; b_hh is folded into b_ih)."""
    ref = torch.nn.LSTM(cell.input_dim, U, batch_first=True).to(dtype)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.weight_ih)
        ref.weight_hh_l0.copy_(cell.weight_hh)
        ref.bias_ih_l0.copy_(cell.bias_ih)
        ref.bias_hh_l0.zero_()
    return ref


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, F)), rng.standard_normal((B, U))      # float64 numpy, as users have


def _roundtrip(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    return rnnstate.models.load_model(path)


@pytest.mark.parametrize("how", ["to", "double", "to, no Input", "Input", "layer dtype"])
def test_float64_model_predicts_fits_and_saves_in_float64(how, tmp_path):
    torch.manual_seed(0)
    x, y = _data()
    if how == "Input":
        i = Input((T, F), dtype="float64")
        model = Model(i, layers.LSTM(U)(i))
    elif how == "layer dtype":
        model = Sequential([Input((T, F)), layers.LSTM(U, dtype="float64")])
    elif how == "to, no Input":                                              # built at the first predict
        model = Sequential([layers.LSTM(U)]).to(torch.float64)
        model.predict(x[:1], verbose=0)
    else:
        model = Sequential([Input((T, F)), layers.LSTM(U)])
        model = model.to(torch.float64) if how == "to" else model.double()
    lstm = model.layers[-1]
    assert lstm.cell.weight_ih.dtype == torch.float64 and lstm.get_config()["dtype"] == "float64"
    ref = _torch_lstm(lstm.cell, torch.float64)
    # the model input's dtype applies first (as in Keras): a float32 Input rounds x before the float64 layer
    fed = x.astype(np.float32).astype(np.float64) if how == "layer dtype" else x
    with torch.no_grad():
        want = ref(torch.from_numpy(fed))[0][:, -1].numpy()
    got = model.predict(x, verbose=0)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)       # float64 all the way: no float32 rounding

    model.compile(optimizer="sgd", loss="mse")
    before = lstm.cell.weight_hh.detach().clone()
    hist = model.fit(x, y, epochs=2, batch_size=B, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    assert lstm.cell.weight_hh.dtype == torch.float64 and not torch.equal(before, lstm.cell.weight_hh)

    loaded = _roundtrip(model, tmp_path)
    lw = loaded.layers[-1]
    assert lw.get_config()["dtype"] == "float64" and lw.cell.weight_hh.dtype == torch.float64
    assert torch.equal(lw.cell.weight_hh, lstm.cell.weight_hh)                # bit-exact, not via float32
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("path", ["loop", "auto"])
def test_bfloat16_model_predicts_fits_and_saves(path, tmp_path):
    torch.manual_seed(0)
    x, y = _data(1)
    model = Sequential([Input((T, F)), layers.LSTM(U, return_sequences=True, path=path), layers.LSTM(U, path=path)])
    model.to(torch.bfloat16)
    l1, l2 = model.layers
    assert l1.cell.weight_ih.dtype == torch.bfloat16 and l2.get_config()["dtype"] == "bfloat16"
    refs = [_torch_lstm(l.cell, torch.float32) for l in (l1, l2)]             # the same bf16 weights, in float32
    with torch.no_grad():
        want = refs[1](refs[0](torch.from_numpy(x).to(torch.bfloat16).float())[0])[0][:, -1].numpy()
    got = model.predict(x, verbose=0)                                         # bf16 math: ~3 significant digits
    np.testing.assert_allclose(got, want, atol=3e-2)

    model.compile(optimizer="adam", loss="mse")
    hist = model.fit(x, y, epochs=2, batch_size=B, verbose=0)
    assert np.isfinite(hist.history["loss"]).all() and l2.cell.weight_hh.dtype == torch.bfloat16

    loaded = _roundtrip(model, tmp_path)
    assert loaded.layers[1].cell.weight_hh.dtype == torch.bfloat16
    assert torch.equal(loaded.layers[1].cell.weight_hh, l2.cell.weight_hh)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_one_rule_for_numpy_and_torch_inputs():
    torch.manual_seed(0)
    x, _ = _data(2)
    f64 = layers.LSTM(U, dtype="float64")
    ref = None
    outs = []
    for v in (x, torch.from_numpy(x), torch.from_numpy(x).float(), x.astype(np.float32)):
        with torch.no_grad():
            outs.append(f64(v))
        if ref is None:
            ref = _torch_lstm(f64.cell, torch.float64)
    assert all(o.dtype == torch.float64 for o in outs)
    with torch.no_grad():
        np.testing.assert_allclose(outs[0].numpy(), ref(torch.from_numpy(x))[0][:, -1].numpy(), atol=1e-12)
    f32 = layers.LSTM(U)                                                      # default: float32, as Keras
    with torch.no_grad():
        a, b = f32(x), f32(torch.from_numpy(x))
    assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)


def test_embedding_ids_stay_integers_in_a_float64_model():
    torch.manual_seed(0)
    model = Sequential([Input((T,), dtype="int64"), layers.Embedding(10, F), layers.LSTM(U)]).to(torch.float64)
    ids = np.random.default_rng(0).integers(0, 10, size=(B, T))
    got = model.predict(ids, verbose=0)
    emb, lstm = model.layers
    ref = _torch_lstm(lstm.cell, torch.float64)
    with torch.no_grad():
        want = ref(emb.embeddings[torch.from_numpy(ids)])[0][:, -1].numpy()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_initial_state_and_carried_state_follow_the_dtype():
    torch.manual_seed(0)
    x, _ = _data(3)
    layer = layers.LSTM(U, dtype="float64", return_state=True)
    h0 = np.full((B, U), 0.1, dtype=np.float32)
    with torch.no_grad():
        out, h, c = layer(x, initial_state=[torch.from_numpy(h0), h0])
    assert out.dtype == h.dtype == c.dtype == torch.float64
    stateful = Sequential([Input((T, F), batch_size=B), layers.LSTM(U, stateful=True)])
    stateful.predict(x, verbose=0)
    stateful.to(torch.float64)                                                # carried float32 state converts
    assert stateful.predict(x, verbose=0).dtype == np.float64


def test_keras_dtype_config_round_trips():
    keras = pytest.importorskip("keras")
    k = keras.layers.LSTM(U, dtype="float64")
    layer = layers.LSTM.from_config(k.get_config())                          # a DTypePolicy dict in Keras 3
    assert layer.get_config()["dtype"] == "float64"
    with torch.no_grad():
        assert layer(np.zeros((B, T, F))).dtype == torch.float64
    back = keras.layers.LSTM.from_config(layer.get_config())
    assert back.dtype == "float64"


def test_bad_dtype_is_a_clear_error():
    with pytest.raises(ValueError, match=r"LSTM.*`dtype`.*'int32'"):
        layers.LSTM(U, dtype="int32")


def test_float16_model_predicts_where_torch_cpu_ops_allow():
    torch.manual_seed(0)
    x, _ = _data(4)
    model = Sequential([Input((T, F)), layers.LSTM(U)]).half()
    lstm = model.layers[0]
    ref = _torch_lstm(lstm.cell, torch.float32)                               # the same fp16 weights, in float32
    with torch.no_grad():
        want = ref(torch.from_numpy(x).half().float())[0][:, -1].numpy()
    got = model.predict(x, verbose=0)
    assert got.dtype == np.float16 and lstm.cell.weight_ih.dtype == torch.float16
    np.testing.assert_allclose(got.astype(np.float32), want, atol=5e-3)
