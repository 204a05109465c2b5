"""rnnstate.plot: h, c and gates over time, written as PNG, headless; the numbers it draws are the layer's."""
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L
from rnnstate.plot import plot_states, state_sequences

from .conftest import B, F, T, U

PNG = b"\x89PNG\r\n\x1a\n"


def test_layer_lines_png_and_the_numbers_drawn(tmp_path, rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    layer = L.LSTM(U, return_state=True)                               # flags of the layer don't matter
    layer(x)
    path = plot_states(layer, x, str(tmp_path / "sub" / "lstm.png"), units=[0, 2], sample=1)
    assert path.endswith("lstm.png") and open(path, "rb").read(8) == PNG
    [(name, seqs)] = state_sequences(layer, x)
    assert name == layer.name and list(seqs) == ["h", "c", "gate_i", "gate_f", "gate_g", "gate_o"]
    ref = L.LSTM(U, return_sequences=True, return_state=True, return_cell_sequence=True, return_gate_sequences=True)
    ref(x)
    ref.set_weights(layer.get_weights())
    res = ref(x)
    np.testing.assert_allclose(seqs["h"], res.output.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(seqs["c"], res.c_seq.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(seqs["gate_o"], res.gate_o.detach().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"argument `units` must be unit indices in \[0, 6\); received \[7\]"):
        plot_states(layer, x, str(tmp_path / "bad.png"), units=[7])


def test_model_heatmap_bidirectional_and_stateful_untouched(tmp_path, rng):
    x = rng.standard_normal((2, T, F)).astype("float32")
    inp = rnnstate.Input(shape=(T, F), batch_size=2)
    h = L.Bidirectional(L.GRU(U, return_sequences=True, go_backwards=False))(inp)
    stateful = L.LSTM(U, stateful=True)
    m = rnnstate.Model(inp, L.Dense(1)(stateful(h)))
    m(x)
    before = stateful.get_states()
    path = plot_states(m, x, str(tmp_path / "model.png"), kind="heatmap")
    assert open(path, "rb").read(8) == PNG
    after = stateful.get_states()                                     # plotting never advances a state
    assert torch.equal(before.h, after.h) and torch.equal(before.c, after.c)
    layers = state_sequences(m, x)
    names = [n for n, _ in layers]
    assert names == ["forward_" + m.layers[1].forward_layer.name[len("forward_"):],
                     m.layers[1].backward_layer.name, stateful.name]
    bw = dict(layers)[m.layers[1].backward_layer.name]["h"]            # backward h back in input order
    full = m.layers[1].backward_layer(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(bw, full[:, ::-1], atol=1e-6)          # processing order flipped back
    np.testing.assert_allclose(bw[:, 0], full[:, -1], atol=1e-6)      # its last h belongs to timestep 0


def test_custom_cell_and_errors(tmp_path, rng):
    x = rng.standard_normal((B, T, F)).astype("float32")
    stacked = L.RNN([L.LSTMCell(U), L.GRUCell(U)], return_sequences=True)
    stacked(x)
    [(name, seqs)] = state_sequences(stacked, x)                       # reference loop: states, no gates
    assert list(seqs) == ["output", "h_0", "c_0", "h_1"]
    np.testing.assert_allclose(seqs["output"], seqs["h_1"], atol=0)
    inp = rnnstate.Input(shape=(T, F))
    with pytest.raises(ValueError, match="has no recurrent layer to plot"):
        plot_states(rnnstate.Model(inp, L.Dense(2)(inp)), x, str(tmp_path / "none.png"))
    with pytest.raises(ValueError, match="argument `kind` must be one of"):
        plot_states(stacked, x, str(tmp_path / "k.png"), kind="3d")
