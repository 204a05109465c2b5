"""Layers with Keras' names, arguments and defaults."""
from ..cells import GRUCell, LSTMCell, SimpleRNNCell
from .base import Layer
from .core import (Activation, Dense, Dropout, Embedding, Flatten, Input, InputLayer, Masking, RepeatVector,
                   Reshape)
from .merge import Add, Concatenate
from .recurrent import GRU, LSTM, SimpleRNN
from .rnn import RNN
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Embedding", "Masking", "RepeatVector", "Activation", "Dropout",
           "Flatten", "Reshape", "Concatenate", "Add", "LSTM", "GRU", "SimpleRNN", "RNN", "LSTMCell",
           "GRUCell", "SimpleRNNCell", "Bidirectional", "TimeDistributed"]
