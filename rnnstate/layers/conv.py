"""`Conv1D`: Keras' 1-D convolution (``keras.layers.Conv1D``) on ``torch.nn.functional.conv1d``."""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .. import _checks, activations, initializers, regularizers
from ._weights import check_rank, data_format as _data_format, int_tuple, param
from .base import Layer, WeightRef

PADDINGS = ("valid", "same", "causal")


def conv_length(length, kernel, stride, dilation, padding):
    """Output steps of a 1-D convolution / pooling over `length` steps (None stays None)."""
    if length is None:
        return None
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        return math.ceil(length / stride)
    if padding == "causal":
        length += span - 1
    return max((length - span) // stride + 1, 0)


def same_pads(length, kernel, stride, dilation=1):
    """(left, right) zero padding of Keras' (TF/XLA) ``"same"``: output ceil(L/s), the extra step right."""
    span = (kernel - 1) * dilation + 1
    out = -(-length // stride)
    total = max((out - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


class Conv1D(Layer):
    """1-D convolution over time: (B, T, F) -> (B, T', filters) (``data_format="channels_last"``).

    ``y[b, t, o] = activation(bias[o] + sum_{k, i} x[b, t*s + k*d - pad, g(o)*F/G + i] * kernel[k, i, o])``
    with s = `strides`, d = `dilation_rate`, G = `groups` (output channel o reads only its group's F/G
    input channels). `padding`: ``"valid"`` (no padding: T' = (T - (K-1)d - 1) // s + 1), ``"same"``
    (T' = ceil(T / s), zeros split as Keras does, the extra one on the right) or ``"causal"`` ((K-1)d
    zeros on the left: y_t sees only x_{<=t}).

    Weights (Keras layout): ``kernel (K, F/G, filters)``, ``bias (filters,)``; stored in torch's layout
    ``(filters, F/G, K)`` so a call does no re-layout. The output carries no mask (as in Keras).
    """

    _config_args = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                    "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                    "bias_regularizer")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        for k, v in (("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                     ("bias_constraint", bias_constraint)):
            if v is not None:
                raise _checks.error("Conv1D", f"argument `{k}` is not supported yet by rnnstate; received {v!r}.",
                                    NotImplementedError)
        super().__init__(**kwargs)
        self.filters = _checks.positive_int(self, "filters", filters, _checks.INT32_MAX)
        self.kernel_size = int_tuple(self, "kernel_size", kernel_size)
        self.strides = int_tuple(self, "strides", strides)
        self.dilation_rate = int_tuple(self, "dilation_rate", dilation_rate)
        self.padding = _checks.one_of(self, "padding", str(padding).lower(), PADDINGS)
        self.data_format = _data_format(self, data_format)
        self.groups = _checks.positive_int(self, "groups", groups, _checks.INT32_MAX)
        if self.filters % self.groups:
            raise _checks.error(self, f"argument `filters` ({self.filters}) must be divisible by `groups` "
                                      f"({self.groups}).")
        if self.strides[0] > 1 and self.dilation_rate[0] > 1:
            raise _checks.error(self, f"`strides` > 1 and `dilation_rate` > 1 can't be combined (as in Keras); "
                                      f"received strides={self.strides}, dilation_rate={self.dilation_rate}.")
        if self.padding == "causal" and self.data_format == "channels_first":
            raise _checks.error(self, "`padding='causal'` needs data_format='channels_last' (as in Keras).")
        self.activation = _checks.resolved(self, "activation", activations.get, activation)
        self.use_bias = bool(use_bias)
        for k, v in (("kernel_initializer", kernel_initializer), ("bias_initializer", bias_initializer)):
            setattr(self, k, _checks.resolved(self, k, initializers.get_for_weight, v))
        for k, v in (("kernel_regularizer", kernel_regularizer), ("bias_regularizer", bias_regularizer)):
            setattr(self, k, _checks.resolved(self, k, regularizers.get, v))

    # ---- weights --------------------------------------------------------------------------------------
    def _channels(self, shape):
        return shape[-1] if self.data_format == "channels_last" else shape[1]

    def build(self, input_shape):
        check_rank(self, input_shape, 3, "(batch, steps, channels)")
        ch = self._channels(input_shape)
        if ch is None:
            raise _checks.error(self, f"the channel axis of the input must be known; received shape "
                                      f"{_checks.fmt_shape(input_shape)}.")
        if ch % self.groups:
            raise _checks.error(self, f"the input's {ch} channels must be divisible by `groups` ({self.groups}).")
        self.input_channels = int(ch)
        k = self.kernel_size[0]
        kernel = param(self.kernel_initializer, (k, ch // self.groups, self.filters), self,
                       "kernel_initializer")                                   # (K, F/G, O) Keras
        self.weight = torch.nn.Parameter(kernel.detach().permute(2, 1, 0).contiguous())    # (O, F/G, K) torch
        self.bias = param(self.bias_initializer, (self.filters,), self, "bias_initializer") if self.use_bias else None

    def _keras_weights(self):
        if not self.built:
            return []
        k = self.kernel_size[0]
        shape = (k, self.input_channels // self.groups, self.filters)
        ws = [WeightRef(self, "kernel", shape, lambda: self.weight.detach().permute(2, 1, 0),
                        lambda v: self.weight.copy_(v.permute(2, 1, 0)))]
        if self.use_bias:
            ws.append(WeightRef(self, "bias", self.bias.shape, lambda: self.bias.detach(), self.bias.copy_))
        return ws

    def _own_penalties(self):
        if not self.built:
            return []
        out = []
        if self.kernel_regularizer is not None:
            out.append(self.kernel_regularizer(self.weight))
        if self.bias_regularizer is not None and self.bias is not None:
            out.append(self.bias_regularizer(self.bias))
        return out

    # ---- shapes ---------------------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 3, "(batch, steps, channels)")
        if self.built:
            _check_channels(self, self.input_channels, self._channels(input_shape), input_shape)
        cl = self.data_format == "channels_last"
        steps = input_shape[1] if cl else input_shape[2]
        out = conv_length(steps, self.kernel_size[0], self.strides[0], self.dilation_rate[0], self.padding)
        if out == 0:                                 # torch refuses an empty output ("Kernel size can't be greater")
            span = (self.kernel_size[0] - 1) * self.dilation_rate[0] + 1
            raise _checks.error(self, f"a kernel spanning {span} steps (kernel_size {self.kernel_size[0]}, "
                                      f"dilation_rate {self.dilation_rate[0]}, padding 'valid') needs at least {span} "
                                      f"steps; received shape {_checks.fmt_shape(tuple(input_shape))}.")
        return (input_shape[0], out, self.filters) if cl else (input_shape[0], self.filters, out)

    def compute_mask(self, inputs, mask=None):
        return None                                  # Keras: convolutions drop the mask

    # ---- call -----------------------------------------------------------------------------------------
    def forward(self, x, training=None):
        if x.dim() != 3 or self._channels(x.shape) != self.input_channels or \
                (self.padding == "valid" and x.shape[1 if self.data_format == "channels_last" else 2]
                 < (self.kernel_size[0] - 1) * self.dilation_rate[0] + 1):
            self.compute_output_shape(tuple(x.shape))
        if self.data_format == "channels_last":
            x = x.transpose(1, 2)                                            # (B, F, T)
        k, s, d = self.kernel_size[0], self.strides[0], self.dilation_rate[0]
        if self.padding == "causal":
            x = F.pad(x, ((k - 1) * d, 0))
        elif self.padding == "same":
            x = F.pad(x, same_pads(x.shape[-1], k, s, d))
        y = F.conv1d(x, self.weight, self.bias, stride=s, dilation=d, groups=self.groups)   # (B, O, T')
        if self.data_format == "channels_last":
            y = y.transpose(1, 2)                                            # (B, T', O)
        return self.activation(y)


def _check_channels(layer, expected, got, shape):
    if got is not None and int(got) != expected:
        raise _checks.error(layer, f"was built for inputs with {expected} channels; received shape "
                                   f"{_checks.fmt_shape(tuple(shape))}.")
