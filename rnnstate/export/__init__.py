"""Export to standard ONNX, with the recurrent states as explicit graph inputs and outputs.

    info = rnnstate.export.onnx(model, "model.onnx")       # needs `pip install onnx` (extra: rnnstate[export])

    import onnxruntime as ort
    sess = ort.InferenceSession("model.onnx")
    states = info.zero_states(batch_size=1)               # {"lstm/initial_h": zeros (1, U), ...}
    for x_t in chunks:                                    # (1, T_chunk, F): one step or several
        outs = sess.run(None, {info.input_names[0]: x_t, **states})
        y_t = outs[0]                                     # the model's outputs come first
        states = info.next_states(outs)                   # each `<layer>/Y_h` becomes `<layer>/initial_h`

What the graph holds:

* Recurrent layers are the standard ``LSTM`` / ``GRU`` / ``RNN`` ops (runtimes have optimised kernels
  for them), the weights converted to ONNX's gate orders (see ``rnnstate.export._recurrent``).
* Inputs: the model's inputs (axis 0 ``"batch"``, the time axis ``"time"``: any batch size and
  length), then for every recurrent layer whose initial state is not given inside the model, one
  ``(batch, units)`` float input per state: ``<layer>/initial_h`` (and ``<layer>/initial_c`` for an
  LSTM; ``<layer>/forward/initial_h`` ... for Bidirectional; ``<layer>/initial_h_0`` ... for
  stacked cells, the field names of the layer's state). ONNX has no optional inputs with a default
  here: feed zeros for a fresh start (``zero_states``), or the last call's outputs to continue.
* Outputs: the model's outputs (names ``model.output_names``), then every layer's final states,
  ``<layer>/Y_h`` (``Y_c``, ...), in the same order as the state inputs.
* Masks (``Embedding(mask_zero=True)``, ``Masking``) are computed in the graph from the inputs, as in
  rnnstate, and become each recurrent node's ``sequence_lens``: that works for right-padded masks
  (valid steps, then padding) — the results equal rnnstate's. A sequence whose mask has holes or
  left padding gets NaN results from the recurrent layers (the standard ops can't compute it).
* Inference only: Dropout is the identity; stateful layers are exported like the others (their
  carried state is not in the file: feed it as the initial state).

Supported layers: LSTM, GRU, SimpleRNN, RNN over those cells (also stacked), Bidirectional (all merge
modes), Dense, Embedding, Masking, Dropout, Activation, TimeDistributed(Dense/Activation/Dropout),
Concatenate, Add; ``return_sequences``, ``return_state``, ``go_backwards``, ``initial_state`` from
other layers. Anything else raises :class:`ExportError` naming the layer and the reason; a partial
or constant graph is never written.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from ._graph import OPSET, ExportError

__all__ = ["onnx", "zero_states", "OnnxExport", "ExportError", "OPSET"]

_META_KEY = "rnnstate.states"


@dataclass
class OnnxExport:
    """What :func:`onnx` wrote: the file and the names of its inputs and outputs.

    ``states``: one entry per recurrent state, in graph order:
    ``{"layer": "lstm", "state": "h", "input": "lstm/initial_h" (None when the model computes the
    initial state itself), "output": "lstm/Y_h", "units": U}``.
    """

    path: str
    input_names: list
    output_names: list                  # the model's outputs, then the state outputs
    states: list = field(default_factory=list)
    opset: int = OPSET

    @property
    def state_input_names(self):
        return [s["input"] for s in self.states if s["input"] is not None]

    @property
    def state_output_names(self):
        return [s["output"] for s in self.states]

    def zero_states(self, batch_size, dtype=np.float32):
        """``{state input name: zeros (batch_size, units)}``: the feed for a fresh start."""
        return {s["input"]: np.zeros((int(batch_size), s["units"]), dtype)
                for s in self.states if s["input"] is not None}

    def next_states(self, outputs):
        """The state feed for the next call, from one call's outputs (``sess.run(None, ...)``'s list, in
        ``output_names`` order, or a dict by name): each final state goes to its initial-state input."""
        if not isinstance(outputs, dict):
            outputs = dict(zip(self.output_names, outputs))
        return {s["input"]: outputs[s["output"]] for s in self.states if s["input"] is not None}


def onnx(model, path, *, check=True) -> OnnxExport:
    """Write `model` (a ``Model`` / ``Sequential``, built) to `path` as an ONNX graph (opset 17).

    Returns an :class:`OnnxExport` with the input, output and state names. Raises
    :class:`ExportError` (a ``ValueError``) naming the layer when something can't be exported.
    The graph is checked with ``onnx.checker`` (``check=False`` skips the full check).
    """
    try:
        import onnx as onnx_pkg  # noqa: F401
    except ImportError:
        raise ImportError("rnnstate.export.onnx needs the `onnx` package: pip install onnx "
                          "(or rnnstate[export]).") from None
    from .. import _checks
    from ..models.functional import Model
    from ..models.sequential import Sequential
    from ._convert import Context, convert_model
    from ._graph import Builder

    if not isinstance(model, Model):
        raise ExportError(f"rnnstate.export.onnx expects a Model or Sequential; received {type(model).__name__} "
                          f"(wrap a layer: Model(inp, layer(inp))).")
    if isinstance(model, Sequential) and not model._graph_ready:
        raise ExportError(f"{_checks.who(model)}: is not built; give it an input shape (an `Input(...)` first) "
                          f"or call it on data before exporting.")
    ctx = Context(Builder())
    convert_model(ctx, model)
    meta = [{k: s[k] for k in ("layer", "state", "input", "output", "units")} for s in ctx.states]
    proto = ctx.b.model(model.name, {_META_KEY: json.dumps(meta)}, check=check)
    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return OnnxExport(path=path, input_names=[t.layer.name for t in model.inputs],
                      output_names=list(model.output_names) + [s["output"] for s in meta], states=meta)


def zero_states(exported, batch_size, dtype=np.float32):
    """Zero initial states ``{input name: (batch_size, units) array}`` for an :class:`OnnxExport`, or for an
    exported file's path (read from its metadata), or an ``onnx.ModelProto``."""
    if isinstance(exported, OnnxExport):
        return exported.zero_states(batch_size, dtype)
    if isinstance(exported, (str, os.PathLike)):
        import onnx as onnx_pkg
        exported = onnx_pkg.load(os.fspath(exported), load_external_data=False)
    meta = {p.key: p.value for p in exported.metadata_props}
    if _META_KEY not in meta:
        raise ExportError("zero_states: this ONNX model was not written by rnnstate.export.onnx (no state "
                          "metadata).")
    return OnnxExport("", [], [], json.loads(meta[_META_KEY])).zero_states(batch_size, dtype)
