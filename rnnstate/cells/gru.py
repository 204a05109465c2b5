"""GRUCell (Keras' two variants; stored in torch's gate order r, z, n).

``reset_after=True`` (Keras 3 default, same as torch/cuDNN)::

    xz, xr, xh = x_t @ kernel + bias[0]
    hz, hr, hh = h_{t-1} @ recurrent_kernel + bias[1]
    z = σ(xz + hz)   r = σ(xr + hr)   h~ = tanh(xh + r * hh)
    h_t = z * h_{t-1} + (1 - z) * h~

``reset_after=False`` (Keras 2 default): ``h~ = tanh(xh + (r * h_{t-1}) @ recurrent_kernel_h)`` and
a single bias (3U,). The GRU has one state, ``h``: its output *is* its state.
"""
from __future__ import annotations

import torch

from .._state import GRUGates, GRUState
from .base import GatedCell


class GRUCell(GatedCell):
    """One GRU step. State ``GRUState(h)``, (B, U).

    Equivalent loop: ``for t in range(T): y, state = cell.step(x[:, t], state)``.
    """

    kind = "gru"
    n_gates = 3
    state_type = GRUState
    gate_names = ("z", "r", "h")
    _config_args = GatedCell._config_args + ("reset_after",)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, reset_after=True, seed=None,
                 **kwargs):
        self.reset_after = bool(reset_after)
        super().__init__(units, activation, recurrent_activation, use_bias, kernel_initializer,
                         recurrent_initializer, bias_initializer, dropout, recurrent_dropout, seed,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, **kwargs)

    def _keras_bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _bias_hh_is_param(self):
        return self.reset_after

    def recurrent_step(self, xw_t, state, rec_mask=None, return_gates=False):
        (h,) = state
        U = self.units
        hm = h if rec_mask is None else h * rec_mask
        xr, xz, xn = xw_t.chunk(3, 1)                                   # torch order r, z, n
        ra, a = self.recurrent_activation, self.activation
        if self.reset_after:
            gh = torch.addmm(self.bias_hh, hm, self.weight_hh.t()) if self.bias_hh is not None \
                else hm @ self.weight_hh.t()                              # (B, 3U)
            hr, hz, hn = gh.chunk(3, 1)
            r, z = ra(xr + hr), ra(xz + hz)
            n = a(xn + r * hn)
        else:
            w_rz, w_n = self.weight_hh[: 2 * U], self.weight_hh[2 * U:]
            hr, hz = (hm @ w_rz.t()).chunk(2, 1)
            r, z = ra(xr + hr), ra(xz + hz)
            n = a(xn + (r * hm) @ w_n.t())
        h = z * h + (1.0 - z) * n
        if return_gates:
            return h, GRUState(h), GRUGates(z, r, n)
        return h, GRUState(h)
