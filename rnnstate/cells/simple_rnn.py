"""SimpleRNNCell: ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``."""
from __future__ import annotations

import torch

from .. import _ext
from .._state import SimpleRNNState
from .base import GatedCell


class SimpleRNNCell(GatedCell):
    """One Elman step. State ``SimpleRNNState(h)``, (B, U).

    Equivalent loop: ``for t in range(T): y, state = cell.step(x[:, t], state)``.
    """

    kind = "simple_rnn"
    kernel_label = "SimpleRNN"
    n_gates = 1
    state_type = SimpleRNNState
    gate_names = ()
    _config_args = tuple(a for a in GatedCell._config_args if a != "recurrent_activation")

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(units, activation, "sigmoid", use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, dropout, recurrent_dropout, seed,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, **kwargs)

    def recurrent_step(self, xw_t, state, rec_mask=None, return_gates=False):
        (h,) = state
        hm = h if rec_mask is None else h * rec_mask
        h = self.activation(torch.addmm(xw_t, hm, self.weight_hh.t()))
        if return_gates:
            return h, SimpleRNNState(h), ()
        return h, SimpleRNNState(h)

    # ---- kernels (policy: rnnstate.loop.fused) ---------------------------------------------------------
    def fused_reason(self):
        over = self._overrides(SimpleRNNCell, "recurrent_step", "project_input")
        if over is not None:
            return f"{type(self).__name__} overrides `{over}`; the fused kernels implement SimpleRNNCell's equations"
        if self.activation_name not in ("tanh", "relu"):
            return f"activation={self.activation_name!r}; the fused SimpleRNN kernels need 'tanh' or 'relu'"
        return None

    def _relu(self):
        return self.activation_name == "relu"

    def run_torch_op(self, x, state, training=False):
        """torch.rnn_tanh / torch.rnn_relu over x (B, T, F) -> (outputs, final state)."""
        params, has_bias = self._torch_params()
        op = torch.rnn_relu if self._relu() else torch.rnn_tanh
        out, h = op(x, state[0].unsqueeze(0), params, has_bias, 1, 0.0, training, False, True)
        return out, SimpleRNNState(h.squeeze(0))

    def run_torch_packed(self, data, batch_sizes, start, training=False):
        params, has_bias = self._torch_params()
        op = torch.rnn_relu if self._relu() else torch.rnn_tanh
        data, h = op(data, batch_sizes, start[0], params, has_bias, 1, 0.0, training, False)
        return data, [h[0]]

    def run_cell_op(self, x, state):
        op = torch.rnn_relu_cell if self._relu() else torch.rnn_tanh_cell
        h = state[0]
        outs = []
        for t in range(x.shape[1]):
            h = op(x[:, t], h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
            outs.append(h)
        return (h.unsqueeze(1) if len(outs) == 1 else torch.stack(outs, 1)), SimpleRNNState(h)

    def compiled_reason(self, x, state):
        return self._compiled_inputs_reason(x, state, self.bias_hh)

    def run_compiled(self, x, state, *, want_states=False, want_gates=False):
        out, h = _ext.rnn_sequence(x, state[0], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                                   relu=self._relu())
        return out, SimpleRNNState(h), ((out,) if want_states else None), None

    def run_compiled_train(self, x, state):
        out, h = _ext.rnn_train(x, state[0], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                                relu=self._relu())
        return out, SimpleRNNState(h)

    def streaming_step(self):
        """The one-step kernel for eager streaming, ``(x (B, F), h, w_ih, w_hh, b_ih, b_hh, relu) -> h'``
        (``torch.ops.rnnstate.rnn_step``, no autograd), or None."""
        return _ext._rnn_step_eager if self.fused_reason() is None and _ext.unavailable_reason() is None else None

    def stream_step_fn(self):
        """``fn(x (B, F) or (B, 1, F), state) -> (h', SimpleRNNState(h'))`` on the compiled one-step
        kernel (no autograd), the weights looked up at every call; None without a kernel for this
        configuration (b_hh is a zero buffer: not passed)."""
        kernel = self.streaming_step()
        if kernel is None:
            return None
        p, st, relu = self._parameters, SimpleRNNState, self._relu()

        def fn(x, state):
            h = kernel(x, state[0], p["weight_ih"], p["weight_hh"], p.get("bias_ih"), None, relu)
            return h, st(h)
        return fn

    def recompute_sequences(self, x, state0, outputs, *, want_states, want_gates):
        return ((outputs,) if want_states else None), None
