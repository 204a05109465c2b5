"""Symbolic tensors and graph nodes.

`Input(...)` returns a :class:`SymbolicTensor` (a shape, a dtype and the node that made it).
Calling a layer on symbolic tensors records a :class:`Node`; ``Model(inputs, outputs)`` walks
the nodes back from the outputs and later runs them eagerly on torch tensors.
"""
from __future__ import annotations

import torch

from . import _checks


class SymbolicTensor:
    """A placeholder with a static shape (``None`` for unknown dims) and a torch dtype."""

    __slots__ = ("shape", "dtype", "node", "index", "name", "__weakref__")

    def __init__(self, shape, dtype=torch.float32, node=None, index=0, name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtype
        self.node = node      # the Node that produced this tensor (None until attached)
        self.index = index    # position among the node's flat outputs
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def layer(self):
        return self.node.layer if self.node is not None else None

    def __iter__(self):
        _checks.not_iterable(self.layer, self.shape)

    def __len__(self):
        _checks.not_iterable(self.layer, self.shape)

    def __bool__(self):
        raise TypeError("A symbolic tensor has no truth value: it holds no data until the model runs.")

    def __repr__(self):
        src = f", produced by {_checks.who(self.layer)}" if self.layer is not None else ""
        return f"<SymbolicTensor shape={_checks.fmt_shape(self.shape)} dtype={str(self.dtype).replace('torch.', '')}{src}>"


class Node:
    """One call of a layer inside a graph: which layer, with which arguments, producing which outputs."""

    __slots__ = ("layer", "args", "kwargs", "outputs", "inputs", "structure")

    def __init__(self, layer, args, kwargs, outputs_structure):
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.structure = outputs_structure
        self.outputs = flatten(outputs_structure)
        self.inputs = [t for t in flatten((args, kwargs)) if isinstance(t, SymbolicTensor)]
        for i, t in enumerate(self.outputs):
            t.node, t.index = self, i

    @property
    def parent_nodes(self):
        return [t.node for t in self.inputs]


def flatten(structure):
    """Depth-first leaves of nested lists / tuples / dicts (dict values in key order)."""
    out = []
    _flatten_into(structure, out)
    return out


def _flatten_into(s, out):
    if isinstance(s, (list, tuple)):
        for v in s:
            _flatten_into(v, out)
    elif isinstance(s, dict):
        for k in s:
            _flatten_into(s[k], out)
    else:
        out.append(s)


def map_structure(fn, s):
    if isinstance(s, tuple) and hasattr(s, "_fields"):
        return type(s)(*[map_structure(fn, v) for v in s])
    if isinstance(s, (list, tuple)):
        return type(s)(map_structure(fn, v) for v in s)
    if isinstance(s, dict):
        return {k: map_structure(fn, v) for k, v in s.items()}
    return fn(s)


def pack_like(structure, flat):
    """Inverse of :func:`flatten`: rebuild `structure` with leaves from `flat`."""
    it = iter(flat)
    return map_structure(lambda _: next(it), structure)


def has_symbolic(s) -> bool:
    """True if `s` (a tensor, or nested lists / tuples / dicts of them) holds a SymbolicTensor.
    Called on every layer call: plain loops, exact-type checks first."""
    t = type(s)
    if t is SymbolicTensor:
        return True
    if t is list or isinstance(s, tuple):
        for v in s:
            if has_symbolic(v):
                return True
        return False
    if t is dict:
        for v in s.values():
            if has_symbolic(v):
                return True
    return False
