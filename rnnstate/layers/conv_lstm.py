"""ConvLSTM1D, ConvLSTM2D, ConvLSTM3D: ``RNN`` + a ``ConvLSTMCell``, with Keras 3's signatures and defaults.

Shapes (channels last, Keras' default; B batch, T timesteps, S spatial dims, C channels, F filters)::

    input   (B, T, *S, C)
    output  (B, *S', F), or (B, T, *S', F) with return_sequences
    h, c    (B, *S', F)              # return_state: output, h, c  (named: res.h, res.c)

``S'`` is the input convolution's output: ``padding="same"`` -> ceil(S / strides), ``"valid"`` ->
(S - (K - 1) * dilation - 1) // strides + 1. With ``data_format="channels_first"`` the channel axis
comes right after T (inputs) or B (states). The time loop, return flags, ``initial_state``, masks,
``go_backwards`` and ``stateful`` (``reset_states`` / ``get_states`` / ``set_states``) are the RNN
layer's, as for ``LSTM``; no fused kernel exists (``layer.last_path`` says so).
"""
from __future__ import annotations

from .. import _checks
from ..cells.conv_lstm import ConvLSTMCell
from .recurrent import _CellLayer

_LAYER_ARGS = ("name", "trainable", "dtype", "input_shape", "batch_input_shape", "batch_size", "input_dim")
_RNN_KW = ("unroll", "zero_output_for_mask")


class ConvLSTM(_CellLayer):
    """Base of ConvLSTM1D/2D/3D (Keras' ``ConvLSTM``); subclasses set ``rank``.

    Equations (``*`` a convolution; σ = recurrent_activation, tanh = activation)::

        z = kernel * x_t + bias + recurrent_kernel * h_{t-1}     # input conv: strides, padding, dilation;
        i, f, g, o = σ(z_i), σ(z_f), tanh(z_g), σ(z_o)           # recurrent conv: stride 1, "same"
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Equivalent loop: ``for t in range(T): y, state = layer.cell.step(x[:, t], state)``.

    Weights (Keras layout): ``kernel (*K, C, 4F)``, ``recurrent_kernel (*K, F, 4F)``, ``bias (4F,)``,
    gates i, f, c, o; ``set_weights(keras_layer.get_weights())`` works as is.
    """

    rank = None
    _cell_args = tuple(a for a in ConvLSTMCell._config_args if a != "rank")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, *, path="auto", **kwargs):
        owner = type(self).__name__ + (f" '{kwargs['name']}'" if isinstance(kwargs.get("name"), str) else "")
        if activity_regularizer is not None:
            raise _checks.error(owner, f"argument `activity_regularizer` is not supported yet by rnnstate; "
                                       f"received {activity_regularizer!r}. Pass None (the default).",
                                NotImplementedError)
        rnn_kw = {k: kwargs.pop(k) for k in _RNN_KW if k in kwargs}
        layer_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in _LAYER_ARGS}
        if kwargs:
            raise _checks.unknown_kwargs(owner, kwargs)
        cell = ConvLSTMCell(self.rank, filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
                            recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
                            bias_initializer, unit_forget_bias, kernel_regularizer, recurrent_regularizer,
                            bias_regularizer, kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                            recurrent_dropout, seed, dtype=layer_kw.get("dtype"), _owner=owner)
        cell._owner = None
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, path=path, **rnn_kw, **layer_kw)

    # ---- shapes ---------------------------------------------------------------------------------------
    @property
    def _input_ndim(self):
        return self.rank + 3         # (B, T, *S, C)

    def _check_rank(self, owner, shape):
        _checks.conv_rnn_input_rank(owner, shape, self.rank, self.cell.data_format)

    def _check_input_shape(self, shape):
        self._check_rank(self, shape)
        if self.built:
            _checks.conv_rnn_input_shape(self, self._built_step, tuple(shape[2:]))

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        self.cell._owner = _checks.who(self)     # the cell's build errors speak as the layer the user made
        try:
            self.cell._maybe_build((input_shape[0], *input_shape[2:]))
        finally:
            self.cell._owner = None
        self._built_step = tuple(input_shape[2:])
        self.input_dim = self.cell.input_dim

    def _state_shapes(self, batch):
        if self.cell.state_shapes is None:
            raise _checks.no_state_yet(self)
        return [(batch, *s) for s in self.cell.state_shapes]

    def _output_tail(self):
        return self.cell.state_shapes[0]


class ConvLSTM1D(ConvLSTM):
    """1-D convolutional LSTM (Keras' ``keras.layers.ConvLSTM1D``): input (B, T, steps, C) -> (B, steps', F).

    >>> out, h, c = ConvLSTM1D(4, 3, padding="same", return_state=True)(np.zeros((2, 5, 7, 1)))
    >>> tuple(out.shape), tuple(h.shape), tuple(c.shape)
    ((2, 7, 4), (2, 7, 4), (2, 7, 4))
    """

    rank = 1


class ConvLSTM2D(ConvLSTM):
    """2-D convolutional LSTM (Keras' ``keras.layers.ConvLSTM2D``): input (B, T, rows, cols, C) ->
    (B, rows', cols', F); see :class:`ConvLSTM` for equations, weights and flags.

    >>> ConvLSTM2D(4, (3, 3), return_sequences=True)(np.zeros((2, 5, 6, 6, 1))).shape
    torch.Size([2, 5, 4, 4, 4])
    """

    rank = 2


class ConvLSTM3D(ConvLSTM):
    """3-D convolutional LSTM (Keras' ``keras.layers.ConvLSTM3D``): input (B, T, d1, d2, d3, C) ->
    (B, d1', d2', d3', F)."""

    rank = 3
