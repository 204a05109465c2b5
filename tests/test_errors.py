"""Every error names the layer, the argument, what was expected and what was received."""
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L


def test_2d_input_says_3d_and_hints_return_sequences():
    inp = rnnstate.Input(shape=(5, 3))
    h = L.LSTM(4, name="first")(inp)                    # (None, 4): forgot return_sequences=True
    with pytest.raises(ValueError, match=r"LSTM 'second': expects a 3-D input of shape \(batch, timesteps, "
                                         r"features\); received an input of shape \(None, 4\).*return_sequences=True"):
        L.LSTM(4, name="second")(h)
    with pytest.raises(ValueError, match=r"GRU '.*': expects a 3-D input .* received an input of shape \(2, 3\)"):
        L.GRU(2)(np.zeros((2, 3)))


def test_wrong_feature_count_after_build():
    layer = L.LSTM(4)
    layer(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"LSTM 'lstm.*': was built for inputs with 3 features .* received an input "
                                         r"of shape \(2, 5, 7\)"):
        layer(np.zeros((2, 5, 7)))


def test_initial_state_count_and_shape():
    x = np.zeros((2, 5, 3), "float32")
    with pytest.raises(ValueError, match=r"LSTM '.*': argument `initial_state` must be 2 tensors \(h, c\) of shape "
                                         r"\(2, 4\) and \(2, 4\); received 1 tensor of shape \(2, 4\)"):
        L.LSTM(4)(x, initial_state=[np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"argument `initial_state` entry 1 \(c\) must have shape \(2, 4\) "
                                         r"\(batch, units\); received shape \(2, 5\)"):
        L.LSTM(4)(x, initial_state=[np.zeros((2, 4)), np.zeros((2, 5))])
    inp, h = rnnstate.Input((5, 3)), rnnstate.Input((8,))
    with pytest.raises(ValueError, match=r"GRU '.*': argument `initial_state` entry 0 \(h\) must have shape "
                                         r"\(None, 4\)"):
        L.GRU(4)(inp, initial_state=[h])


def test_iterating_a_single_symbolic_output():
    inp = rnnstate.Input(shape=(5, 3))
    with pytest.raises(TypeError, match=r"The output of GRU '.*' is a single symbolic tensor of shape \(None, 4\); "
                                        r"it cannot be unpacked.*only iterable when eager.*return_state=True"):
        out, h = L.GRU(4)(inp)


def test_positional_mistakes():
    with pytest.raises(ValueError, match=r"GRU: argument `activation` must be an activation name or callable; "
                                         r"received 200.*input_shape=\(timesteps, features\)"):
        L.GRU(4, 200)
    with pytest.raises(ValueError, match=r"argument `units` must be a positive integer; received \(3, 1\)"):
        L.LSTM((3, 1))
    with pytest.raises(ValueError, match=r"argument `units` must be a positive integer; received 0"):
        L.SimpleRNN(0)


def test_bad_config_values_are_rejected_not_clamped():
    with pytest.raises(ValueError, match=r"argument `dropout` must be a float in \[0, 1\); received 1.5"):
        L.LSTM(4, dropout=1.5)
    with pytest.raises(ValueError, match=r"argument `recurrent_dropout` must be a float in \[0, 1\); received -0.1"):
        L.GRU(4, recurrent_dropout=-0.1)
    with pytest.raises(ValueError, match=r"argument `merge_mode` must be one of"):
        L.Bidirectional(L.LSTM(4), merge_mode="max")
    with pytest.raises(ValueError, match=r"argument `activation`: .*tanhh"):
        L.LSTM(4, activation="tanhh")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) `foo`"):
        L.LSTM(4, foo=1)


def test_set_weights_errors_name_the_weight():
    layer = L.LSTM(4)
    layer(np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"`set_weights` expects a list of 3 arrays \(kernel \(3, 16\), "
                                         r"recurrent_kernel \(4, 16\), bias \(16,\)\); received 2"):
        layer.set_weights(layer.get_weights()[:2])
    w = layer.get_weights()
    before = [a.copy() for a in w]
    bad = [w[0] + 1, w[1], np.zeros((12,))]
    with pytest.raises(ValueError, match=r"entry 2 \(`bias`\) must have shape \(16,\); received shape \(12,\)"):
        layer.set_weights(bad)
    for a, b in zip(layer.get_weights(), before):      # nothing half-assigned
        np.testing.assert_array_equal(a, b)


def test_model_input_errors():
    inp = rnnstate.Input((5, 3))
    m = rnnstate.Model(inp, L.LSTM(2)(inp))
    with pytest.raises(ValueError, match=r"input 'input_layer.*' expects shape \(None, 5, 3\); received shape "
                                         r"\(4, 5, 2\)"):
        m.predict(np.zeros((4, 5, 2)))
    other = rnnstate.Input((5, 3))
    with pytest.raises(ValueError, match="graph is disconnected"):
        rnnstate.Model(inp, L.Concatenate()([L.LSTM(2)(inp), L.LSTM(2)(other)]))


def test_return_state_in_sequential_explains_functional_api():
    """Keras 3 accepts a state-returning last layer (tested in test_keras_semantics.py), not a middle one."""
    with pytest.raises(ValueError, match=r"Sequential '.*': every layer but the last in a Sequential model must "
                                         r"return a single tensor; LSTM '.*' returns 3 \(output, h, c; "):
        rnnstate.Sequential([rnnstate.Input((3, 1)), L.LSTM(1, return_state=True), L.Dense(1)])


def test_unknown_state_options():
    with pytest.raises(ValueError, match=r"return_cell_sequence=True` needs a cell with a cell state c"):
        L.RNN(L.GRUCell(3), return_cell_sequence=True)
