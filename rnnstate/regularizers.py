"""Keras 3 weight regularizers: a penalty added to the training loss at every step.

``L1(l1)``: ``l1 * sum(|w|)``;  ``L2(l2)``: ``l2 * sum(w**2)``;  ``L1L2(l1, l2)``: both.
Keras' defaults (``L1(l1=0.01)``, ``L2(l2=0.01)``, ``L1L2(l1=0.0, l2=0.0)``) and names (``"l1"``,
``"l2"``, ``"l1_l2"``). Layers take them as ``kernel_regularizer=``, ``recurrent_regularizer=``,
``bias_regularizer=``; ``model.losses`` lists the current penalties and ``fit`` adds them to the loss.
"""
from __future__ import annotations

import torch


class Regularizer:
    """Base class: ``penalty = regularizer(weight)`` (a scalar tensor, differentiable)."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _rate(name, v):
    v = float(v)
    if not v >= 0.0:
        raise ValueError(f"regularizer argument `{name}` must be a float >= 0; received {v!r}.")
    return v


class L1(Regularizer):
    """``l1 * sum(|w|)``."""

    def __init__(self, l1=0.01):
        self.l1 = _rate("l1", l1)

    def __call__(self, w):
        return self.l1 * w.abs().sum()

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(w ** 2)``."""

    def __init__(self, l2=0.01):
        self.l2 = _rate("l2", l2)

    def __call__(self, w):
        return self.l2 * w.square().sum()

    def get_config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w ** 2)``."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _rate("l1", l1), _rate("l2", l2)

    def __call__(self, w):
        return self.l1 * w.abs().sum() + self.l2 * w.square().sum()

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_REGISTRY = {"L1": L1, "L2": L2, "L1L2": L1L2, "l1": L1, "l2": L2, "l1_l2": L1L2}
__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize", "deserialize"]


def is_sum_based(r) -> bool:
    """True when the penalty depends only on the multiset of weight values (so any layout gives it)."""
    return type(r) in (L1, L2, L1L2)


def get(identifier):
    """None, a name (``"l2"``), a Keras spec dict, a Regularizer, or any callable ``w -> scalar``."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        cls = _REGISTRY.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown regularizer {identifier!r}. Expected one of: {sorted(_REGISTRY)}.")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"a regularizer must be a name, a spec dict, a Regularizer or a callable; received "
                     f"{identifier!r:.100}.")


def serialize(r) -> dict | None:
    if r is None:
        return None
    if type(r) not in (L1, L2, L1L2):
        raise ValueError(f"cannot serialize the regularizer {r!r:.100}: only L1, L2 and L1L2 can be saved.")
    return {"module": "keras.regularizers", "class_name": type(r).__name__, "config": r.get_config(),
            "registered_name": None}


def deserialize(spec: dict):
    """A Keras spec -> a regularizer, from this module's registry only (nothing is imported)."""
    name = spec.get("class_name") if isinstance(spec, dict) else None
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown regularizer class {name!r:.100}; rnnstate knows L1, L2 and L1L2.")
    cfg = spec.get("config") or {}
    if not isinstance(cfg, dict) or set(cfg) - {"l1", "l2"}:
        raise ValueError(f"invalid {name} config {cfg!r:.100}; expected keys among 'l1', 'l2'.")
    return cls(**cfg)
