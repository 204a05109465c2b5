"""1-D pooling over time: MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .. import _checks
from ._weights import check_rank, data_format as _data_format, int_tuple
from .base import Layer, to_mask
from .conv import conv_length, same_pads


class _Pooling1D(Layer):
    """Windows of `pool_size` steps every `strides` steps (default: `pool_size`); ``padding="same"``
    pads as Keras does and ignores the padding (max over, or average of, the real steps only).
    (B, T, F) -> (B, T', F). The output carries no mask (Keras)."""

    _config_args = ("pool_size", "strides", "padding", "data_format")

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.pool_size = int_tuple(self, "pool_size", pool_size)
        self.strides = int_tuple(self, "strides", strides) if strides is not None else self.pool_size
        self.padding = _checks.one_of(self, "padding", str(padding).lower(), ("valid", "same"))
        self.data_format = _data_format(self, data_format)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 3, "(batch, steps, features)")
        cl = self.data_format == "channels_last"
        steps = conv_length(input_shape[1] if cl else input_shape[2], self.pool_size[0], self.strides[0], 1,
                            self.padding)
        return (input_shape[0], steps, input_shape[2]) if cl else (input_shape[0], input_shape[1], steps)

    def compute_mask(self, inputs, mask=None):
        return None

    def forward(self, x, training=None):
        if x.dim() != 3:
            check_rank(self, tuple(x.shape), 3, "(batch, steps, features)")
        cl = self.data_format == "channels_last"
        if cl:
            x = x.transpose(1, 2)                                       # (B, F, T)
        k, s = self.pool_size[0], self.strides[0]
        if self.padding == "valid" and x.shape[-1] < k:                  # (torch: "Invalid computed output size")
            raise _checks.error(self, f"a window of pool_size {k} (padding 'valid') needs at least {k} steps; "
                                      f"received {x.shape[-1]} steps.")
        pads = same_pads(x.shape[-1], k, s) if self.padding == "same" else (0, 0)
        y = self._pool(x, k, s, pads)                                   # (B, F, T')
        return y.transpose(1, 2) if cl else y


class MaxPooling1D(_Pooling1D):
    """Max over each window of `pool_size` steps (Keras' ``MaxPooling1D``)."""

    def _pool(self, x, k, s, pads):
        if pads != (0, 0):
            x = F.pad(x, pads, value=float("-inf"))
        return F.max_pool1d(x, k, s)


class AveragePooling1D(_Pooling1D):
    """Mean over each window of `pool_size` steps (Keras' ``AveragePooling1D``); with
    ``padding="same"`` a border window averages only its real steps."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)

    def _pool(self, x, k, s, pads):
        if pads == (0, 0):
            return F.avg_pool1d(x, k, s)
        total = F.avg_pool1d(F.pad(x, pads), k, s)
        count = F.avg_pool1d(F.pad(torch.ones_like(x[:1, :1]), pads), k, s)    # share of real steps
        return total / count


class _GlobalPooling1D(Layer):
    _config_args = ("data_format", "keepdims")

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _data_format(self, data_format)
        self.keepdims = bool(keepdims)

    @property
    def _steps_axis(self):
        return 1 if self.data_format == "channels_last" else 2

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 3, "(batch, steps, features)")
        shape = list(input_shape)
        if self.keepdims:
            shape[self._steps_axis] = 1
        else:
            del shape[self._steps_axis]
        return tuple(shape)

    def compute_mask(self, inputs, mask=None):
        return None


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over time: (B, T, F) -> (B, F) ((B, 1, F) with ``keepdims``). With a mask (B, T) (from
    ``Embedding(mask_zero=True)``, ``Masking`` or ``mask=``) only the unmasked steps are averaged,
    as in Keras."""

    _consumes_mask = True

    def forward(self, x, training=None, mask=None):
        if x.dim() != 3:
            check_rank(self, tuple(x.shape), 3, "(batch, steps, features)")
        ax = self._steps_axis
        if mask is None:
            return x.mean(dim=ax, keepdim=self.keepdims)
        mask = to_mask(self, mask, x.device)
        if tuple(mask.shape) != (x.shape[0], x.shape[ax]):
            _checks.mask_shape(self, (x.shape[0], x.shape[ax]), tuple(mask.shape))
        m = mask.unsqueeze(2 if ax == 1 else 1)                           # (B, T, 1) | (B, 1, T)
        total = torch.where(m, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(ax, keepdim=self.keepdims)
        return total / m.to(x.dtype).sum(ax, keepdim=self.keepdims)


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Max over time: (B, T, F) -> (B, F) ((B, 1, F) with ``keepdims``). Like Keras, it ignores masks
    (masked steps take part in the max) and passes none on."""

    def forward(self, x, training=None):
        if x.dim() != 3:
            check_rank(self, tuple(x.shape), 3, "(batch, steps, features)")
        return x.amax(dim=self._steps_axis, keepdim=self.keepdims)
