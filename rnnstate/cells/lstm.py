"""LSTMCell.

Equations (Keras; torch's gate order i, f, g, o is the same as Keras' i, f, c, o)::

    z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias          # (B, 4U)
    i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)           # σ = recurrent_activation
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                                           # tanh = activation

``h_t`` is *not* ``tanh(c_t)``: the output gate ``o`` scales it, which is why ``h != tanh(c)``.
"""
from __future__ import annotations

import torch

from .._state import LSTMGates, LSTMState
from .base import GatedCell


class LSTMCell(GatedCell):
    """One LSTM step. State ``LSTMState(h, c)``, each (B, U).

    Equivalent loop over a sequence ``x`` (B, T, F)::

        state = cell.initial_state(B)
        for t in range(T):
            y, state = cell.step(x[:, t], state)
    """

    kind = "lstm"
    n_gates = 4
    state_type = LSTMState
    gate_names = ("i", "f", "g", "o")
    _config_args = GatedCell._config_args + ("unit_forget_bias",)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, **kwargs)

    def _init_keras_bias(self):
        U = self.units
        if self.unit_forget_bias:    # Keras: [init(U), ones(U), init(2U)]
            return torch.cat([torch.as_tensor(self.bias_initializer((U,))), torch.ones(U),
                              torch.as_tensor(self.bias_initializer((2 * U,)))])
        return self.bias_initializer((4 * U,))

    def recurrent_step(self, xw_t, state, rec_mask=None, return_gates=False):
        h, c = state
        hm = h if rec_mask is None else h * rec_mask
        z = torch.addmm(xw_t, hm, self.weight_hh.t())                 # (B, 4U)
        zi, zf, zg, zo = z.chunk(4, 1)
        ra, a = self.recurrent_activation, self.activation
        i, f, g, o = ra(zi), ra(zf), a(zg), ra(zo)
        c = f * c + i * g
        h = o * a(c)
        if return_gates:
            return h, LSTMState(h, c), LSTMGates(i, f, g, o)
        return h, LSTMState(h, c)
