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

from .. import _ext
from .._state import GRUGates, GRUState
from .base import GatedCell


class GRUCell(GatedCell):
    """One GRU step. State ``GRUState(h)``, (B, U).

    Equivalent loop: ``for t in range(T): y, state = cell.step(x[:, t], state)``.
    """

    kind = "gru"
    kernel_label = "GRU"
    small_batch_kernel = True     # gru_sequence has a small-batch form (the compiled loop runs anyway: label only)
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

    # ---- kernels (policy: rnnstate.loop.fused) ---------------------------------------------------------
    def fused_reason(self):
        reason = self._gated_reason(GRUCell)
        if reason is None and not self.reset_after:
            return "reset_after=False; the fused GRU kernel implements reset_after=True only"
        return reason

    def run_torch_op(self, x, state, training=False):
        """torch.gru (torch's native CPU loop; cuDNN on GPU) over x (B, T, F) -> (outputs, final state)."""
        params, has_bias = self._torch_params()
        out, h = torch.gru(x, state[0].unsqueeze(0), params, has_bias, 1, 0.0, training, False, True)
        return out, GRUState(h.squeeze(0))

    def run_torch_packed(self, data, batch_sizes, start, training=False):
        params, has_bias = self._torch_params()
        data, h = torch.gru(data, batch_sizes, start[0], params, has_bias, 1, 0.0, training, False)
        return data, [h[0]]

    def run_cell_op(self, x, state):
        """torch.gru_cell step by step (short sequences) -> (outputs, final state)."""
        h = state[0]
        outs = []
        for t in range(x.shape[1]):
            h = torch.gru_cell(x[:, t], h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
            outs.append(h)
        return (h.unsqueeze(1) if len(outs) == 1 else torch.stack(outs, 1)), GRUState(h)

    def compiled_reason(self, x, state):
        return self._compiled_inputs_reason(x, state, self.bias_hh)

    def run_compiled(self, x, state, *, want_states=False, want_gates=False):
        """rnnstate's compiled GRU loop -> (outputs, final state, (h_seq,) or None, (z, r, n) or None)."""
        out, h, gates = _ext.gru_sequence(x, state[0], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                                          want_gates=want_gates)
        return out, GRUState(h), ((out,) if want_states else None), gates

    def run_compiled_train(self, x, state):
        out, h = _ext.gru_train(x, state[0], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return out, GRUState(h)

    def streaming_step(self):
        """The one-step kernel for eager streaming, ``(x (B, F), h, w_ih, w_hh, b_ih, b_hh) -> h'``
        (``torch.ops.rnnstate.gru_step``, no autograd), or None."""
        return _ext._gru_step_eager if self.fused_reason() is None and _ext.unavailable_reason() is None else None

    def stream_step_fn(self):
        """``fn(x (B, F) or (B, 1, F), state) -> (h', GRUState(h'))`` on the compiled one-step kernel (no autograd),
        the weights looked up at every call; None without a kernel for this configuration."""
        kernel = self.streaming_step()
        if kernel is None:
            return None
        p, st = self._parameters, GRUState

        def fn(x, state):
            h = kernel(x, state[0], p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
            return h, st(h)
        return fn

    def recompute_sequences(self, x, state0, outputs, *, want_states, want_gates):
        """Every gate of every step from the h sequence `outputs` with one batched matmul on h_{t-1}.
        Returns ((h_seq,) or None, (z, r, n) or None)."""
        h_prev = torch.cat([state0[0].unsqueeze(1), outputs[:, :-1]], 1)              # (B, T, U)
        ra, a = self.recurrent_activation, self.activation
        xr, xz, xn = self.project_input(x).chunk(3, 2)                              # (B, T, U) each
        hr, hz, hn = torch.nn.functional.linear(h_prev, self.weight_hh, self.bias_hh).chunk(3, 2)
        r, z = ra(xr + hr), ra(xz + hz)
        n = a(xn + r * hn)
        return ((outputs,) if want_states else None), ((z, r, n) if want_gates else None)
