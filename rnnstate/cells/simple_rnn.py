"""SimpleRNNCell: ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``."""
from __future__ import annotations

import torch

from .._state import SimpleRNNState
from .base import GatedCell


class SimpleRNNCell(GatedCell):
    """One Elman step. State ``SimpleRNNState(h)``, (B, U).

    Equivalent loop: ``for t in range(T): y, state = cell.step(x[:, t], state)``.
    """

    kind = "simple_rnn"
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
