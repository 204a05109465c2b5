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

from .. import _ext
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
    kernel_label = "LSTM"
    onednn_kernel = True
    small_batch_kernel = True     # lstm_sequence has a small-batch form (rnnstate.loop.fused.prefers_small_batch)
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

    # ---- kernels (policy: rnnstate.loop.fused) ---------------------------------------------------------
    def fused_reason(self):
        return self._gated_reason(LSTMCell)

    def run_torch_op(self, x, state, training=False):
        """torch.lstm (oneDNN on CPU, cuDNN on GPU) over x (B, T, F) -> (outputs, final state)."""
        params, has_bias = self._torch_params()
        h0, c0 = state
        out, h, c = torch.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)), params, has_bias, 1, 0.0, training, False, True)
        return out, LSTMState(h.squeeze(0), c.squeeze(0))

    def run_torch_packed(self, data, batch_sizes, start, training=False):
        """torch.lstm over a packed sequence from start [(1, B, U) h, c] -> (data, [h (B, U), c])."""
        params, has_bias = self._torch_params()
        data, h, c = torch.lstm(data, batch_sizes, (start[0], start[1]), params, has_bias, 1, 0.0, training, False)
        return data, [h[0], c[0]]

    def run_cell_op(self, x, state):
        """torch.lstm_cell step by step (short sequences) -> (outputs, final state)."""
        h, c = state
        outs = []
        for t in range(x.shape[1]):
            h, c = torch.lstm_cell(x[:, t], (h, c), self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
            outs.append(h)
        return (h.unsqueeze(1) if len(outs) == 1 else torch.stack(outs, 1)), LSTMState(h, c)

    def compiled_reason(self, x, state):
        return self._compiled_inputs_reason(x, state, None)

    def run_compiled(self, x, state, *, want_states=False, want_gates=False):
        """rnnstate's compiled LSTM loop -> (outputs, final state, (h_seq, c_seq) or None, gates or None)."""
        out, h, c, cs, gates = _ext.lstm_sequence(x, state[0], state[1], self.weight_ih, self.weight_hh,
                                                  self.bias_ih, want_c=want_states, want_gates=want_gates)
        return out, LSTMState(h, c), ((out, cs) if want_states else None), gates

    def run_compiled_train(self, x, state):
        """The compiled loop and its compiled backward (differentiable) -> (outputs, final state)."""
        out, h, c = _ext.lstm_train(x, state[0], state[1], self.weight_ih, self.weight_hh, self.bias_ih)
        return out, LSTMState(h, c)

    def run_mixed_bf16(self, x, state):
        """rnnstate's compiled mixed loop (``mixed_bfloat16`` inference on a CPU with bfloat16 units):
        bfloat16 products with float32 accumulation, gate math and cell state -> (outputs (B, T, U)
        bfloat16, final state float32). The weights are packed for it at every call (a few % of the
        loop's time; a cache could not see updates made through ``.data``, which bump no version)."""
        ops = torch.ops.rnnstate
        b = None if self.bias_ih is None else self.bias_ih.detach()
        out, h, c = ops.lstm_sequence_bf16(x, state[0], state[1], ops.pack_lstm_bf16(self.weight_ih.detach()),
                                           ops.pack_lstm_bf16(self.weight_hh.detach()), b)
        return out, LSTMState(h, c)

    def streaming_step(self):
        """The one-step kernel for eager streaming, ``(x (B, F), h, c, w_ih, w_hh, b_ih) -> (h', c')``
        (``torch.ops.rnnstate.lstm_step``, no autograd), or None."""
        return _ext._lstm_step_eager if self.fused_reason() is None and _ext.unavailable_reason() is None else None

    def stream_step_fn(self):
        """``fn(x (B, F) or (B, 1, F), state) -> (h', LSTMState(h', c'))`` on the compiled one-step kernel
        (no autograd), the weights looked up at every call (weights replaced, updated or cast are seen);
        None without a kernel for this configuration."""
        kernel = self.streaming_step()
        if kernel is None:
            return None
        p, st = self._parameters, LSTMState

        def fn(x, state):
            h, c = kernel(x, state[0], state[1], p["weight_ih"], p["weight_hh"], p.get("bias_ih"))
            return h, st(h, c)
        return fn

    def recompute_sequences(self, x, state0, outputs, *, want_states, want_gates):
        """From the h sequence `outputs` (B, T, U): every gate of every step with one batched matmul on
        h_{t-1}, and c_t = f_t * c_{t-1} + i_t * g_t (one fused multiply-add per step). Returns
        ((h_seq, c_seq) or None, (i, f, g, o) or None); differentiable, in place without autograd."""
        B, T, U = outputs.shape
        h_prev = torch.cat([state0[0].unsqueeze(1), outputs[:, :-1]], 1)              # (B, T, U)
        ra, a = self.recurrent_activation, self.activation
        z = self.project_input(x)                                                    # (B, T, 4U)
        if not torch.is_grad_enabled():
            z.view(B * T, 4 * U).addmm_(h_prev.reshape(B * T, U), self.weight_hh.t())
            z[..., : 2 * U].sigmoid_()                                               # i, f
            z[..., 2 * U: 3 * U].tanh_()                                             # g
            if want_gates:
                z[..., 3 * U:].sigmoid_()                                            # o
            i, f, g, o = z.chunk(4, 2)
        else:
            z = z + h_prev @ self.weight_hh.t()
            zi, zf, zg, zo = z.chunk(4, 2)
            i, f, g, o = ra(zi), ra(zf), a(zg), ra(zo)
        seqs = None
        if want_states:
            ig = i * g                                                               # (B, T, U)
            c = state0[1]
            steps = []
            for t in range(T):
                c = torch.addcmul(ig[:, t], f[:, t], c)
                steps.append(c)
            seqs = (outputs, torch.stack(steps, 1))
        return seqs, ((i, f, g, o) if want_gates else None)
