"""ConvLSTMCell: the LSTM with convolutions in place of matmuls (Keras' ``ConvLSTMCell``, rank 1, 2 or 3).

Equations (``*`` a convolution; ``x_t`` (B, *S, C) and states (B, *S', F), channels last)::

    z = conv(x_t, kernel; strides, padding, dilation_rate) + bias
        + conv(h_{t-1}, recurrent_kernel; stride 1, padding "same")     # (B, *S', 4F)
    i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)                  # σ = recurrent_activation
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                                                  # tanh = activation

The input convolution sets the spatial shape S' of the states (``padding="valid"`` shrinks it,
``strides`` subsample it); the recurrent convolution keeps it (always stride 1, ``"same"``, no dilation,
as in Keras). Gates in Keras' order i, f, c, o, which is torch's i, f, g, o.

Weights are stored in torch's conv layout (``weight_ih (4F, C, *K)``, ``weight_hh (4F, F, *K)``,
``bias (4F,)``) so a step runs ``torch.nn.functional.conv{1,2,3}d`` with no re-layout; Keras' layout
(``kernel (*K, C, 4F)``, ``recurrent_kernel (*K, F, 4F)``) exists only in ``_keras_weights``. Inside a
step the gates are computed in torch's layout too, (B, 4F, *S'), each gate one contiguous block; states
enter and leave in the layer's ``data_format`` (channels-last states are views of channels-first memory).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .. import _checks, regularizers
from .._state import LSTMState
from ..layers.base import WeightRef, init_weight
from .base import Cell, _act_name

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
PADDINGS = ("valid", "same")
DATA_FORMATS = ("channels_last", "channels_first")
_MAX_INT = 2 ** 31 - 1
_NOT_YET = ("kernel_constraint", "recurrent_constraint", "bias_constraint")


def conv_out_len(length, kernel, stride, dilation, padding):
    """Keras' output length of one spatial axis (None stays None)."""
    if length is None:
        return None
    if padding == "same":
        return math.ceil(length / stride)
    return max((length - (kernel - 1) * dilation - 1) // stride + 1, 0)


def same_pads(length, kernel, stride, dilation=1):
    """(before, after) zeros of Keras' (TF/XLA) ``"same"``: output ceil(L/s), the odd zero after."""
    span = (kernel - 1) * dilation + 1
    total = max((-(-length // stride) - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


def _int_tuple(owner, arg, value, n):
    vals = tuple(value) if isinstance(value, (list, tuple)) else (value,) * n
    if len(vals) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise _checks.error(owner, f"argument `{arg}` must be an integer or a tuple of {n} integers; "
                                   f"received {value!r}.")
    out = tuple(_checks.positive_int(owner, arg, v) for v in vals)
    if max(out) > _MAX_INT:
        raise _checks.error(owner, f"argument `{arg}` must hold integers of at most {_MAX_INT} (torch's conv "
                                   f"limit); received {value!r}.")
    return out


class ConvLSTMCell(Cell):
    """One ConvLSTM step of rank 1, 2 or 3. State ``LSTMState(h, c)``, each (B, *S', F) (channels
    last) or (B, F, *S') (channels first).

    Equivalent loop over a sequence ``x`` (B, T, *S, C)::

        state = cell.initial_state(B)
        for t in range(T):
            y, state = cell.step(x[:, t], state)
    """

    state_type = LSTMState
    _config_args = ("rank", "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
                    "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                    "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
                    "recurrent_regularizer", "bias_regularizer", "dropout", "recurrent_dropout", "seed")

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, _owner=None, **kwargs):
        self._owner = _owner
        for k, v in zip(_NOT_YET, (kernel_constraint, recurrent_constraint, bias_constraint)):
            if v is not None:
                raise _checks.error(_owner or type(self).__name__, f"argument `{k}` is not supported yet by "
                                    f"rnnstate; received {v!r}. Pass None (the default).", NotImplementedError)
        super().__init__(**kwargs)
        me = _owner or self
        if rank not in (1, 2, 3) or isinstance(rank, bool):
            raise _checks.error(me, f"argument `rank` must be 1, 2 or 3; received {rank!r}.")
        self.rank = int(rank)
        self.filters = _checks.positive_int(me, "filters", filters)
        self.kernel_size = _int_tuple(me, "kernel_size", kernel_size, rank)
        self.strides = _int_tuple(me, "strides", strides, rank)
        self.dilation_rate = _int_tuple(me, "dilation_rate", dilation_rate, rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise _checks.error(me, f"arguments `strides` > 1 and `dilation_rate` > 1 can't be combined (as in "
                                    f"Keras); received strides={self.strides}, dilation_rate={self.dilation_rate}.")
        self.padding = _checks.one_of(me, "padding", str(padding).lower(), PADDINGS)
        self.data_format = _checks.one_of(me, "data_format", data_format or "channels_last", DATA_FORMATS)
        self._keras_recurrent_args(me, activation, recurrent_activation, use_bias,
                                   {"kernel_initializer": kernel_initializer,
                                    "recurrent_initializer": recurrent_initializer,
                                    "bias_initializer": bias_initializer},
                                   {"kernel_regularizer": kernel_regularizer,
                                    "recurrent_regularizer": recurrent_regularizer,
                                    "bias_regularizer": bias_regularizer}, dropout, recurrent_dropout, seed)
        self.unit_forget_bias = bool(unit_forget_bias)
        k = math.prod(self.kernel_size)
        self._size_arg = ("kernel_size", self.kernel_size) if k >= self.filters else ("filters", self.filters)
        _checks.weights_fit(me, *self._size_arg, f"the recurrent kernel ({', '.join(map(str, self.kernel_size))}"
                            f", {self.filters}, {4 * self.filters})", k * self.filters * 4 * self.filters)
        self.units = self.filters               # the LSTM's name for the channel count of h and c
        self.state_size = [self.filters, self.filters]
        self.output_size = self.filters
        self.state_shapes = None                # per sample, set at build: [(*S', F)] * 2 (channels last)
        pads = [same_pads(1, k, 1) for k in self.kernel_size]     # the recurrent conv: stride 1, "same"
        self._rec_pad = tuple(a for a, _ in pads) if all(a == b for a, b in pads) else 0
        self._rec_fpad = None if self._rec_pad != 0 else [p for ab in reversed(pads) for p in ab]

    # ---- shapes -----------------------------------------------------------------------------------------
    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else -self.rank - 1

    def _spatial(self, step_shape):
        """Spatial dims of a step shape (B, *S, C) / (B, C, *S)."""
        return tuple(step_shape[1:-1] if self.data_format == "channels_last" else step_shape[2:])

    def step_output_shape(self, step_shape):
        """(B, *S', F) (or (B, F, *S')) for a step input of `step_shape`."""
        out = tuple(conv_out_len(n, k, s, d, self.padding) for n, k, s, d in
                    zip(self._spatial(step_shape), self.kernel_size, self.strides, self.dilation_rate))
        return (step_shape[0], *out, self.filters) if self.data_format == "channels_last" else \
            (step_shape[0], self.filters, *out)

    def initial_state(self, batch_size, device=None, dtype=torch.float32):
        z = torch.zeros(batch_size, *self.state_shapes[0], device=device, dtype=dtype)
        return LSTMState(z, z)

    # ---- weights ----------------------------------------------------------------------------------------
    def build(self, step_shape):
        """`step_shape`: one step's input shape, (B, *S, C) channels last or (B, C, *S)."""
        me = self._owner or self
        ch = step_shape[-1] if self.data_format == "channels_last" else step_shape[1]
        spatial = self._spatial(step_shape)
        if ch is None or None in spatial:
            raise _checks.error(me, f"needs the spatial and channel dimensions of the input known (as Keras' "
                                    f"ConvLSTM layers do); received shape {_checks.fmt_shape(tuple(step_shape))} "
                                    f"for one step.")
        out = self.step_output_shape(step_shape)[1:]
        if 0 in out:
            raise _checks.error(me, f"with kernel_size={self.kernel_size}, strides={self.strides}, "
                                    f"dilation_rate={self.dilation_rate} and padding={self.padding!r}, an input "
                                    f"step of spatial shape {spatial} leaves no output (state shape {out}); "
                                    f"expected spatial dims of at least the kernel's span, or padding='same'.")
        self.input_dim = int(ch)
        F4, K = 4 * self.filters, self.kernel_size
        _checks.weights_fit(me, *self._size_arg, f"with {self.input_dim} input channels, the kernel and "
                            f"recurrent kernel", math.prod(K) * (self.input_dim + self.filters) * F4)
        self.state_shapes = [tuple(out)] * 2
        to_torch = (self.rank + 1, self.rank, *range(self.rank))      # Keras (*K, C, 4F) -> torch (4F, C, *K)
        kshape, rshape = (*K, self.input_dim, F4), (*K, self.filters, F4)
        kernel = init_weight(me, "kernel_initializer", lambda: self.kernel_initializer(kshape), kshape)
        rec = init_weight(me, "recurrent_initializer", lambda: self.recurrent_initializer(rshape), rshape)
        self.weight_ih = nn.Parameter(kernel.permute(*to_torch).contiguous())      # (4F, C, *K)
        self.weight_hh = nn.Parameter(rec.permute(*to_torch).contiguous())         # (4F, F, *K)
        if self.use_bias:
            self.bias = nn.Parameter(init_weight(me, "bias_initializer", self._init_bias, (F4,)))
        else:
            self.bias = None

    def _init_bias(self):
        Fn = self.filters
        if self.unit_forget_bias:    # Keras: [init(F), ones(F), init(2F)]
            return torch.cat([torch.as_tensor(self.bias_initializer((Fn,))), torch.ones(Fn),
                              torch.as_tensor(self.bias_initializer((2 * Fn,)))])
        return self.bias_initializer((4 * Fn,))

    def _keras_weights(self):
        if not self.built:
            return []
        r = self.rank
        to_keras, to_torch = (*range(2, r + 2), 1, 0), (r + 1, r, *range(r))

        def ref(name, attr, shape):
            return WeightRef(self, name, shape, lambda: getattr(self, attr).detach().permute(*to_keras),
                             lambda v: getattr(self, attr).copy_(v.permute(*to_torch)))

        ws = [ref("kernel", "weight_ih", (*self.kernel_size, self.input_dim, 4 * self.filters)),
              ref("recurrent_kernel", "weight_hh", (*self.kernel_size, self.filters, 4 * self.filters))]
        if self.use_bias:
            ws.append(WeightRef(self, "bias", (4 * self.filters,), lambda: self.bias.detach(), self.bias.copy_))
        return ws

    def _own_penalties(self):
        if not self.built:
            return []
        out = []
        to_keras = (*range(2, self.rank + 2), 1, 0)
        for reg, w in ((self.kernel_regularizer, self.weight_ih), (self.recurrent_regularizer, self.weight_hh)):
            if reg is not None:
                out.append(reg(w if regularizers.is_sum_based(reg) else w.permute(*to_keras)))
        if self.bias_regularizer is not None and self.bias is not None:
            out.append(self.bias_regularizer(self.bias))
        return out

    # ---- the step -----------------------------------------------------------------------------------------
    def _to_torch(self, x):
        """(N, *S, C) -> (N, C, *S) (a view; channels first is torch's layout already)."""
        return x.movedim(-1, 1) if self.data_format == "channels_last" else x

    def _from_torch(self, y):
        return y.movedim(1, -1) if self.data_format == "channels_last" else y

    def project_input(self, x):
        """x (..., *S, C) -> conv(x, kernel) + bias, (..., 4F, *S'): the input part of every gate, for any
        leading dims (all steps at once), in torch's layout (gates outermost, so each gate is one contiguous
        block: element-wise ops on a channels-last gate slice run ~100x slower in torch). An input of 4C
        channels is one copy per gate (i, f, c, o), each with its own dropout mask (``gate_dropout``): a
        grouped conv (groups=4) lets gate g see only copy g."""
        lead = x.shape[:x.dim() - self.rank - 1]
        xs = self._to_torch(x.reshape(-1, *x.shape[len(lead):])).contiguous()    # (N, C, *S); contiguous, so the
        # conv's output is too (a channels-last input would make it channels-last: slow gate slices)
        if self.padding == "same":
            pads = [same_pads(n, k, s, d) for n, k, s, d in
                    zip(xs.shape[2:], self.kernel_size, self.strides, self.dilation_rate)]
            if any(a != b for a, b in pads):
                xs = F.pad(xs, [p for ab in reversed(pads) for p in ab])
                pad = 0
            else:
                pad = tuple(a for a, _ in pads)
        else:
            pad = 0
        groups = 4 if xs.shape[1] == 4 * self.input_dim else 1
        z = _CONV[self.rank](xs, self.weight_ih, self.bias, self.strides, pad, self.dilation_rate, groups)
        return z.reshape(*lead, *z.shape[1:])                                    # (..., 4F, *S')

    def recurrent_step(self, xw_t, state, rec_mask=None, return_gates=False):
        """xw_t (B, 4F, *S') from ``project_input``; state h, c in the layer's layout. The gates run in
        torch's layout; the new h, c are returned in the layer's layout (views, no copy)."""
        h, c = state
        hm = self._to_torch(h).contiguous()                                      # (B, F, *S'), a no-op after step 1
        groups = 1
        if rec_mask is not None:
            rm = self._to_torch(rec_mask)
            if rm.shape[1] == 4 * self.filters:                                  # one mask per gate (gate_dropout)
                hm, groups = hm.repeat(1, 4, *([1] * self.rank)), 4              # (B, 4F, *S'): a copy per gate
            hm = hm * rm
        if self._rec_fpad is not None:                                           # even kernel: the extra zero after
            hm = F.pad(hm, self._rec_fpad)
        z = xw_t + _CONV[self.rank](hm, self.weight_hh, None, 1, self._rec_pad, 1, groups)   # (B, 4F, *S')
        zi, zf, zg, zo = z.chunk(4, 1)                                           # each (B, F, *S')
        ra, a = self.recurrent_activation, self.activation
        i, f, g, o = ra(zi), ra(zf), a(zg), ra(zo)
        c = f * self._to_torch(c).contiguous() + i * g
        h = o * a(c)
        h, c = self._from_torch(h), self._from_torch(c)
        return h, LSTMState(h, c)

    def gate_dropout(self, x, state):
        """Keras' ConvLSTM dropout (training): four independent masks, one per gate i, f, c, o, each of one
        step's shape, drawn once per call and kept for all steps. Returns (x with a masked copy per gate,
        (B, T, *S, 4C); the recurrent masks (B, *S', 4F) or None), which ``project_input`` and
        ``recurrent_step`` convolve with groups=4."""
        ca = x.dim() - 1 if self.data_format == "channels_last" else 2
        if self.dropout > 0.0:
            reps = [1] * x.dim()
            reps[ca] = 4
            shape = list(x.shape)
            shape[1], shape[ca] = 1, 4 * shape[ca]                    # (B, 1, *S, 4C): fixed over time
            x = x.repeat(*reps) * self.dropout_mask(tuple(shape), self.dropout, x.device, x.dtype)
        rec = None
        if self.recurrent_dropout > 0.0:
            shape = list(state[0].shape)
            shape[self._channel_axis] *= 4                                # (B, *S', 4F)
            rec = self.dropout_mask(tuple(shape), self.recurrent_dropout, x.device, x.dtype)
        return x, rec

    # ---- kernels ------------------------------------------------------------------------------------------
    def fused_reason(self):
        return ("ConvLSTM has no fused kernel (torch has no ConvLSTM op); each step runs two torch "
                "convolutions, the input one for all steps at once")

    @property
    def activation_name(self):
        return _act_name(self.activation)

    @property
    def recurrent_activation_name(self):
        return _act_name(self.recurrent_activation)
