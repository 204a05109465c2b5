"""`MultiHeadAttention` with Keras 3's weights, masks and call signature (attention over the time axis)."""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .. import _checks, initializers, regularizers
from .._symbolic import SymbolicTensor, has_symbolic
from ._weights import param, ref
from .base import Layer, to_mask

_LARGE_NEGATIVE = -1.0e9        # what Keras' Softmax puts at masked positions (float32)


def _fresh(initializer):
    """A copy of a Keras initializer object (each projection draws its own values, as Keras clones them); a
    plain callable is used as it is."""
    if isinstance(initializer, initializers.Initializer):
        return initializers.get(initializers.serialize(initializer))
    return initializer


class _Projection(Layer):
    """One of MultiHeadAttention's four einsum projections (Keras' ``EinsumDense``): weights ``kernel``
    and ``bias``, addressed in files as ``query_dense``, ``key_dense``, ``value_dense``, ``output_dense``."""

    def __init__(self, kernel_shape, bias_shape, kernel_initializer, bias_initializer, use_bias, name, owner):
        super().__init__(name=name)
        self.kernel = param(_fresh(kernel_initializer), kernel_shape, owner, "kernel_initializer")
        self.bias = param(_fresh(bias_initializer), bias_shape, owner, "bias_initializer") if use_bias else None
        self.built = True

    def _keras_weights(self):
        return [ref(self, "kernel")] + ([ref(self, "bias")] if self.bias is not None else [])


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention (Vaswani et al.), Keras' ``MultiHeadAttention``.

    Per head n: ``Q_n = query @ Wq[:, n] + bq[n]`` (B, T, key_dim), likewise K_n from `key` (default
    `value`) and V_n from `value` (value_dim); ``A_n = softmax(Q_n K_n^T / sqrt(key_dim))`` (B, T, S) with
    masked positions set to -1e9 first and to 0 after (a fully masked query step attends to nothing); ``output = sum_n (A_n V_n) @ Wo[n] + bo`` (B, T, output_shape or
    the query's feature size).

    Call: ``layer(query (B, T, Dq), value (B, S, Dv), key=None, query_mask=None, value_mask=None,
    key_mask=None, attention_mask=None (B, T, S), return_attention_scores=False, training=None,
    use_causal_mask=False)``. Inside a model the query/value/key masks come from the inputs' masks, as in
    Keras. ``return_attention_scores=True`` returns ``(output, scores (B, num_heads, T, S))``.

    Weights (Keras order and shapes): ``query/kernel (Dq, N, key_dim)``, ``query/bias (N, key_dim)``, the
    same for ``key`` and ``value`` (value_dim), ``attention_output/kernel (N, value_dim, out)``,
    ``attention_output/bias (out,)``. Only ``attention_axes=None`` (time) is supported.
    """

    _config_args = ("num_heads", "key_dim", "value_dim", "dropout", "use_bias", "output_shape",
                    "attention_axes", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                    "bias_regularizer", "seed")
    _consumes_mask = True
    _positional_masks = True          # the graph passes the masks of query, value (and key) as `mask=[...]`

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None, **kwargs):
        for k, v in (("sliding_window", sliding_window), ("activity_regularizer", activity_regularizer),
                     ("kernel_constraint", kernel_constraint), ("bias_constraint", bias_constraint)):
            if v is not None:
                raise _checks.error("MultiHeadAttention", f"argument `{k}` is not supported yet by rnnstate; "
                                                          f"received {v!r}.", NotImplementedError)
        if use_gate:
            raise _checks.error("MultiHeadAttention", "argument `use_gate=True` is not supported yet by rnnstate.",
                                NotImplementedError)
        super().__init__(**kwargs)
        self.num_heads = _checks.positive_int(self, "num_heads", num_heads)
        self.key_dim = _checks.positive_int(self, "key_dim", key_dim)
        self.value_dim = _checks.positive_int(self, "value_dim", value_dim) if value_dim is not None else self.key_dim
        self.dropout = _checks.fraction(self, "dropout", dropout)
        self.use_bias = bool(use_bias)
        if isinstance(output_shape, (list, tuple)):
            if len(output_shape) != 1:
                raise _checks.error(self, f"argument `output_shape` must be an int (or a 1-tuple); received "
                                          f"{output_shape!r}.", NotImplementedError)
            output_shape = output_shape[0]
        self.output_shape = None if output_shape is None else _checks.positive_int(self, "output_shape", output_shape)
        axes = [attention_axes] if isinstance(attention_axes, int) else attention_axes
        if axes is not None and (not isinstance(axes, (list, tuple)) or list(axes) not in ([1], [-2])):
            raise _checks.error(self, f"argument `attention_axes` other than the time axis is not supported yet by "
                                      f"rnnstate; received {attention_axes!r}.", NotImplementedError)
        self.attention_axes = [1]
        self.kernel_initializer = _checks.resolved(self, "kernel_initializer", initializers.get_for_weight,
                                                   kernel_initializer)
        self.bias_initializer = _checks.resolved(self, "bias_initializer", initializers.get_for_weight,
                                                 bias_initializer)
        self.kernel_regularizer = _checks.resolved(self, "kernel_regularizer", regularizers.get, kernel_regularizer)
        self.bias_regularizer = _checks.resolved(self, "bias_regularizer", regularizers.get, bias_regularizer)
        self.seed = seed

    # ---- weights ---------------------------------------------------------------------------------------
    def build(self, input_shape):
        qs, vs = input_shape[0], input_shape[1]
        ks = input_shape[2] if len(input_shape) > 2 and input_shape[2] is not None else vs
        for what, s in (("query", qs), ("value", vs), ("key", ks)):
            if len(s) != 3 or s[-1] is None:
                raise _checks.error(self, f"`{what}` must be 3-D (batch, steps, features) with known features; "
                                          f"received shape {_checks.fmt_shape(s)}.")
        N, H, Hv = self.num_heads, self.key_dim, self.value_dim
        out = self.output_shape or int(qs[-1])
        mk = lambda name, k, b: _Projection(k, b, self.kernel_initializer, self.bias_initializer,  # noqa: E731
                                            self.use_bias, name, self)
        self.query_dense = mk("query", (qs[-1], N, H), (N, H))
        self.key_dense = mk("key", (ks[-1], N, H), (N, H))
        self.value_dense = mk("value", (vs[-1], N, Hv), (N, Hv))
        self.output_dense = mk("attention_output", (N, Hv, out), (out,))
        self._dims = (int(qs[-1]), int(vs[-1]), int(ks[-1]))

    def _sublayers(self):
        return [self.query_dense, self.key_dense, self.value_dense, self.output_dense] if self.built else []

    def _keras_children(self):
        """Where Keras' files keep the projections (``layers/multi_head_attention/query_dense/vars/0``...)."""
        return [("query_dense", self.query_dense), ("key_dense", self.key_dense),
                ("value_dense", self.value_dense), ("output_dense", self.output_dense)]

    def _own_penalties(self):
        out = []
        for p in self._sublayers():
            if self.kernel_regularizer is not None:
                out.append(self.kernel_regularizer(p.kernel))
            if self.bias_regularizer is not None and p.bias is not None:
                out.append(self.bias_regularizer(p.bias))
        return out

    # ---- calling ---------------------------------------------------------------------------------------
    def __call__(self, query, value=None, key=None, **kwargs):
        if value is None:
            raise _checks.error(self, "needs `query` and `value` (and optionally `key`): "
                                      "`layer(query, value)`; received only `query`.", TypeError)
        args = (query, value) if key is None else (query, value, key)
        if not has_symbolic(args):
            args = tuple(self._convert_input(a) for a in args)
            if not self.built:
                self._maybe_build([tuple(a.shape) for a in args])
        return super().__call__(*args, **kwargs)

    def _shapes(self, query, value, key):
        shapes = [tuple(query.shape), tuple(value.shape)] + ([tuple(key.shape)] if key is not None else [])
        self._maybe_build(shapes)
        return shapes

    def compute_output_spec(self, query, value, key=None, return_attention_scores=False, **kwargs):
        shapes = self._shapes(query, value, key)
        self._check(shapes)
        out = SymbolicTensor(shapes[0][:2] + (self.output_dense.kernel.shape[-1],))
        if return_attention_scores:
            return out, SymbolicTensor((shapes[0][0], self.num_heads, shapes[0][1], shapes[1][1]))
        return out

    def compute_output_shape(self, input_shape):
        out = self.output_shape or input_shape[0][-1]
        return tuple(input_shape[0][:2]) + (out,)

    def _check(self, shapes):
        if any(len(s) != 3 for s in shapes):
            raise _checks.error(self, f"query, value and key must be 3-D (batch, steps, features); received shapes "
                                      f"{[_checks.fmt_shape(s) for s in shapes]}.")
        got = (shapes[0][-1], shapes[1][-1], (shapes[2] if len(shapes) > 2 else shapes[1])[-1])
        if got != self._dims:
            raise _checks.error(self, f"was built for query/value/key features {self._dims}; received shapes "
                                      f"{[_checks.fmt_shape(s) for s in shapes]}.")
        batches = {s[0] for s in shapes if s[0] is not None}
        if len(batches) > 1 or (len(shapes) > 2 and None not in (shapes[1][1], shapes[2][1])
                                and shapes[1][1] != shapes[2][1]):
            raise _checks.error(self, f"query, value and key must have the same batch size, and value and key the "
                                      f"same number of steps; received shapes "
                                      f"{[_checks.fmt_shape(s) for s in shapes]}.")

    def compute_mask(self, inputs, mask=None):
        """Keras: the output keeps the query's mask."""
        if isinstance(mask, (list, tuple)):
            return mask[0] if mask else None
        return mask

    def forward(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
                attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False,
                mask=None):
        key = value if key is None else key
        if query.dim() != 3 or value.dim() != 3 or key.dim() != 3 or \
                (query.shape[-1], value.shape[-1], key.shape[-1]) != self._dims or \
                not query.shape[0] == value.shape[0] == key.shape[0] or value.shape[1] != key.shape[1]:
            self._check([tuple(query.shape), tuple(value.shape), tuple(key.shape)])
        if isinstance(mask, (list, tuple)):                 # the graph's masks of (query, value, key)
            query_mask = mask[0] if query_mask is None else query_mask
            value_mask = mask[1] if value_mask is None and len(mask) > 1 else value_mask
            key_mask = mask[2] if key_mask is None and len(mask) > 2 else key_mask
        keep = self._attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask,
                                    use_causal_mask)        # (B, T, S) bool or None
        qd, kd, vd, od = self.query_dense, self.key_dense, self.value_dense, self.output_dense
        q = torch.einsum("btd,dnh->bnth", query, qd.kernel)             # (B, N, T, H)
        k = torch.einsum("bsd,dnh->bnsh", key, kd.kernel)               # (B, N, S, H)
        v = torch.einsum("bsd,dnh->bnsh", value, vd.kernel)             # (B, N, S, Hv)
        if self.use_bias:
            q = q + qd.bias.unsqueeze(1)
            k = k + kd.bias.unsqueeze(1)
            v = v + vd.bias.unsqueeze(1)
        scores = torch.matmul(q * (1.0 / math.sqrt(self.key_dim)), k.transpose(-1, -2))   # (B, N, T, S)
        if keep is not None:
            keep = keep.unsqueeze(1)                                    # (B, 1, T, S)
            scores = scores.masked_fill(~keep, _LARGE_NEGATIVE)
        weights = torch.softmax(scores, dim=-1)
        if keep is not None:                # Keras' Softmax: fully masked rows give zeros, not uniform
            weights = weights.masked_fill(~keep, 0.0)
        dropped = F.dropout(weights, self.dropout, True) if self.dropout > 0.0 and self._is_training(training) \
            else weights
        ctx = torch.matmul(dropped, v)                                  # (B, N, T, Hv)
        out = torch.einsum("bnth,nho->bto", ctx, od.kernel)             # (B, T, out)
        if self.use_bias:
            out = out + od.bias
        return (out, weights) if return_attention_scores else out

    def _attention_mask(self, query, value, query_mask, value_mask, key_mask, attention_mask, causal):
        keep = None

        def both(a, b):
            return b if a is None else a & b

        B, T, S = query.shape[0], query.shape[1], value.shape[1]
        for m, shape, axis, what in ((query_mask, (B, T), -1, "query_mask"), (value_mask, (B, S), -2, "value_mask"),
                                     (key_mask, (B, S), -2, "key_mask")):
            if m is not None:
                m = to_mask(self, m, query.device)
                if tuple(m.shape) != shape:
                    raise _checks.error(self, f"argument `{what}` must have shape {_checks.fmt_shape(shape)}; "
                                              f"received shape {_checks.fmt_shape(tuple(m.shape))}.")
                keep = both(keep, m.unsqueeze(axis))
        if causal:
            keep = both(keep, torch.ones(T, S, dtype=torch.bool, device=query.device).tril().unsqueeze(0))
        if attention_mask is not None:
            am = to_mask(self, attention_mask, query.device, arg="attention_mask")
            if am.dim() not in (2, 3) or tuple(am.shape[-2:]) != (T, S) or \
                    (am.dim() == 3 and am.shape[0] not in (1, B)):
                raise _checks.error(self, f"argument `attention_mask` must have shape ({B}, {T}, {S}); received "
                                          f"shape {_checks.fmt_shape(tuple(am.shape))}.")
            keep = am if keep is None else am & keep
        return keep
