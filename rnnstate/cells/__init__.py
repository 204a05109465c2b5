"""Cells: one time step each (``step(x_t, state) -> (y_t, new_state)``)."""
from .base import Cell, GatedCell
from .conv_lstm import ConvLSTMCell
from .gru import GRUCell
from .lstm import LSTMCell
from .simple_rnn import SimpleRNNCell

__all__ = ["Cell", "GatedCell", "LSTMCell", "GRUCell", "SimpleRNNCell", "ConvLSTMCell"]
