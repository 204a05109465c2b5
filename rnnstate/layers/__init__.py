"""Layers with Keras' names, arguments and defaults."""
from ..cells import GRUCell, LSTMCell, SimpleRNNCell
from .attention import AdditiveAttention, Attention
from .base import Layer
from .conv import Conv1D
from .conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from .core import (Activation, Dense, Dropout, Embedding, Flatten, Input, InputLayer, Masking, Permute,
                   RepeatVector, Reshape)
from .lambda_layer import Lambda
from .merge import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
                    concatenate, dot, maximum, minimum, multiply, subtract)
from .multi_head_attention import MultiHeadAttention
from .noise import GaussianNoise, SpatialDropout1D
from .normalization import BatchNormalization, LayerNormalization
from .pooling import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D
from .recurrent import GRU, LSTM, SimpleRNN
from .rnn import RNN
from .wrappers import Bidirectional, TimeDistributed
from . import ops        # Keras 3's operation nodes (NotEqual, Any...) for functional files; not in __all__

# Keras' aliases
Convolution1D = Conv1D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Embedding", "Masking", "RepeatVector", "Activation", "Dropout",
           "Flatten", "Reshape", "Permute", "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum",
           "Minimum", "Dot", "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
           "Conv1D", "Convolution1D", "MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D",
           "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalMaxPooling1D", "GlobalMaxPool1D",
           "LayerNormalization", "BatchNormalization", "Attention", "AdditiveAttention", "MultiHeadAttention", "Lambda", "SpatialDropout1D", "GaussianNoise",
           "LSTM", "GRU", "SimpleRNN", "RNN", "LSTMCell", "GRUCell", "SimpleRNNCell", "Bidirectional",
           "TimeDistributed", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"]
