"""Streaming: run a trained model a chunk of timesteps at a time, carrying every recurrent layer's
state explicitly, at any batch size.

    stream = model.stream()                       # or rnnstate.states.Streamer(model)
    states = None                                 # None: every stream starts from zeros
    for x_t in chunks:                            # x_t (B, F) one step, or (B, T_chunk, F)
        y_t, states = stream.step(x_t, states)    # states: {layer_name: LSTMState(h, c), ...}

The model runs its own graph, unchanged: a :class:`~rnnstate.states._context.StateContext` hands each
recurrent layer its state from ``states`` and collects the state it ends in. So any model works
(Sequential or functional, stacked layers, Dense / TimeDistributed heads, custom cells), at any batch
size: a model built for batch 32 streams at batch 1 without being rebuilt, and its stateful layers
(if any) keep their own carried state untouched.

Semantics (what "equal to the full run" means):

* ``return_sequences=True`` everywhere: the chunks' outputs, concatenated over time, equal the
  full-sequence output, and the final states equal the full run's (tested at 1e-6).
* A recurrent layer with ``return_sequences=False`` emits, for each chunk, its output at the chunk's
  last step; the layers after it see that. So a step-by-step stream of ``LSTM(4) -> Dense(1)`` gives
  the model's prediction *after every step*, and the last chunk's output equals the full run's.
* The first chunk (``states=None``, or layers missing from ``states``) starts each layer the way a
  full run does: from its ``initial_state`` input if the graph gives one (e.g. a Dense output as c),
  else zeros. Later chunks start from the carried state; a graph ``initial_state`` applies at t=0 only.
* Refused with an error, because no chunking can equal their full run: Bidirectional and
  ``go_backwards`` layers (they read the sequence from its end) and ``RepeatVector`` (it makes a new
  time axis), ``Flatten`` / ``Reshape`` over the time axis.
* A step with a 2-D input (B, F) is one timestep: the time axis is added for the model and removed
  again from outputs that have one.

By default a step runs without autograd (``torch.no_grad``) in inference mode; ``grad=True`` keeps the
graph so a loss can backpropagate through the states (detach them yourself for truncated BPTT).

Fast path: streaming one standard ``LSTM`` layer (``Streamer(layer)``) one step at a time, in inference,
on CPU, with tensors in and states given as tensors, skips the model machinery and calls the compiled
step kernel its cell declares (``LSTMCell.streaming_step()``: ``torch.ops.rnnstate.lstm_step``) directly: same numbers, a fraction of the per-step cost.
``stream.last_path`` says which ran.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from .._symbolic import flatten, pack_like
from . import access
from ._context import StateContext

__all__ = ["Streamer"]


class Streamer:
    """Step a model (or one recurrent layer) through time with explicit states.

    Args:
        model: a ``Model`` / ``Sequential``, or a single recurrent layer (then ``states`` is that
            layer's NamedTuple, e.g. ``LSTMState(h, c)``, instead of a dict).
        training: the ``training`` flag the layers see (default False).
        grad: run with autograd (default False: ``torch.no_grad``).
    """

    def __init__(self, model, *, training=False, grad=False):
        RNN, Bidi = access._classes()
        self.model = model
        self.training = bool(training)
        self.grad = bool(grad)
        self._single = isinstance(model, (RNN, Bidi))
        self._checked = False
        self._layers = None
        self._fast = None           # the layer, when one-step calls can take the fast path (see _fast_layer)
        self.last_path = None

    # ---- structure ---------------------------------------------------------------------------------------
    @property
    def layers(self):
        """The recurrent layers whose states a step carries, in model order."""
        if self._layers is None:
            self._check()
        return self._layers

    def _check(self):
        from ..layers.core import Flatten, RepeatVector, Reshape
        RNN, Bidi = access._classes()
        layers = access.recurrent_layers(self.model)
        if not layers:
            raise _checks.not_streamable(self.model, "it has no recurrent layer, so there is no state to carry.")
        for l in layers:
            if isinstance(l, Bidi):
                raise _checks.not_streamable(l, "its backward direction reads the sequence from its end, which a "
                                                "chunk does not have.")
            if l.go_backwards:
                raise _checks.not_streamable(l, "`go_backwards=True` reads the sequence from its end, which a "
                                                "chunk does not have.")
        if not self._single and hasattr(self.model, "_all_layers"):
            for l in self.model._all_layers():
                if isinstance(l, RepeatVector):
                    raise _checks.not_streamable(l, "it repeats one vector over a new time axis (an "
                                                    "encoder-decoder); stream the encoder and the decoder as "
                                                    "two models.")
                if isinstance(l, (Flatten, Reshape)) and any(len(n.args[0].shape) >= 3 for n in l._inbound_nodes
                                                             if n.args and hasattr(n.args[0], "shape")):
                    raise _checks.not_streamable(l, "it mixes the time axis into the features.")
        self._layers = layers
        self._checked = True

    def initial_states(self, batch_size):
        """Zero states for `batch_size` streams (what ``states=None`` means for layers without a graph
        ``initial_state``)."""
        dev = _device(self.model)
        s = {l.name: access.zero_state(l, batch_size, dev) for l in self.layers}
        return s[self.layers[0].name] if self._single else s

    def _parse(self, states, batch):
        layers = self.layers
        if states is None:
            return {}
        if self._single and not isinstance(states, dict):
            states = {layers[0].name: states}
        pairs = access._by_layer(self.model, layers, states)
        out = {}
        for layer, value in pairs:
            st = access.to_state(layer, value)
            if st[0].shape[0] != batch:
                name = st._fields[0]
                raise _checks.state_shape(layer, name, layer._state_shapes(batch)[0], tuple(st[0].shape))
            out[layer] = st
        return out

    def _fast_setup(self):
        """What one-step calls need to skip the model machinery, or False when they can't: a single
        LSTM layer in a configuration the fused kernels run, returning no cell/gate sequences, in
        inference without autograd, with the compiled kernel available. Decided once."""
        layer = self.model if self._single else None
        cell = getattr(layer, "cell", None)
        kernel = cell.streaming_step() if hasattr(cell, "streaming_step") and getattr(cell, "built", False) else None
        ok = (kernel is not None and not self.grad and not self.training and not layer.go_backwards
              and not layer.return_cell_sequence and not layer.return_gate_sequences
              and layer._static_reason() is None and "c" in cell.state_names)
        if not ok:
            self._fast = False
        else:
            pack = layer._pack if layer.return_state else None
            self._fast = (cell._parameters, layer.input_dim, cell.units, pack, cell.state_type, kernel,
                          layer.return_sequences)
        return self._fast

    def _fast_step(self, fast, x, states):
        """One step on the compiled kernel, or None when this call's inputs don't allow it (then the
        general path runs, and gives any error)."""
        params, F, U, pack, state_type, kernel, sequences = fast
        w_hh = params["weight_hh"]     # looked up per call: weights replaced or moved are always seen
        dtype = w_hh.dtype
        if type(x) is np.ndarray and x.ndim in (2, 3) and x.dtype == _NP_DTYPES.get(dtype):
            x = torch.from_numpy(x)    # a Keras user's numpy step: no copy
        timed = type(x) is torch.Tensor and x.dim() == 3 and x.shape[1] == 1      # (B, 1, F), as Keras passes it
        if timed:
            x = x[:, 0]
        if type(x) is not torch.Tensor or x.dim() != 2 or x.dtype is not dtype or x.shape[1] != F \
                or x.device.type != "cpu" or x.requires_grad or w_hh.device.type != "cpu":
            return None
        B = x.shape[0]
        if states is None:
            h = c = x.new_zeros(B, U)
        elif isinstance(states, tuple) and len(states) == 2:
            h, c = states
            if not (type(h) is torch.Tensor and type(c) is torch.Tensor and h.shape == c.shape == (B, U)
                    and h.dtype is dtype and c.dtype is dtype and h.device == c.device == x.device
                    and not (h.requires_grad or c.requires_grad)):
                return None
        else:
            return None
        h1, c1 = kernel(x, h, c, params["weight_ih"], w_hh, params.get("bias_ih"))
        self.last_path = "compiled-LSTM step (streaming fast path)"
        y = h1.unsqueeze(1) if timed and sequences else h1      # what the layer returns for a (B, 1, F) chunk
        return (pack((y, h1, c1)) if pack is not None else y), state_type(h1, c1)

    # ---- running -------------------------------------------------------------------------------------------
    def step(self, x, states=None):
        """Run one chunk. `x`: (B, T_chunk, F), or (B, F) for one step (a list / dict for several
        inputs). Returns ``(outputs, new_states)``; outputs as the model returns them (without the time
        axis when `x` was one step)."""
        fast = self._fast
        if fast is None:
            fast = self._fast_setup()
        if fast:
            res = self._fast_step(fast, x, states)
            if res is not None:
                return res
        out, new = self._step(x, states)
        if self._single:
            self.last_path = self.layers[0].last_path
            return out, new.get(self.layers[0].name)
        self.last_path = "model graph"
        return out, new

    __call__ = step

    def _step(self, x, states):
        """step, with the states always a {layer_name: state} dict."""
        xs, one_step, batch = self._prepare(x)
        start = self._parse(states, batch)
        ctx = StateContext(start, use_stateful=False, strict=True)
        with torch.set_grad_enabled(self.grad), ctx:
            out = self.model(xs, training=self.training)
        new = {}
        for l in self.layers:
            if l in ctx.final:
                new[l.name] = ctx.final[l]
            elif l in start:
                new[l.name] = start[l]
        if one_step:
            out = pack_like(out, [t.squeeze(1) if isinstance(t, torch.Tensor) and t.dim() >= 3 and t.shape[1] == 1
                                  else t for t in flatten(out)])
        return out, new

    def run(self, x, chunk=1, states=None):
        """Stream a whole sequence `x` (B, T, F) in chunks of `chunk` steps. Returns ``(outputs, states)``:
        outputs with a time axis are concatenated over the chunks; others are the last chunk's."""
        xs = x if isinstance(x, (list, tuple)) else [x]
        xs = [torch.as_tensor(v) if not isinstance(v, torch.Tensor) else v for v in xs]
        T = max(v.shape[1] for v in xs if v.dim() >= 3)
        outs = []
        for t0 in range(0, T, chunk):
            part = [v[:, t0:t0 + chunk] if v.dim() >= 3 else v for v in xs]
            y, states = self.step(part if isinstance(x, (list, tuple)) else part[0], states)
            outs.append(flatten(y))
        merged = [torch.cat(parts, 1) if parts[0].dim() >= 3 else parts[-1] for parts in zip(*outs)]
        return pack_like(y, merged), states

    def _prepare(self, x):
        """Add the time axis to one-step inputs. Returns (inputs, one_step, batch)."""
        if self._single:
            t = _tensor(x, self.model)
            if t.dim() == 2:
                return t.unsqueeze(1), True, t.shape[0]
            return t, False, t.shape[0]
        from ..layers.base import to_tensor
        model = self.model
        if isinstance(x, dict):
            vals = [x[n] for n in model.input_names] if all(n in x for n in getattr(model, "input_names", ())) \
                else None
            if vals is None:
                return model._standardize_inputs(x), False, None       # raises the model's own error
        elif isinstance(x, (list, tuple)):
            vals = list(x)
        else:
            vals = [x]
        vals = [v if isinstance(v, torch.Tensor) else to_tensor(v, None if np_int(v) else torch.float32,
                                                                  _device(model)) for v in vals]
        if not getattr(model, "_graph_ready", True):           # a Sequential never called: any chunk length
            from ..layers.core import Input
            v = vals[0]
            model._input_tensor = Input(batch_shape=(None, None, v.shape[-1])) if v.is_floating_point() \
                else Input(batch_shape=(None, None), dtype="int64")
            model._rebuild()
        one_step = False
        for i, (spec, v) in enumerate(zip(model.inputs, vals)):
            if len(spec.shape) == v.dim() + 1 and (len(spec.shape) >= 3 or not v.is_floating_point()):
                vals[i] = v.unsqueeze(1)
                one_step = True
        if self._layers is None:
            self._check()
        return vals, one_step, vals[0].shape[0]


_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def np_int(v):
    kind = getattr(getattr(v, "dtype", None), "kind", None)
    return kind in ("i", "u")


def _tensor(x, layer):
    from ..layers.base import to_tensor
    return x if isinstance(x, torch.Tensor) else to_tensor(x, torch.float32, layer._device())


def _device(model):
    for p in model.parameters():
        return p.device
    return None
