"""Dot-product (Luong) and additive (Bahdanau) attention with Keras' ``Attention`` / ``AdditiveAttention``
semantics: ``[query, value]`` or ``[query, value, key]`` in, masks, ``return_attention_scores``,
``use_causal_mask``, dropout on the attention weights when training."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import _checks, initializers
from .base import Layer, WeightRef, to_mask

_PAD = 1.0e9        # Keras subtracts this from masked scores before the softmax


class _BaseAttention(Layer):
    """Shared call: scores (B, Tq, Tv) from `_scores(q, k)`, masked, softmax over Tv, applied to v.

    Call arguments: ``inputs = [query (B, Tq, D), value (B, Tv, Dv)]`` or ``[query, value, key (B, Tv, D)]``
    (key defaults to value); ``mask = [query_mask (B, Tq), value_mask (B, Tv)]`` (either may be None;
    filled in from the inputs' masks inside a model); ``return_attention_scores``; ``use_causal_mask``
    (query step i sees only value steps j <= i); ``training`` (dropout on the weights).

    Returns ``output (B, Tq, Dv)`` (zero at masked query steps), and with ``return_attention_scores=True``
    the pair ``(output, weights (B, Tq, Tv))`` (the softmax, rows summing to 1). The output keeps the
    query's mask.
    """

    _list_input = True       # takes a list of tensors ([query, value], ...)

    _consumes_mask = True

    def _split(self, inputs):
        if not isinstance(inputs, (list, tuple)) or not 2 <= len(inputs) <= 3:
            n = len(inputs) if isinstance(inputs, (list, tuple)) else "a single tensor"
            raise _checks.error(self, f"must be called on a list [query, value] or [query, value, key]; "
                                      f"received {n}.")
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) == 3 else v
        return q, v, k

    def _check_shapes(self, q, v, k):
        qs, vs, ks = (tuple(t.shape) for t in (q, v, k))
        bad = None
        if len(qs) != 3 or len(vs) != 3 or len(ks) != 3:
            bad = "query, value and key must be 3-D (batch, steps, features)"
        elif len({s[0] for s in (qs, vs, ks) if s[0] is not None}) > 1:
            bad = "query, value and key must have the same batch size"
        elif ks[1] is not None and vs[1] is not None and ks[1] != vs[1]:
            bad = "key and value must have the same number of steps"
        elif self._needs_equal_dims and qs[-1] is not None and ks[-1] is not None and qs[-1] != ks[-1]:
            bad = "query and key must have the same feature size"
        if bad:
            raise _checks.error(self, f"{bad}; received query {_checks.fmt_shape(qs)}, value {_checks.fmt_shape(vs)}, "
                                      f"key {_checks.fmt_shape(ks)}.")

    _needs_equal_dims = True

    def compute_output_spec(self, inputs, mask=None, training=None, return_attention_scores=False,
                            use_causal_mask=False):
        from .._symbolic import SymbolicTensor
        q, v, k = self._split(inputs)
        self._check_shapes(q, v, k)
        self._maybe_build([tuple(q.shape), tuple(v.shape), tuple(k.shape)])
        out = SymbolicTensor(tuple(q.shape[:-1]) + (v.shape[-1],))
        if return_attention_scores:
            return out, SymbolicTensor(tuple(q.shape[:-1]) + (k.shape[1],))
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (input_shape[1][-1],)

    def compute_mask(self, inputs, mask=None):
        """Keras: the query's mask (the attention scores, if returned, have none)."""
        if not isinstance(mask, (list, tuple)) or not mask:
            return None
        return mask[0]

    def forward(self, inputs, mask=None, training=None, return_attention_scores=False, use_causal_mask=False):
        q, v, k = self._split(inputs)
        if q.dim() != 3 or v.dim() != 3 or k.dim() != 3 or k.shape[1] != v.shape[1] or \
                not q.shape[0] == v.shape[0] == k.shape[0] or (self._needs_equal_dims and q.shape[-1] != k.shape[-1]):
            self._check_shapes(q, v, k)
        q_mask, v_mask = self._masks(mask, q, v)
        scores = self._scores(q, k)                                            # (B, Tq, Tv)
        keep = None
        if use_causal_mask:
            Tq, Tv = scores.shape[-2:]
            keep = torch.ones(Tq, Tv, dtype=torch.bool, device=q.device).tril().unsqueeze(0)   # (1, Tq, Tv)
        if v_mask is not None:
            vm = v_mask.unsqueeze(-2)                                          # (B, 1, Tv)
            keep = vm if keep is None else keep & vm
        if keep is not None:
            scores = torch.where(keep, scores, scores - _PAD)
        weights = torch.softmax(scores, dim=-1)
        if self.dropout > 0.0 and self._is_training(training):
            weights = F.dropout(weights, self.dropout, True)
        out = torch.bmm(weights, v)                                            # (B, Tq, Dv)
        if q_mask is not None:
            out = torch.where(q_mask.unsqueeze(-1), out, torch.zeros((), dtype=out.dtype, device=out.device))
        return (out, weights) if return_attention_scores else out

    def _masks(self, mask, q, v):
        if mask is None:
            return None, None
        if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
            raise _checks.error(self, f"argument `mask` must be a list [query_mask, value_mask] of (batch, steps) "
                                      f"booleans (entries may be None); received {type(mask).__name__} "
                                      f"{mask!r:.100}.")
        out = []
        for m, t, what in ((mask[0], q, "query_mask"), (mask[1], v, "value_mask")):
            if m is not None:
                m = to_mask(self, m, t.device)
                if tuple(m.shape) != tuple(t.shape[:2]):
                    raise _checks.error(self, f"`mask` entry {what} must have shape "
                                              f"{_checks.fmt_shape(tuple(t.shape[:2]))}; received shape "
                                              f"{_checks.fmt_shape(tuple(m.shape))}.")
            out.append(m)
        return out


class Attention(_BaseAttention):
    """Dot-product (Luong) attention: ``scores = scale * query @ key^T`` (``score_mode="dot"``), or
    ``scores = concat_score_weight * sum(tanh(scale * (query_i + key_j)))`` (``score_mode="concat"``);
    ``scale`` is a trainable scalar (initially 1) with ``use_scale=True``, else 1.

    Weights: ``scale ()`` if `use_scale`, then ``concat_score_weight ()`` if ``score_mode="concat"``.
    """

    _config_args = ("use_scale", "score_mode", "dropout", "seed")

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)
        self.score_mode = _checks.one_of(self, "score_mode", score_mode, ("dot", "concat"))
        self.dropout = _checks.fraction(self, "dropout", dropout)
        self.seed = seed

    def build(self, input_shape):
        self.scale = nn.Parameter(torch.ones(())) if self.use_scale else None
        self.concat_score_weight = nn.Parameter(torch.ones(())) if self.score_mode == "concat" else None

    def _keras_weights(self):
        if not self.built:
            return []
        out = []
        for name in ("scale", "concat_score_weight"):
            p = getattr(self, name)
            if p is not None:
                out.append(WeightRef(self, name, (), (lambda n=name: getattr(self, n).detach()),
                                     (lambda v, n=name: getattr(self, n).copy_(v.reshape(())))))   # numpy makes 0-D arrays 1-D
        return out

    def _scores(self, q, k):
        if self.score_mode == "dot":
            s = torch.bmm(q, k.transpose(1, 2))                                # (B, Tq, Tv)
            return s * self.scale if self.scale is not None else s
        qk = q.unsqueeze(2) + k.unsqueeze(1)                                   # (B, Tq, Tv, D)
        if self.scale is not None:
            qk = self.scale * qk
        return self.concat_score_weight * torch.tanh(qk).sum(-1)


class AdditiveAttention(_BaseAttention):
    """Additive (Bahdanau) attention: ``scores[i, j] = sum_d scale_d * tanh(query[i, d] + key[j, d])``.

    Query and key must have the same feature size D (project them first, e.g. with ``Dense``, as in
    Bahdanau's ``W1 q + W2 k``). Weights: ``scale (D,)`` (Glorot-uniform) with ``use_scale=True``.
    """

    _config_args = ("use_scale", "dropout", "seed")

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        self.seed = kwargs.pop("seed", None)           # Keras passes it through **kwargs
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)
        self.dropout = _checks.fraction(self, "dropout", dropout)

    def build(self, input_shape):
        self._split(input_shape)                       # [query, value(, key)] shapes, else a clear error
        if len(input_shape[0]) == 0:
            raise _checks.error(self, f"query must be 3-D (batch, steps, features); received shape "
                                      f"{_checks.fmt_shape(tuple(input_shape[0]))}.")
        dim = input_shape[0][-1]
        if dim is None:
            raise _checks.error(self, "the query's feature size must be known.")
        self.scale = nn.Parameter(torch.as_tensor(initializers.get("glorot_uniform")((int(dim),)),
                                                  dtype=torch.float32)) if self.use_scale else None

    def _keras_weights(self):
        if not self.built or self.scale is None:
            return []
        return [WeightRef(self, "scale", self.scale.shape, lambda: self.scale.detach(),
                          lambda v: self.scale.copy_(v))]

    def _scores(self, q, k):
        t = torch.tanh(q.unsqueeze(2) + k.unsqueeze(1))                        # (B, Tq, Tv, D)
        return (t * self.scale).sum(-1) if self.scale is not None else t.sum(-1)
