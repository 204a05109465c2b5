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

Fast path (the step plan, rnnstate.states._plan): one step at a time, in inference, on CPU, a model
whose every layer has a one-step form (LSTM / GRU / SimpleRNN with compiled kernels, Dense, Embedding,
Activation, Dropout, merges; Sequential or functional) skips the model machinery: a flat list of
per-layer step functions built once, the recurrent ones calling the compiled step kernel their cell
declares (``torch.ops.rnnstate.lstm_step`` / ``gru_step`` / ``rnn_step``). Same numbers, a fraction of
the per-step cost. ``stream.path`` says which path one-step calls take, ``stream.reason`` why not the
plan, and ``stream.last_path`` which one ran.
"""
from __future__ import annotations

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
        self._fast = None           # the one-step plan (None: not decided yet; False: none, see `reason`)
        self._reason = None
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
        """The one-step plan (rnnstate.states._plan), or False when this streamer can't have one (the
        reason in ``self.reason``). Decided once."""
        from . import _plan
        if not self._single and not getattr(self.model, "_graph_ready", True):
            self._reason = "the model has no graph yet (a Sequential never called); decided at the next step"
            return False                     # not cached: the first step builds the graph (_prepare)
        if self.grad or self.training:
            plan, reason = None, f"{'grad=True' if self.grad else 'training=True'} (the step plan is inference-only)"
        else:
            try:
                layers = self.layers
            except ValueError as e:           # not streamable: the general path raises it at the step
                plan, reason = None, str(e)
            else:
                plan, reason = (_plan.build_layer(self.model) if self._single
                                else _plan.build_model(self.model, layers))
        self._fast = plan or False
        self._reason = reason
        return self._fast

    @property
    def reason(self):
        """Why one-step calls run the model graph rather than the step plan (None when they can take the
        plan: the model's every layer has a one-step form)."""
        fast = self._fast if self._fast is not None else self._fast_setup()
        return None if fast else self._reason

    @property
    def path(self):
        """What one-step calls run: the plan's label (e.g. ``"step plan (compiled-LSTM step, Dense)"``),
        or ``"model graph (<reason>)"``."""
        fast = self._fast if self._fast is not None else self._fast_setup()
        return fast.label if fast else f"model graph ({self._reason})"

    # ---- running -------------------------------------------------------------------------------------------
    def step(self, x, states=None):
        """Run one chunk. `x`: (B, T_chunk, F), or (B, F) for one step (a list / dict for several
        inputs). Returns ``(outputs, new_states)``; outputs as the model returns them (without the time
        axis when `x` was one step)."""
        fast = self._fast
        if fast is None:
            fast = self._fast_setup()
        if fast:
            res = fast.run(x, states)
            if res is not None:
                self.last_path = fast.label
                return res
        out, new = self._step(x, states)
        if self._single:
            self.last_path = self.layers[0].last_path
            return out, new.get(self.layers[0].name)
        self.last_path = "model graph"
        return out, new

    __call__ = step

    def _run(self, x, states):
        """step, with `states` a {layer_name: state} dict for every layer and the new states returned as
        one (what StateStore runs): the step plan where it can take the call, else the model graph."""
        fast = self._fast
        if fast is None:
            fast = self._fast_setup()
        if fast:
            if self._single:
                name = fast.names[0]
                res = fast.run(x, states.get(name))
                res = None if res is None else (res[0], {name: res[1]})
            else:
                res = fast.run(x, states)
            if res is not None:
                self.last_path = fast.label
                return res
        out, new = self._step(x, states)
        self.last_path = self.layers[0].last_path if self._single else "model graph"
        return out, new

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
