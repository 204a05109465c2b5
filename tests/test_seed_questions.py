"""The tutorial's reader questions (shared/seed), asked the way a user would, each answered with an
assertion. Keras 3 is the oracle wherever Keras has the same thing."""
import runpy
from pathlib import Path

import keras
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L

DATA = np.array([0.1, 0.2, 0.3], "float32").reshape((1, 3, 1))          # the tutorial's one sample
FAST = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros", "unroll": True}  # Keras: weights replaced
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _random_weights(model, rng):
    return [(rng.standard_normal(w.shape) * 0.5).astype("float32") for w in model.get_weights()]


def test_can_we_return_the_sequence_of_cell_states(rng):
    """"Can we return the sequence of cell states?" -- "Not directly." Now: return_cell_sequence=True.
    Oracle: Keras' final c after each prefix of the sequence."""
    layer = L.LSTM(1, return_sequences=True, return_cell_sequence=True)
    res = layer(DATA)
    assert res._fields == ("output", "c_seq") and res.c_seq.shape == (1, 3, 1)
    k = keras.layers.LSTM(1, return_state=True, **FAST)
    k.build((None, 3, 1))
    k.set_weights(_random_weights(k, rng))
    layer.set_weights(k.get_weights())
    res = layer(DATA)
    for t in range(3):
        _, _, c_t = k(DATA[:, :t + 1])
        np.testing.assert_allclose(_np(res.c_seq[:, t]), _np(c_t), atol=1e-6)


def test_bidirectional_return_state_unpacking():
    """`encoder_outputs, state_h, state_c = Bidirectional(LSTM(n, return_state=True))(x)` gave
    "too many values to unpack (expected 3)". It returns 5 values; the error now lists them."""
    inp = rnnstate.Input(shape=(3, 1))
    encoder = L.Bidirectional(L.LSTM(4, return_state=True))
    with pytest.raises(ValueError, match=r"returns 5 values \(output, forward_h, forward_c, backward_h, backward_c\); "
                                         r"they were unpacked into 3 names.*Concatenate\(\)\(\[forward_h, backward_h\]\)"):
        encoder_outputs, state_h, state_c = encoder(inp)
    res = encoder(inp)                                                    # keep the result: named fields
    out, fh, fc, bh, bc = res                                            # or unpack all five
    assert res.forward.h is fh and res.backward.c is bc
    ki = keras.Input(shape=(3, 1))
    assert len(keras.layers.Bidirectional(keras.layers.LSTM(4, return_state=True))(ki)) == len(res) == 5
    eager = encoder(DATA)                                                 # the same eagerly
    with pytest.raises(ValueError, match="returns 5 values"):
        a, b, c = eager
    with pytest.raises(ValueError, match=r"LSTM '.*' returns 3 values \(output, h, c\); they were unpacked into 2"):
        out, h = L.LSTM(2, return_state=True)(inp)                       # the same for one layer


def test_sequential_states_and_set_state(rng):
    """"Is it possible to access the internal states ... with the Sequential API? Set the hidden state
    through a function like set_state()?" -- states come from the layer (or the model) of a stateful
    Sequential; a state-returning last layer makes predict return [output, h, c] (Keras 3), a middle one
    needs the functional API (a clear error says so)."""
    out, h, c = rnnstate.Sequential([rnnstate.Input(shape=(3, 1)), L.LSTM(1, return_state=True)]).predict(DATA)
    assert out.shape == h.shape == c.shape == (len(DATA), 1)
    with pytest.raises(ValueError, match="Use the functional API"):
        rnnstate.Sequential([rnnstate.Input(shape=(3, 1)), L.LSTM(1, return_state=True), L.Dense(1)])
    model = rnnstate.Sequential([rnnstate.Input(batch_shape=(1, 3, 1)), L.LSTM(2, stateful=True),
                                 L.Dense(1)])
    h0, c0 = (rng.standard_normal((1, 2)).astype("float32") for _ in range(2))
    model.layers[0].set_states([h0, c0])                                 # per layer, Keras order
    got = model.predict(DATA, verbose=0, peek=True)
    model.set_states({model.layers[0].name: rnnstate.LSTMState(torch.as_tensor(h0), torch.as_tensor(c0))})
    np.testing.assert_allclose(model.predict(DATA, verbose=0), got, atol=0)
    h, c = model.get_states()[model.layers[0].name]                      # read them back after predict
    inp = rnnstate.Input(shape=(3, 1))
    lstm = L.LSTM(2, return_state=True)
    out, h_ref, c_ref = lstm(inp, initial_state=[h0, c0])
    ref = rnnstate.Model(inp, [L.Dense(1)(out), h_ref, c_ref])
    ref.set_weights(model.get_weights())
    y, hh, cc = ref.predict(DATA, verbose=0)
    np.testing.assert_allclose(got, y, atol=1e-6)
    np.testing.assert_allclose(_np(h), hh, atol=1e-6)
    np.testing.assert_allclose(_np(c), cc, atol=1e-6)


def test_h_is_o_times_tanh_c_not_tanh_c():
    """"I thought h = activation(c)... tanh(-0.198) != -0.0923" -- h = o * tanh(c): the output gate scales it."""
    res = L.LSTM(1, return_sequences=True, return_state=True, return_cell_sequence=True,
                 return_gate_sequences=True)(DATA)
    h, c, o = _np(res.output), _np(res.c_seq), _np(res.gate_o)
    np.testing.assert_allclose(h, o * np.tanh(c), atol=1e-6)
    assert not np.allclose(h, np.tanh(c), atol=1e-4)
    np.testing.assert_allclose(_np(res.h), h[:, -1], atol=0)           # output[-1] and h: the same


def test_gru_has_one_state(rng):
    """"In a GRU and SimpleRNN, is c = h?" -- they have one state, h, and their output is that state."""
    layer = L.GRU(3, return_sequences=True, return_state=True)
    res = layer(DATA)
    assert res._fields == ("output", "h")
    k = keras.layers.GRU(3, return_sequences=True, return_state=True, **FAST)
    k.build((None, 3, 1))
    k.set_weights(_random_weights(k, rng))
    layer.set_weights(k.get_weights())
    k_out = k(DATA)
    assert len(k_out) == 2
    out, h = layer(DATA)
    np.testing.assert_allclose(_np(h), _np(out[:, -1]), atol=0)
    np.testing.assert_allclose(_np(h), _np(k_out[1]), atol=1e-6)
    with pytest.raises(ValueError, match="needs a cell with a cell state c"):
        L.RNN(L.GRUCell(3), return_cell_sequence=True)


def test_first_step_starts_from_zero_states(rng):
    """"What is the hidden state and cell state of the first input?" -- "It will be zero." """
    layer = L.LSTM(2)
    layer(DATA)
    zeros = [np.zeros((1, 2), "float32")] * 2
    np.testing.assert_allclose(_np(layer(DATA)), _np(layer(DATA, initial_state=zeros)), atol=0)
    k = keras.layers.LSTM(2, **FAST)
    k.build((None, 3, 1))
    k.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(layer(DATA)), _np(k(DATA, initial_state=zeros)), atol=1e-6)


def _dense_c_model(lib):
    seq, ctx = lib.Input(shape=(3, 1)), lib.Input(shape=(2,))
    kw = FAST if lib is keras else {}
    c0 = lib.layers.Dense(2)(ctx)
    h0 = lib.layers.Dense(2, activation="tanh")(ctx)
    out = lib.layers.LSTM(2, **kw)(seq, initial_state=[h0, c0])
    return lib.Model([seq, ctx], out)


def test_dense_output_as_initial_cell_state(rng):
    """"Can I connect the output of a dense layer to the c state of a LSTM?" -- initial_state takes any tensor."""
    ours, theirs = _dense_c_model(rnnstate), _dense_c_model(keras)
    w = _random_weights(theirs, rng)
    theirs.set_weights(w)
    ours.set_weights(w)
    ctx = rng.standard_normal((1, 2)).astype("float32")
    np.testing.assert_allclose(ours.predict([DATA, ctx], verbose=0), theirs.predict([DATA, ctx], verbose=0),
                               atol=1e-5)


def test_plotting_h_and_c(tmp_path):
    """"I want to plot lstm, h_state and c_state" -- predict returns them as arrays; plot_states draws
    h, c and the gates over time."""
    inp = rnnstate.Input(shape=(3, 1))
    seq, h, c = L.LSTM(1, return_sequences=True, return_state=True)(inp)
    model = rnnstate.Model(inp, [seq, h, c])
    seq_a, h_a, c_a = model.predict(DATA, verbose=0)
    assert seq_a.shape == (1, 3, 1) and h_a.shape == c_a.shape == (1, 1)
    path = rnnstate.plot.plot_states(model, DATA, str(tmp_path / "states.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_saving_and_restoring_state_per_source(rng, tmp_path):
    """"How would one save the state when prediction samples arrive from multiple sources?" -- a StateStore
    keeps one state per source; save/load it; a restored store continues each source exactly."""
    inp = rnnstate.Input(shape=(None, 1))
    model = rnnstate.Model(inp, L.Dense(1)(L.LSTM(4, return_sequences=True)(inp)))
    sources = {"sensor-a": rng.standard_normal((6, 1)), "sensor-b": rng.standard_normal((6, 1))}
    truth = {k: model.predict(v[None].astype("float32"), verbose=0)[0] for k, v in sources.items()}
    store = rnnstate.StateStore(model, max_streams=100)
    arrivals = [("sensor-a", 0), ("sensor-b", 0), ("sensor-a", 1), ("sensor-a", 2), ("sensor-b", 1)]
    for key, t in arrivals:                                              # samples arrive one at a time
        store.step([key], sources[key][t:t + 1].astype("float32"))
    store.save(tmp_path / "states.safetensors")
    restored = rnnstate.StateStore(model).load(tmp_path / "states.safetensors")
    y = restored.step(["sensor-b", "sensor-a"], np.array([sources["sensor-b"][2], sources["sensor-a"][3]], "float32"))
    np.testing.assert_allclose(_np(y[0]), truth["sensor-b"][2], atol=1e-6)
    np.testing.assert_allclose(_np(y[1]), truth["sensor-a"][3], atol=1e-6)


def test_two_streams_exchanging_cell_states():
    """"Extract both LSTMs' cell states at each time step, average them, update the next step" -- a custom cell."""
    ns = runpy.run_path(str(EXAMPLES / "exchange_cells.py"), run_name="exchange_cells")
    checks = ns["main"]()
    assert checks and all(checks.values()), checks


def test_iterating_a_single_gru_output():
    """`encoder_out, encoder_state = encoder_gru2(encoder_out1)` without return_state: "Tensor objects are
    only iterable when eager execution is enabled". The message now says what to do."""
    inp = rnnstate.Input(batch_shape=(32, 103, 1))
    out1, state1 = L.GRU(64, return_sequences=True, return_state=True)(inp)
    with pytest.raises(TypeError, match=r"GRU 'encoder_gru' is a single symbolic tensor of shape \(32, 103, 50\).*"
                                        r"pass `return_state=True`"):
        encoder_out, encoder_state = L.GRU(50, return_sequences=True, name="encoder_gru")(out1)
    with pytest.raises((TypeError, NotImplementedError)):                # Keras refuses too
        a, b = keras.layers.GRU(50, return_sequences=True)(keras.Input(batch_shape=(32, 103, 1)))


def test_gru_with_input_size_as_second_positional_argument():
    """`GRU(4, 200)`: "can accept only 1 positional arguments" -- the second positional is `activation`."""
    with pytest.raises(ValueError, match=r"argument `activation` must be an activation name or callable; received "
                                         r"200.*input_shape=\(timesteps, features\)"):
        L.GRU(4, 200)
    with pytest.raises(ValueError):                                      # Keras: "Could not interpret activation"
        keras.layers.GRU(4, 200)(np.zeros((1, 3, 1), "float32"))


@pytest.mark.parametrize("units", [1, 5])
def test_how_does_lstm1_process_3_timesteps(units):
    """"Shouldn't there be 3 LSTMs to process 3 timesteps?" -- one cell, applied once per step; the summary
    shows the steps and the state shapes (per sample), and LSTM(5) has 5 units in h and c."""
    inp = rnnstate.Input(shape=(3, 1))
    layer = L.LSTM(units, return_sequences=True)
    model = rnnstate.Model(inp, layer(inp))
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert f"h (None, {units}), c (None, {units}) (internal); 3 steps" in text
    assert f"(None, 3, {units})" in text
    state = layer.cell.initial_state(1)
    x = torch.as_tensor(DATA)
    outs = []
    for t in range(3):                                                   # the same cell, three times
        y, state = layer.cell.step(x[:, t], state)
        outs.append(y)
    np.testing.assert_allclose(_np(torch.stack(outs, 1)), _np(layer(DATA)), atol=1e-6)


def test_stacking_without_return_sequences():
    """Stacking LSTMs without return_sequences=True: "expected ndim=3, found ndim=2". The message explains."""
    inp = rnnstate.Input(shape=(3, 1))
    with pytest.raises(ValueError, match=r"expects a 3-D input.*received an input of shape \(None, 4\) \(2-D\)"
                                         r".*needs `return_sequences=True` on the layer before"):
        L.LSTM(2)(L.LSTM(4)(inp))
    with pytest.raises(ValueError):                                      # Keras refuses too
        keras.layers.LSTM(2)(keras.layers.LSTM(4)(keras.Input(shape=(3, 1))))


def test_only_h_goes_up_c_stays_inside():
    """"Is only the hidden state forwarded to upper layers, or also the cell state?" -- only h: the next
    layer reads the output sequence, which is the h sequence; c is carried along time only."""
    res = L.LSTM(2, return_sequences=True, return_state=True, return_cell_sequence=True)(DATA)
    upper = L.LSTM(1)
    upper(res.output)                                                    # what a stacked layer sees
    np.testing.assert_allclose(_np(res.output[:, -1]), _np(res.h), atol=0)
    assert not np.allclose(_np(res.output), _np(res.c_seq))
