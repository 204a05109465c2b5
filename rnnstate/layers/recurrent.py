"""LSTM, GRU, SimpleRNN: ``RNN`` + a cell, with Keras' signatures and defaults.

Keras' positional order is kept (``LSTM(units, activation, recurrent_activation, ...)``);
rnnstate-only options are keyword-only: ``return_cell_sequence``, ``return_gate_sequences``, ``path``.
Cell arguments (units, activations, initializers, dropout...) are readable on the layer
(``layer.units``, ``layer.dropout``...) and forwarded from one tuple, not from hand-written properties.
"""
from __future__ import annotations

from .. import _checks
from ..cells import GRUCell, LSTMCell, SimpleRNNCell
from .rnn import RNN

_RNN_ARGS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll")
_LAYER_ARGS = ("name", "trainable", "dtype", "input_shape", "batch_input_shape", "batch_size", "input_dim")


def _split(cls_cell, args: dict, kwargs: dict, use_cudnn="auto", owner=""):
    """Separate the cell's arguments from the RNN layer's."""
    rnn_kw = {k: args.pop(k) for k in _RNN_ARGS}
    for k in ("return_cell_sequence", "return_gate_sequences", "path"):
        rnn_kw[k] = args.pop(k)
    if use_cudnn is True and rnn_kw["path"] == "auto":
        rnn_kw["path"] = "fused"
    elif use_cudnn is False and rnn_kw["path"] == "auto":
        rnn_kw["path"] = "loop"
    if "zero_output_for_mask" in kwargs:
        rnn_kw["zero_output_for_mask"] = kwargs.pop("zero_output_for_mask")
    layer_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in _LAYER_ARGS}
    kwargs.pop("implementation", None)
    kwargs.pop("time_major", None) if kwargs.get("time_major") is False else None
    if layer_kw.get("name"):
        owner = f"{owner} '{layer_kw['name']}'"
    if "return_cell_sequence" in kwargs and cls_cell is not LSTMCell:
        raise _checks.error(owner, f"argument `return_cell_sequence` needs a cell state c, which only an LSTM has; "
                                   f"a {owner.split()[0]}'s only state is h, and its h sequence is its output "
                                   f"sequence (`return_sequences=True`).", TypeError)
    cell = cls_cell(**args, **kwargs, dtype=layer_kw.get("dtype"), _owner=owner)
    cell._owner = None                       # built: from now on the cell speaks for itself
    return cell, rnn_kw, layer_kw


def _note_use_cudnn(layer, use_cudnn, path):
    """Errors and `last_path` name what the user wrote: ``use_cudnn=False``, not the ``path`` it implies."""
    if path == "auto" and use_cudnn in (True, False):
        object.__setattr__(layer, "_loop_asked_by" if use_cudnn is False else "_fused_asked_by",
                           f"use_cudnn={use_cudnn}")


class _CellLayer(RNN):
    """Forwards the cell's configuration as read-only attributes (``layer.units``, ``layer.dropout``)."""

    def __getattr__(self, item):
        if item in self._cell_args:
            return getattr(self._modules["cell"], item)
        return super().__getattr__(item)

    def build(self, input_shape):
        self.cell._owner = _checks.who(self)     # the cell's build errors speak as the layer the user made
        try:
            super().build(input_shape)
        finally:
            self.cell._owner = None

    def get_config(self):
        cfg = {k: v for k, v in super().get_config().items() if k != "cell"}
        cell_cfg = self.cell.get_config()
        for k in self._cell_args:
            cfg[k] = cell_cfg[k]
        for k in ("return_cell_sequence", "return_gate_sequences"):
            if getattr(self, k):
                cfg[k] = True
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class LSTM(_CellLayer):
    """Long Short-Term Memory layer (Keras' ``keras.layers.LSTM``).

    Equations (per step; σ = recurrent_activation, tanh = activation)::

        i, f, g, o = σ(x W_i + h U_i + b_i), σ(x W_f + h U_f + b_f), tanh(x W_c + h U_c + b_c), σ(...)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)          # so h_t != tanh(c_t): the output gate o scales it

    Equivalent loop (what every path computes)::

        state = LSTMState(h=zeros(B, U), c=zeros(B, U))          # or initial_state
        for t in range(T):                                        # reversed if go_backwards
            y, state = layer.cell.step(x[:, t], state)

    Returns (B batch, T timesteps, U units): ``output`` (B, U), or (B, T, U) with
    ``return_sequences``; with ``return_state`` a named result ``(output, h, c)``; extra sequences
    ``c_seq`` (``return_cell_sequence=True``) and ``gate_i, gate_f, gate_g, gate_o``
    (``return_gate_sequences=True``), each (B, T, U), come last.

    Weights (Keras layout): ``kernel (F, 4U)``, ``recurrent_kernel (U, 4U)``, ``bias (4U,)``,
    gates in order i, f, c, o. ``set_weights(keras_layer.get_weights())`` works as is.

    >>> out, h, c = LSTM(4, return_sequences=True, return_state=True)(np.zeros((2, 3, 1)))
    >>> tuple(out.shape), tuple(h.shape), tuple(c.shape)
    ((2, 3, 4), (2, 4), (2, 4))
    """

    _cell_args = LSTMCell._config_args

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto", *,
                 return_cell_sequence=False, return_gate_sequences=False, path="auto", **kwargs):
        args = dict(locals())
        for k in ("self", "kwargs", "__class__", "use_cudnn"):
            args.pop(k, None)
        cell, rnn_kw, layer_kw = _split(LSTMCell, args, kwargs, use_cudnn, "LSTM")
        super().__init__(cell, **rnn_kw, **layer_kw)
        _note_use_cudnn(self, use_cudnn, path)


class GRU(_CellLayer):
    """Gated Recurrent Unit layer (Keras' ``keras.layers.GRU``), both ``reset_after`` variants.

    Equations (σ = recurrent_activation, tanh = activation; ``reset_after=True``)::

        z = σ(x W_z + h U_z + b_z)     r = σ(x W_r + h U_r + b_r)
        h~ = tanh(x W_h + b_h + r * (h U_h + b'_h))       # reset_after=False: tanh(x W_h + (r*h) U_h + b_h)
        h_t = z * h_{t-1} + (1 - z) * h~

    One state: the GRU's output *is* its state, so ``return_state=True`` gives ``(output, h)``.
    Weights (Keras layout): ``kernel (F, 3U)``, ``recurrent_kernel (U, 3U)``, gates z, r, h;
    ``bias (2, 3U)`` with ``reset_after=True`` (row 0 input, row 1 recurrent), else ``(3U,)``.
    Equivalent loop: ``for t in range(T): y, state = layer.cell.step(x[:, t], state)``.
    Extra: ``return_gate_sequences=True`` appends ``gate_z, gate_r, gate_h`` (B, T, U).
    """

    _cell_args = GRUCell._config_args

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, reset_after=True, use_cudnn="auto", *, return_gate_sequences=False,
                 path="auto", **kwargs):
        args = dict(locals())
        for k in ("self", "kwargs", "__class__", "use_cudnn"):
            args.pop(k, None)
        args["return_cell_sequence"] = False
        cell, rnn_kw, layer_kw = _split(GRUCell, args, kwargs, use_cudnn, "GRU")
        super().__init__(cell, **rnn_kw, **layer_kw)
        _note_use_cudnn(self, use_cudnn, path)


class SimpleRNN(_CellLayer):
    """Fully-connected RNN (Keras' ``keras.layers.SimpleRNN``): ``h_t = tanh(x W + h_{t-1} U + b)``.

    Weights: ``kernel (F, U)``, ``recurrent_kernel (U, U)``, ``bias (U,)``. ``return_state=True``
    gives ``(output, h)``. Equivalent loop: ``for t in range(T): y, state = layer.cell.step(x[:, t], state)``.
    """

    _cell_args = SimpleRNNCell._config_args

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, seed=None, *, path="auto", **kwargs):
        args = dict(locals())
        for k in ("self", "kwargs", "__class__"):
            args.pop(k, None)
        args["return_cell_sequence"] = False
        args["return_gate_sequences"] = False
        cell, rnn_kw, layer_kw = _split(SimpleRNNCell, args, kwargs, owner="SimpleRNN")
        super().__init__(cell, **rnn_kw, **layer_kw)
