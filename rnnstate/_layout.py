"""Keras <-> torch weight layouts. The only module that knows both.

Keras stores ``kernel (F, G*U)``, ``recurrent_kernel (U, G*U)`` and ``bias (G*U,)`` (GRU with
``reset_after=True``: ``bias (2, 3U)``, row 0 for inputs, row 1 for the recurrent term). torch's fused
kernels want ``weight_ih (G*U, F)``, ``weight_hh (G*U, U)``, ``bias_ih``, ``bias_hh``.

Gate orders: LSTM Keras [i, f, c, o] == torch [i, f, g, o] (only a transpose). GRU Keras [z, r, h]
vs torch [r, z, n]: the first two blocks swap. Conversion happens at ``set_weights``/``get_weights``
and file boundaries only, never per call.
"""
from __future__ import annotations

import torch

# gate permutation from Keras block order to torch block order (self-inverse here)
GATE_PERM = {"lstm": (0, 1, 2, 3), "gru": (1, 0, 2), "simple_rnn": (0,)}


def _permute_blocks(t: torch.Tensor, perm, dim: int) -> torch.Tensor:
    if list(perm) == list(range(len(perm))):
        return t
    blocks = t.chunk(len(perm), dim)
    return torch.cat([blocks[p] for p in perm], dim)


def kernel_to_torch(kernel: torch.Tensor, kind: str) -> torch.Tensor:
    """Keras (In, G*U) -> torch (G*U, In), gates reordered."""
    return _permute_blocks(kernel, GATE_PERM[kind], 1).t().contiguous()


def kernel_from_torch(weight: torch.Tensor, kind: str) -> torch.Tensor:
    """torch (G*U, In) -> Keras (In, G*U)."""
    return _permute_blocks(weight.detach().t(), GATE_PERM[kind], 1).contiguous()


def bias_to_torch(bias: torch.Tensor, kind: str) -> torch.Tensor:
    return _permute_blocks(bias, GATE_PERM[kind], bias.dim() - 1).contiguous()


def bias_from_torch(bias: torch.Tensor, kind: str) -> torch.Tensor:
    return _permute_blocks(bias.detach(), GATE_PERM[kind], bias.dim() - 1).contiguous()


def kernel_view(weight: torch.Tensor, kind: str) -> torch.Tensor:
    """Differentiable Keras-layout view of a torch weight (for regularizers that depend on layout)."""
    return _permute_blocks(weight.t(), GATE_PERM[kind], 1)
