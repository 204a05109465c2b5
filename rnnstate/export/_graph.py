"""A small ONNX graph builder: unique value names, constants, and the few op patterns export needs.

Only ``onnx.helper`` / ``onnx.numpy_helper`` are used (imported lazily: onnx is an optional dependency).
"""
from __future__ import annotations

import numpy as np

OPSET = 17
INT64_MIN = np.iinfo(np.int64).min


class ExportError(ValueError):
    """A model (or one of its layers) that can't be written as an equivalent ONNX graph; the message
    names the layer and the reason. Export never writes a partial or constant graph instead."""


class Builder:
    """Collects nodes, initializers, graph inputs and outputs; every value gets a unique name."""

    def __init__(self):
        import onnx
        from onnx import helper, numpy_helper
        self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._used: set = set()
        self._consts: dict = {}

    # ---- names ---------------------------------------------------------------------------------------
    def reserve(self, name: str) -> str:
        """Claim an exact name (graph inputs/outputs); raise if it is taken."""
        if name in self._used:
            raise ExportError(f"two graph values would be named {name!r}; rename a layer.")
        self._used.add(name)
        return name

    def fresh(self, hint: str) -> str:
        name, k = hint, 0
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._used.add(name)
        return name

    # ---- graph pieces ----------------------------------------------------------------------------------
    def add_input(self, name, elem_type, shape):
        self.inputs.append(self.helper.make_tensor_value_info(self.reserve(name), elem_type, list(shape)))
        return name

    def add_output(self, name, value, elem_type, shape, reserved=False):
        """Graph output `name` = `value` (through an Identity, so one value may be several outputs).
        `reserved`: the name was claimed earlier with `reserve`."""
        if not reserved:
            self.reserve(name)
        self.nodes.append(self.helper.make_node("Identity", [value], [name], name=self.fresh(name + "/Identity")))
        self.outputs.append(self.helper.make_tensor_value_info(name, elem_type, list(shape)))

    def weight(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array).copy(order="C"), name))
        return name

    def const(self, value, dtype=np.int64) -> str:
        """A small constant (shared when equal)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        name = self._consts.get(key)
        if name is None:
            name = self._consts[key] = self.weight(arr, "const")
        return name

    def op(self, op_type, inputs, hint=None, n_out=1, **attrs):
        """Add a node; returns its output name (a list when ``n_out > 1``). An output hint of ``None``
        in ``n_out`` list form (``outputs=[...]``) is not needed here: all outputs are named."""
        base = hint or op_type
        outs = [self.fresh(f"{base}" if n_out == 1 else f"{base}:{i}") for i in range(n_out)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.fresh(base + "/" + op_type),
                                                **attrs))
        return outs[0] if n_out == 1 else outs

    def op_outputs(self, op_type, inputs, outputs, hint, **attrs):
        """A node with explicitly chosen outputs ('' for outputs not wanted)."""
        outs = [self.fresh(o) if o else "" for o in outputs]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.fresh(hint + "/" + op_type),
                                                **attrs))
        return outs

    # ---- common patterns -------------------------------------------------------------------------------
    def unsqueeze(self, x, axes, hint=None):
        return self.op("Unsqueeze", [x, self.const(list(axes))], hint)

    def squeeze(self, x, axes, hint=None):
        return self.op("Squeeze", [x, self.const(list(axes))], hint)

    def transpose(self, x, perm, hint=None):
        return self.op("Transpose", [x], hint, perm=list(perm))

    def flip(self, x, axis, hint=None):
        """Reverse `x` along `axis` (any length): Slice with step -1."""
        return self.op("Slice", [x, self.const([-1]), self.const([INT64_MIN]), self.const([axis]), self.const([-1])],
                       hint)

    def where(self, cond, a, b, hint=None):
        return self.op("Where", [cond, a, b], hint)

    def zero(self):
        return self.const(0.0, np.float32)

    def model(self, name, metadata: dict, check=True):
        h = self.helper
        graph = h.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)
        m = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="rnnstate")
        m.ir_version = 8                      # readable by every onnxruntime since 1.10
        for k, v in metadata.items():
            e = m.metadata_props.add()
            e.key, e.value = k, v
        self.onnx.checker.check_model(m, full_check=check)
        return m
