"""Functional `Model(inputs, outputs)`: a graph of layer calls, ordered once, run eagerly on torch."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import _checks
from .._symbolic import SymbolicTensor, flatten, has_symbolic, map_structure, pack_like
from ..layers.base import Layer, _numbers_only, shape_of, to_tensor
from ..layers.core import InputLayer
from ..saving._walk import number_repeats
from ..saving.mixin import SavingMixin
from ..states import _context
from ..training import TrainingMixin
from ..training.data import is_batch_iterable
from ..training.progress import resolve_verbose
from .summary import print_summary


class Model(TrainingMixin, SavingMixin, Layer):
    """A model built from symbolic tensors: ``Model(inputs=Input(...), outputs=layer(...)(...))``.

    Calling it on arrays or tensors runs it eagerly (``model(x)`` returns torch tensors; ``predict``
    returns numpy); calling it on symbolic tensors nests it in a bigger graph. A layer used twice
    shares its weights. New models can be cut out of an existing one from any of its symbolic
    tensors (``Model(model.input[0], model.layers[2].output)``: the encoder-decoder inference pattern).
    """

    _applies_policy = False    # each of its layers applies its own dtype policy

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        if inputs is None or outputs is None:
            raise _checks.error(self, "needs `inputs` and `outputs` (symbolic tensors from `Input(...)` and layer "
                                      "calls); subclassed models are not supported yet.", TypeError)
        self._init_graph(inputs, outputs)

    # ---- graph ----------------------------------------------------------------------------------------
    def _init_graph(self, inputs, outputs):
        self.__dict__.pop("_device_cache", None)
        self._input_structure = inputs
        self.inputs = flatten(inputs)
        if isinstance(outputs, tuple) and hasattr(outputs, "_fields"):
            outputs = list(outputs)
        self._output_structure = outputs
        self.outputs = flatten(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, SymbolicTensor):
                raise _checks.error(self, f"`inputs` and `outputs` must be symbolic tensors (from `Input(...)` and "
                                          f"layer calls); received {type(t).__name__}.", TypeError)
        for t in self.inputs:
            if not isinstance(t.layer, InputLayer):
                raise _checks.error(self, f"every entry of `inputs` must come from `Input(...)`; received one "
                                          f"produced by {_checks.who(t.layer)}.")
        input_ids = {id(t) for t in self.inputs}
        order, seen, visiting, layer_index = [], set(), set(), {}

        def visit(node):
            if id(node) in seen:
                return
            layer_index.setdefault(node.layer, len(layer_index))
            for t in node.inputs:
                if id(t) in input_ids:
                    layer_index.setdefault(t.layer, len(layer_index))
                    continue
                if isinstance(t.layer, InputLayer):
                    raise _checks.error(self, f"the graph is disconnected: {t!r} (input '{t.layer.name}') is needed "
                                              f"to compute the outputs but is not in `inputs`.")
                visit(t.node)
            seen.add(id(node))
            order.append(node)

        for t in self.outputs:
            if id(t) in input_ids:
                layer_index.setdefault(t.layer, len(layer_index))
            else:
                visit(t.node)
        self._nodes = order                                             # topological, inputs excluded
        # Keras' layer order: by depth from the outputs (deepest first), ties by discovery order
        depth = {}
        for node in reversed(order):
            d = depth.get(id(node), 0)
            for t in node.inputs:
                key = id(t.node)
                depth[key] = max(depth.get(key, 0), d + 1)
        layer_depth = {}
        for t in self.inputs:
            layer_depth[t.layer] = depth.get(id(t.node), 0)
        for node in order:
            layer_depth[node.layer] = max(layer_depth.get(node.layer, 0), depth.get(id(node), 0))
        for t in self.inputs:            # inputs first, as Keras
            layer_depth[t.layer] = max(layer_depth.values()) + 1 if t.layer not in [n.layer for n in order] else 0
        layers = sorted(layer_index, key=lambda l: (-layer_depth.get(l, 0), layer_index[l]))
        names = [l.name for l in layers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise _checks.error(self, f"all layer names in a model must be unique; these repeat: {dup}.")
        self._layers = {l.name: l for l in layers}          # by name: get_layer
        _register_by_position(self, layers)
        self.input_names = [t.layer.name for t in self.inputs]
        self.output_names = number_repeats([t.layer.name for t in self.outputs])
        self.built = True

    @property
    def layers(self):
        return list(self._layers.values())

    def _sublayers(self):
        return [l for l in self.layers if not isinstance(l, InputLayer)]

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        if name in self._layers:
            return self._layers[name]
        raise _checks.error(self, f"has no layer named {name!r}; layers: {list(self._layers)}.")

    @property
    def input(self):
        return self._input_structure

    @property
    def input_shape(self):
        """Keras' ``model.input_shape``: the input's shape with None for the batch (a list for several)."""
        return _shapes_of(self._input_structure)

    @property
    def output_shape(self):
        """Keras' ``model.output_shape``: the output's shape (a list for several outputs)."""
        return _shapes_of(self._output_structure)

    @property
    def output(self):
        return self._output_structure

    # ---- running -----------------------------------------------------------------------------------------
    def _run_graph(self, inputs, training=False, output_masks=None):
        """inputs: list of tensors (one per model input) -> flat list of output tensors. With
        `output_masks` (a list), it receives the outputs' masks (None where unmasked)."""
        streaming = _context.ACTIVE      # model.stream() / StateStore: token ids (B, T) may come in any length
        for t, v in zip(self.inputs, inputs):
            last_fixed = t.shape[-1] is not None and not (streaming and v.dim() == 2 and not v.is_floating_point())
            if v.dim() != len(t.shape) or (last_fixed and v.shape[-1] != t.shape[-1]):
                raise _checks.error(self, f"input '{t.layer.name}' expects shape {_checks.fmt_shape(t.shape)}; "
                                          f"received shape {_checks.fmt_shape(tuple(v.shape))}.")
        values = {id(t): v for t, v in zip(self.inputs, inputs)}
        if self._masking:
            return self._run_graph_masked(values, training, output_masks)

        def get(a):
            return values[id(a)] if isinstance(a, SymbolicTensor) else a

        for node in self._nodes:
            args = map_structure(get, node.args) if node.args else ()
            kwargs = map_structure(get, node.kwargs) if node.kwargs else {}
            out = node.layer(*args, training=training, **kwargs)
            if len(node.outputs) == 1:
                values[id(node.outputs[0])] = out
            else:
                for t, v in zip(node.outputs, flatten(out)):
                    values[id(t)] = v
        if output_masks is not None:
            output_masks[:] = [None] * len(self.outputs)
        return [values[id(t)] for t in self.outputs]

    @property
    def _masking(self) -> bool:
        """Whether a layer of this graph makes a mask (Embedding(mask_zero=True), Masking). Decided once:
        graphs without one run with no masking overhead at all."""
        m = self.__dict__.get("_masking_cache")
        if m is None:
            m = self.__dict__["_masking_cache"] = any(getattr(l, "_mask_source", False) for l in self.layers)
        return m

    def _run_graph_masked(self, values, training, output_masks):
        """The graph run with Keras 3's mask propagation: every tensor may carry a (B, T) bool mask; a
        layer whose call takes ``mask`` (recurrent layers, Bidirectional) receives its input's mask when
        it is called on that single tensor (as in Keras 3, not when other tensors such as
        ``initial_state`` are passed too, unless ``mask=`` is given explicitly); each layer's
        ``compute_mask`` gives its outputs' masks (by default the input's, unchanged)."""
        masks: dict = {}

        def get(a):
            return values[id(a)] if isinstance(a, SymbolicTensor) else a

        def mask_of(a):
            return masks.get(id(a)) if isinstance(a, SymbolicTensor) else None

        for node in self._nodes:
            layer = node.layer
            args = map_structure(get, node.args) if node.args else ()
            kwargs = map_structure(get, node.kwargs) if node.kwargs else {}
            first = node.args[0] if node.args else None
            in_mask = map_structure(mask_of, first) if first is not None else None
            masked = any(m is not None for m in flatten(in_mask)) if in_mask is not None else False
            if getattr(layer, "_positional_masks", False):     # MultiHeadAttention(query, value, key)
                every = [map_structure(mask_of, a) for a in node.args]
                if any(m is not None for m in flatten(every)) and kwargs.get("mask") is None:
                    kwargs["mask"] = every
                    masked = True
            elif masked and layer._consumes_mask and kwargs.get("mask") is None and not (
                    has_symbolic(node.kwargs) or has_symbolic(node.args[1:])):
                kwargs["mask"] = in_mask
            out = node.layer(*args, training=training, **kwargs)
            outs = [out] if len(node.outputs) == 1 else flatten(out)
            for t, v in zip(node.outputs, outs):
                values[id(t)] = v
            if masked or layer._mask_source or kwargs.get("mask") is not None:
                prev = kwargs.get("mask") if kwargs.get("mask") is not None else (in_mask if masked else None)
                out_mask = layer.compute_mask(args[0] if args else None, prev)
                if out_mask is not None:
                    # one mask for several outputs (Attention with return_attention_scores): the first's
                    ms = [out_mask] if len(node.outputs) == 1 or isinstance(out_mask, torch.Tensor) \
                        else list(out_mask)
                    for t, m in zip(node.outputs, ms):
                        if m is not None:
                            masks[id(t)] = m
        if output_masks is not None:
            output_masks[:] = [masks.get(id(t)) for t in self.outputs]
        return [values[id(t)] for t in self.outputs]

    def compute_mask(self, inputs, mask=None):
        """A model used as a layer passes on no mask (its own layers use theirs inside)."""
        return None

    def _standardize_inputs(self, x):
        """Any of tensor / array / list / dict -> list of tensors in `self.inputs` order, checked."""
        if isinstance(x, dict):
            missing = [n for n in self.input_names if n not in x]
            if missing:
                raise _checks.error(self, f"the input dict lacks {missing}; expected keys {self.input_names}, "
                                          f"received {list(x)}.")
            x = [x[n] for n in self.input_names]
        elif not isinstance(x, (list, tuple)) or (hasattr(x, "shape") and not isinstance(x, (list, tuple))) or (
                len(self.inputs) == 1 and _numbers_only(x)):     # one input given as a nested list of numbers
            x = [x]
        x = list(x)
        if len(x) != len(self.inputs):
            raise _checks.error(self, f"expects {len(self.inputs)} input(s) ({', '.join(self.input_names)}); "
                                      f"received {len(x)}.")
        dev = self._device()
        out = []
        for t, v in zip(self.inputs, x):
            want = t.dtype if t.dtype.is_floating_point else None
            v = to_tensor(v, want, dev, owner=self, arg=f"input '{t.layer.name}'")
            if v.dim() != len(t.shape):
                raise _checks.error(self, f"input '{t.layer.name}' expects shape {_checks.fmt_shape(t.shape)}; "
                                          f"received shape {_checks.fmt_shape(tuple(v.shape))}.")
            out.append(v)
        return out

    def forward(self, inputs, training=None, mask=None):
        xs = self._standardize_inputs(inputs)
        outs = self._run_graph(xs, training=self._is_training(training))
        return pack_like(self._output_structure, outs)

    def __call__(self, *args, **kwargs):
        return super().__call__(*args, **kwargs)

    def _convert_input(self, x):
        return x       # _standardize_inputs converts per input dtype

    def compute_output_spec(self, inputs, training=None, mask=None):
        """Run the graph on symbolic tensors (nesting this model in another graph)."""
        xs = flatten(inputs)
        if len(xs) != len(self.inputs):
            raise _checks.error(self, f"expects {len(self.inputs)} input(s); received {len(xs)}.")
        values = {id(t): v for t, v in zip(self.inputs, xs)}

        def get(a):
            return values[id(a)] if isinstance(a, SymbolicTensor) else a

        for node in self._nodes:
            spec = node.layer.compute_output_spec(*map_structure(get, node.args), **map_structure(get, node.kwargs))
            for t, v in zip(node.outputs, flatten(spec)):
                values[id(t)] = v
        outs = [SymbolicTensor(values[id(t)].shape, values[id(t)].dtype) for t in self.outputs]
        return pack_like(self._output_structure, outs)

    def build(self, input_shape):
        pass

    # ---- inference ------------------------------------------------------------------------------------------
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None, *, peek=False):
        """numpy in, numpy out (a list for several outputs), in batches of `batch_size` (32), no autograd.

        Stateful layers: predict advances their states, as in Keras (so predicting one step at a time
        continues a sequence); ``peek=True`` leaves them as they were (a look ahead)."""
        _checks.fit_arguments(self, "predict", batch_size, steps=steps)
        if peek:
            from ..states import access
            if not access.recurrent_layers(self, stateful_only=True):
                raise _checks.peek_nothing(self)
            with access.peek(self):
                return self.predict(x, batch_size, verbose, steps, callbacks)
        if callbacks or steps is not None or is_batch_iterable(x) or resolve_verbose(verbose) != 0:
            # progress bar, callbacks, iterables of batches: the training engine's predict
            return TrainingMixin.predict(self, x, batch_size, verbose, steps, callbacks)
        # the lean path (verbose=0, arrays): no per-call overhead a user could feel
        xs = self._standardize_inputs(x)
        n = xs[0].shape[0]
        for name, v in zip(self.input_names, xs):
            if v.shape[0] != n:
                raise _checks.error(self, f"all inputs must have the same number of samples; '{self.input_names[0]}' "
                                          f"has {n}, '{name}' has {v.shape[0]}.")
        bs = batch_size or 32
        # every layer honours training=False explicitly, so no module-mode switching is needed here
        with torch.inference_mode():
            if n <= bs:
                outs = self._run_graph(xs, training=False)
            else:
                parts = [self._run_graph([v[i:i + bs] for v in xs], training=False) for i in range(0, n, bs)]
                outs = [torch.cat(p, 0) for p in zip(*parts)]
        arrays = [(o.float() if o.dtype == torch.bfloat16 else o).detach().cpu().numpy() for o in outs]  # numpy has no bf16
        if isinstance(self._output_structure, SymbolicTensor):
            return arrays[0]
        return arrays


    # ---- states -----------------------------------------------------------------------------------------------
    def _stateful_layers(self):
        return [l for l in self._all_layers() if getattr(l, "stateful", False) and hasattr(l, "reset_states")]

    def _all_layers(self):
        out = []
        for l in self.layers:
            out.append(l)
            if isinstance(l, Model):
                out.extend(l._all_layers())
        return out

    # get / set / reset / peek / stream: logic and structures in rnnstate.states (access, streaming)
    def reset_states(self, states=None, samples=None):
        """Zero every stateful layer's carried state; with `samples` (a bool mask (B,), True where a
        sequence ends, or indices) only those samples'; with `states`, set them (as `set_states`).
        Raises if the model has no stateful layer."""
        from ..states import access
        access.reset_states(self, states, samples)

    reset_state = reset_states

    def get_states(self, as_list=False):
        """``{layer_name: LSTMState(h, c) | {"forward": ..., "backward": ...}}`` for the stateful layers
        (copies), or with ``as_list=True`` the same tensors in Keras' order."""
        from ..states import access
        return access.get_states(self, as_list=as_list)

    def set_states(self, states):
        """Set stateful layers' states from the `get_states` dict (all or some layers) or Keras' list."""
        from ..states import access
        access.set_states(self, states)

    def peek_states(self):
        """``with model.peek_states(): ...``: every stateful layer's state is put back afterwards."""
        from ..states import access
        return access.peek(self)

    def stream(self, training=False, grad=False):
        """A :class:`rnnstate.states.Streamer`: ``y_t, states = model.stream().step(x_t, states)``, explicit
        states at any batch size (see rnnstate.states.streaming for the semantics)."""
        from ..states.streaming import Streamer
        return Streamer(self, training=training, grad=grad)

    # ---- display -------------------------------------------------------------------------------------------------
    def summary(self, line_length=None, print_fn=None, **kwargs):
        print_summary(self, print_fn=print_fn)

    def count_params(self):
        return int(sum(int(np.prod(w.shape)) for w in self.weights))



def _register_by_position(model, layers):
    """Register `layers` as torch submodules named by position, as ``nn.Sequential`` does, so that
    ``state_dict`` keys are ``<position>.<param>`` (``model.layers[position]``): they do not depend on
    the process-wide name counter, and a second copy of a model built in the same process loads the first
    one's ``state_dict``."""
    for name in [n for n in model._modules if n.isdigit()]:
        del model._modules[name]
    for i, layer in enumerate(layers):
        model._modules[str(i)] = layer


def _shapes_of(structure):
    if isinstance(structure, SymbolicTensor):
        return tuple(structure.shape)
    if isinstance(structure, dict):
        return {k: _shapes_of(v) for k, v in structure.items()}
    return [_shapes_of(v) for v in structure]
