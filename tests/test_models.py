"""Functional graphs: the encoder-decoder inference pattern, shared layers, nested models, summary."""
import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L

from .conftest import random_like_weights

V, LAT, T_ENC, T_DEC = 7, 5, 4, 3


def seq2seq(lib):
    enc_in = lib.Input(shape=(None, V))
    _, h, c = lib.layers.LSTM(LAT, return_state=True)(enc_in)
    dec_in = lib.Input(shape=(None, V))
    dec_seq, _, _ = lib.layers.LSTM(LAT, return_sequences=True, return_state=True)(dec_in, initial_state=[h, c])
    out = lib.layers.Dense(V, activation="softmax")(dec_seq)
    return lib.Model([enc_in, dec_in], out)


def inference_models(lib, model):
    """The canonical Keras recipe: rebuild encoder and decoder from the trained model's tensors."""
    encoder_inputs = model.input[0]
    encoder_outputs, state_h_enc, state_c_enc = model.layers[2].output
    encoder_model = lib.Model(encoder_inputs, [state_h_enc, state_c_enc])
    decoder_inputs = model.input[1]
    sh, sc = lib.Input(shape=(LAT,)), lib.Input(shape=(LAT,))
    decoder_lstm = model.layers[3]
    dec_out, h, c = decoder_lstm(decoder_inputs, initial_state=[sh, sc])
    dec_out = model.layers[4](dec_out)
    decoder_model = lib.Model([decoder_inputs, sh, sc], [dec_out, h, c])
    return encoder_model, decoder_model


def test_layer_order_matches_keras():
    km, rm = seq2seq(keras), seq2seq(rnnstate)
    assert [type(l).__name__ for l in rm.layers] == [type(l).__name__ for l in km.layers]
    assert [type(l).__name__ for l in rm.layers] == ["InputLayer", "InputLayer", "LSTM", "LSTM", "Dense"]


def test_encoder_decoder_inference_models_match_keras(rng):
    km, rm = seq2seq(keras), seq2seq(rnnstate)
    w = random_like_weights(km.get_weights(), rng)
    km.set_weights(w)
    rm.set_weights(w)
    x_enc = rng.standard_normal((2, T_ENC, V)).astype("float32")
    x_dec = rng.standard_normal((2, T_DEC, V)).astype("float32")
    np.testing.assert_allclose(rm.predict([x_enc, x_dec], verbose=0), km.predict([x_enc, x_dec], verbose=0), atol=1e-5)

    k_enc, k_dec = inference_models(keras, km)
    r_enc, r_dec = inference_models(rnnstate, rm)
    ks, rs = k_enc.predict(x_enc, verbose=0), r_enc.predict(x_enc, verbose=0)
    for a, b in zip(rs, ks):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # greedy decoding one step at a time with carried states == the full teacher-forced run
    tok = x_dec[:, :1]
    states = rs
    steps = []
    for t in range(T_DEC):
        y, h, c = r_dec.predict([x_dec[:, t:t + 1], *states], verbose=0)
        ky = k_dec.predict([x_dec[:, t:t + 1], *states], verbose=0)[0]
        np.testing.assert_allclose(y, ky, atol=1e-5)
        steps.append(y)
        states = [h, c]
    np.testing.assert_allclose(np.concatenate(steps, 1), rm.predict([x_enc, x_dec], verbose=0), atol=1e-5)
    assert tok.shape == (2, 1, V)


def test_shared_layer_shares_weights_and_model_called_like_a_layer(rng):
    inp_a, inp_b = rnnstate.Input((4, 3)), rnnstate.Input((4, 3))
    shared = L.GRU(5)
    m = rnnstate.Model([inp_a, inp_b], L.Concatenate()([shared(inp_a), shared(inp_b)]))
    assert len(m.weights) == 3                              # one GRU's kernel, recurrent_kernel, bias
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    y = m.predict([x, x], verbose=0)
    np.testing.assert_allclose(y[:, :5], y[:, 5:], atol=1e-6)

    outer_in = rnnstate.Input((4, 3))
    outer = rnnstate.Model(outer_in, L.Dense(2)(m([outer_in, outer_in])))
    got = outer.predict(x, verbose=0)
    want = outer.layers[-1](torch.from_numpy(m.predict([x, x], verbose=0))).detach().numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert outer.count_params() == m.count_params() + 10 * 2 + 2


def test_dict_inputs_and_single_symbolic_output_structures(rng):
    a, b = rnnstate.Input((3, 2), name="a"), rnnstate.Input((3, 2), name="b")
    m = rnnstate.Model({"a": a, "b": b}, L.LSTM(2)(L.Add()([a, b])))
    x = rng.standard_normal((4, 3, 2))
    y1 = m.predict({"a": x, "b": x}, verbose=0)
    y2 = m.predict([x, x], verbose=0)
    assert isinstance(y1, np.ndarray) and y1.shape == (4, 2)
    np.testing.assert_array_equal(y1, y2)
    out = m([torch.from_numpy(x).float()] * 2)
    assert isinstance(out, torch.Tensor)


def test_summary_shows_timesteps_and_state_shapes(capsys):
    inp = rnnstate.Input((3, 1))
    m = rnnstate.Model(inp, L.LSTM(1)(inp))
    m.summary()
    out = capsys.readouterr().out
    assert "lstm" in out and "(None, 1)" in out and "h (None, 1), c (None, 1)" in out and "3 steps" in out
    assert "Total params: 12" in out                        # 4 * (1*1 + 1*1 + 1)


def test_sequential_input_shape_keras2_style_and_lazy_build(rng):
    m = rnnstate.Sequential()
    m.add(L.LSTM(4, input_shape=(3, 1)))
    m.add(L.Dense(1))
    km = keras.Sequential([keras.Input((3, 1)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    assert m.count_params() == km.count_params()
    lazy = rnnstate.Sequential([L.GRU(3), L.Dense(2)])
    y = lazy.predict(rng.standard_normal((5, 6, 2)), verbose=0)
    assert y.shape == (5, 2) and len(lazy.layers) == 2
