"""`RNN(cell)`: owns the return flags, direction, initial and stateful states, and the path choice.

Calls run either a fused torch kernel (``rnnstate.loop.fused``) or the reference loop
(``rnnstate.loop.reference``); ``layer.last_path`` says which ran and, when not fused, why.
"""
from __future__ import annotations

import torch

from .. import _checks
from .._state import result_type
from .._symbolic import SymbolicTensor
from ..loop import fused, packed, reference
from ..states import _context
from ..states import access as _access
from ..states._unpack import checked_result_type
from .base import FLOAT_DTYPES, Layer, shape_of, to_mask, to_tensor

PATHS = ("auto", "fused", "loop")


class RNN(Layer):
    """A recurrent layer over any cell.

    Args:
        cell: an rnnstate cell (``LSTMCell`` ...), or any object following Keras' contract
            (``call(inputs, states) -> (output, new_states)``, ``state_size``, ``output_size``).
        return_sequences: return the output of every step, (B, T, U), instead of the last, (B, U).
        return_state: also return the final state(s), Keras' order: ``output, *states``.
        go_backwards: process the sequence in reverse (the output sequence is then in reverse order,
            as in Keras).
        stateful: the final states of a call are the initial states of the next (detached, so
            truncated BPTT works). The batch size is fixed by ``Input(batch_size=...)`` /
            ``batch_input_shape`` or taken from the first call. ``get_states`` / ``set_states`` /
            ``reset_states(samples=...)``; for other batch sizes, ``model.stream()`` (rnnstate.states).
        unroll, zero_output_for_mask: accepted for Keras compatibility (no effect on results).
        path: ``"auto"`` (fused kernel when possible), ``"fused"`` (raise if impossible, with the
            reason), or ``"loop"`` (always the reference loop). Keyword-only.

    Call arguments: ``inputs`` (B, T, F); ``initial_state`` a list of (B, U) tensors (any layer's
    output, e.g. a Dense output as ``c``); ``training``; ``mask`` (B, T) bool.
    """

    _config_args = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                    "zero_output_for_mask")

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, *, return_cell_sequence=False,
                 return_gate_sequences=False, path="auto", **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):
            from .stacked import StackedCells
            cell = StackedCells(list(cell), _owner=_checks.who(self))
        self.cell = _checks.rnn_cell(self, cell)
        object.__setattr__(self, "_cell", cell)     # plain reference for the hot path (no nn.Module lookup)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.return_cell_sequence = bool(return_cell_sequence)
        self.return_gate_sequences = bool(return_gate_sequences)
        self._path = _checks.one_of(self, "path", path, PATHS)
        if self.return_cell_sequence and "c" not in _state_names(cell):
            raise _checks.error(self, f"argument `return_cell_sequence=True` needs a cell with a cell state c "
                                      f"(LSTM); {type(cell).__name__} has states {_state_names(cell)}. Its "
                                      f"output sequence (`return_sequences=True`) already is its h sequence.")
        if self.return_gate_sequences and not getattr(cell, "gate_names", ()):
            raise _checks.error(self, f"argument `return_gate_sequences=True` needs a gated cell (LSTM, GRU); "
                                      f"{type(cell).__name__} has no gates.")
        self.last_path = None          # "fused-oneDNN", "fused-cuDNN", "compiled-GRU (...)", "reference loop (<reason>)"
        self._states = None            # stateful: the carried state (NamedTuple of (B, U) tensors)
        self._fields = self._result_fields()

    @property
    def path(self):
        """"auto" | "fused" | "loop": which kernels this layer may use (see the class docstring)."""
        return self._path

    @path.setter
    def path(self, value):
        self._path = _checks.one_of(self, "path", value, PATHS)
        self.__dict__.pop("_static_reason_cache", None)

    # ---- structure ---------------------------------------------------------------------------------
    @property
    def units(self):
        return self.cell.units

    @property
    def state_size(self):
        s = self.cell.state_size
        return list(s) if isinstance(s, (list, tuple)) else [s]

    def _result_fields(self):
        fields = ["output"]
        if self.return_state and hasattr(self.cell, "nest_states"):     # stacked cells: one entry per cell
            fields += [f"cell_{i}" for i in range(len(self.cell.cells))]
        elif self.return_state:
            fields += list(_state_names(self.cell))
        if self.return_cell_sequence:
            fields.append("c_seq")
        if self.return_gate_sequences:
            fields += [f"gate_{g}" for g in self.cell.gate_names]
        return tuple(fields)

    def _pack(self, values):
        if len(values) == 1:
            return values[0]
        t = self.__dict__.get("_result_cls")
        if t is None:       # unpacking into the wrong count names the fields (rnnstate.states._unpack)
            t = self.__dict__["_result_cls"] = checked_result_type(result_type(self._fields), _checks.who(self))
        return t(*values)

    def _sublayers(self):
        return [self.cell]

    # ---- masking -------------------------------------------------------------------------------------
    _consumes_mask = True

    def compute_mask(self, inputs, mask=None):
        """Keras: the output sequence keeps the input's mask (None for a last-step output); states have
        none. The c and gate sequences (time-major like the output) keep it too."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        seq = mask if self.return_sequences else None
        masks = [seq]
        if self.return_state:
            masks += [None] * len(self.state_size)
        if self.return_cell_sequence:
            masks.append(mask)
        if self.return_gate_sequences:
            masks += [mask] * len(self.cell.gate_names)
        return masks[0] if len(masks) == 1 else masks

    # ---- shapes (a layer whose states are not (B, U), e.g. ConvLSTM, overrides these) ------------------
    _input_ndim = 3          # (B, T, F)

    def _check_rank(self, owner, shape):
        """The input rank check, speaking as `owner` (this layer, or a wrapper around it)."""
        _checks.rnn_input_rank(owner, shape)

    def _check_input_shape(self, shape):
        """Rank and feature-count checks of an input shape, symbolic or eager (errors name the layer)."""
        _checks.rnn_input_rank(self, shape)
        if self.built:
            _checks.feature_count(self, self.input_dim, shape)

    def _state_shapes(self, batch):
        """The full shape of each state for `batch` samples: ``(B, U)`` per state here."""
        return [(batch, n) for n in self.state_size]

    def _output_tail(self):
        """The shape of one step's output for one sample: ``(U,)`` here."""
        return (self.cell.output_size,)

    def build(self, input_shape):
        _checks.rnn_input_rank(self, input_shape)
        if isinstance(self.cell, Layer):
            self.cell._maybe_build((input_shape[0], input_shape[-1]))
        elif hasattr(self.cell, "build") and not getattr(self.cell, "built", False):    # a plain Keras-contract cell
            self.cell.build((input_shape[0], input_shape[-1]))
        self.input_dim = input_shape[-1]

    # ---- symbolic ------------------------------------------------------------------------------------
    def compute_output_spec(self, inputs, initial_state=None, training=None, mask=None):
        shape = shape_of(inputs)
        self._check_input_shape(shape)
        self._adopt_input_dtype(inputs)
        self._maybe_build(shape)
        dt = self._compute_dtype()
        B, T = shape[0], shape[1]
        if self.stateful:
            _access.declare_batch(self, B)      # Input(batch_size=...) / batch_input_shape fixes it
        if initial_state is not None:
            self._check_state_shapes([shape_of(s) for s in _as_list(initial_state)], B)
        tail = self._output_tail()
        values = [SymbolicTensor((B, T, *tail) if self.return_sequences else (B, *tail), dt)]
        if self.return_state:
            values += self._returned_states([SymbolicTensor(s, dt) for s in self._state_shapes(B)])
        if self.return_cell_sequence:
            values.append(SymbolicTensor((B, T, self.units), dt))
        if self.return_gate_sequences:
            values += [SymbolicTensor((B, T, self.units), dt) for _ in self.cell.gate_names]
        return self._pack(values)

    def compute_output_shape(self, input_shape):
        spec = self.compute_output_spec(SymbolicTensor(input_shape))
        return spec.shape if isinstance(spec, SymbolicTensor) else [s.shape for s in spec]

    def _check_state_shapes(self, shapes, batch):
        _checks.initial_state(self, shapes, self._state_shapes(batch), _state_names(self.cell))

    # ---- eager ---------------------------------------------------------------------------------------
    def forward(self, inputs, initial_state=None, training=None, mask=None):
        x = inputs
        if x.dim() != 3 or x.shape[2] != self.input_dim:
            self._check_input_shape(tuple(x.shape))
        if x.shape[1] == 0:
            _checks.no_timesteps(self, tuple(x.shape))
        mode = fused.graph_mode(x)          # torch.compile/export/vmap, jit.trace/ONNX, or eager (None)
        B = x.shape[0]
        training = self._is_training(training)
        state = self._start_state(x, initial_state, B)
        cell = self._cell
        rec_mask = None
        if training and self._has_dropout and hasattr(cell, "gate_dropout"):
            x, rec_mask = cell.gate_dropout(x, state)     # a cell that applies its own masks (ConvLSTM: per gate)
        elif training and self._has_dropout:
            if cell.dropout > 0.0:
                x = x * cell.dropout_mask((B, 1, *x.shape[2:]), cell.dropout, x.device, x.dtype)
            if cell.recurrent_dropout > 0.0:     # one mask per sample and state element (B, U), kept over time
                rec_mask = cell.dropout_mask(tuple(state[0].shape), cell.recurrent_dropout, x.device, x.dtype)
        if mask is not None:
            mask = to_mask(self, mask, x.device)
            if tuple(mask.shape) != tuple(x.shape[:2]):
                _checks.mask_shape(self, tuple(x.shape[:2]), tuple(mask.shape))
            if mode is None and bool(mask.all()):   # nothing masked: no mask, and the fused kernels can run
                mask = None
        want_c = self.return_cell_sequence
        want_g = self.return_gate_sequences

        reason = self._static_reason()
        lengths = None
        if mode is not None:                # graph capture: one path for all shapes, no data-dependent choice
            if reason is None and rec_mask is not None:
                reason = fused.dynamic_reason(recurrent_dropout_active=True, mask=None)
            elif reason is None and mask is not None:
                reason = ("a mask under graph capture (which rows are right-padded is data, so the masked "
                          "fast paths can't be chosen)")
            if mode == "trace" and self.stateful:
                _checks.not_traceable(self, "torch.jit.trace and torch.onnx.export(dynamo=False) can't capture a "
                                            "stateful layer: its carried state would be baked into the traced "
                                            "program as a constant. Trace it with stateful=False and pass the "
                                            "states as inputs (initial_state) and outputs (return_state=True)")
            if mode == "func-grad" and reason is None:
                reason = fused.FUNC_GRAD_REASON
            if mode == "trace" and reason is not None:
                _checks.not_traceable(self, fused.trace_reason(reason))
            if reason is None and mode == "compile":
                why = fused.capture_reason(cell, x, state)
                if why is not None:
                    reason = f"under torch.compile/export/vmap without a compiled kernel: {why}"
        elif reason is None and (rec_mask is not None or mask is not None):
            if rec_mask is None and not (want_c or want_g):
                lengths = packed.right_padded_lengths(mask)
            if lengths is None:
                reason = fused.dynamic_reason(recurrent_dropout_active=rec_mask is not None, mask=mask)
        if reason is None and lengths is not None:         # a right-padded mask: packed sequences
            outputs, final, self.last_path = packed.run(
                cell, x, state, lengths, go_backwards=self.go_backwards, training=training,
                zero_output_for_mask=self.zero_output_for_mask,
                need_state=self.return_state or self.stateful or _context.ACTIVE,
                last_only=not self.return_sequences)
            seqs = gates = None
        elif reason is None and mode is not None:
            xs = x.flip(1) if self.go_backwards else x
            outputs, final, seqs, gates, self.last_path = fused.run_captured(
                cell, xs, state, want_states=want_c, want_gates=want_g, training=training)
        elif reason is None:
            xs = x.flip(1) if self.go_backwards else x
            outputs, final, seqs, gates, self.last_path = fused.run_fast(
                cell, xs, state, want_states=want_c, want_gates=want_g, training=training)
        else:
            if self.path == "fused":
                raise _checks.error(self, f"{getattr(self, '_fused_asked_by', None) or 'path=' + repr('fused')} was "
                                          f"requested but the fused kernel can't run: {reason}.")
            res = reference.time_loop(cell, x, state, go_backwards=self.go_backwards, rec_mask=rec_mask,
                                      collect_states=want_c, collect_gates=want_g, mask=mask, training=training,
                                      zero_output_for_mask=self.zero_output_for_mask)
            outputs, final, seqs, gates = res
            self.last_path = f"reference loop ({reason})"
        if self.stateful or _context.ACTIVE:
            self._end_state(inputs, state, final)
        if not (self.return_state or want_c or want_g):
            return outputs if self.return_sequences else outputs[:, -1]
        values = [outputs if self.return_sequences else outputs[:, -1]]
        if self.return_state:
            values += self._returned_states(final)
        if want_c:
            values.append(seqs[list(_state_names(cell)).index("c")])
        if want_g:
            values += list(gates)
        return self._pack(values)

    def _returned_states(self, states):
        """Final states as returned: flat, or Keras' nested per-cell list for stacked cells
        (``output, [h_1, c_1], [h_2, c_2]``, each a named state: ``res.states[0].h``)."""
        nest = getattr(self._cell, "nest_states", None)
        return nest(states) if nest is not None else list(states)

    def __call__(self, inputs=None, *args, **kwargs):
        """Keras 2's ``layer([x, h, c])`` means ``layer(x, initial_state=[h, c])``."""
        if isinstance(inputs, list) and len(inputs) > 1 and not args and kwargs.get("initial_state") is None \
                and all(hasattr(v, "shape") for v in inputs):      # (a nested list of numbers is one array)
            inputs, kwargs["initial_state"] = inputs[0], list(inputs[1:])
        return super().__call__(inputs, *args, **kwargs)

    def _static_reason(self):
        """Why the configuration (not the call) can't run fused, or None. Computed once: the
        configuration of a built layer does not change."""
        r = self.__dict__.get("_static_reason_cache", False)
        if r is False:
            r = (f"{getattr(self, '_loop_asked_by', None) or 'path=' + repr('loop')} was requested"
                 if self.path == "loop" else fused.unsupported_reason(self.cell))
            self.__dict__["_static_reason_cache"] = r
        return r

    @property
    def _has_dropout(self):
        cell = self._cell
        return getattr(cell, "dropout", 0.0) > 0.0 or getattr(cell, "recurrent_dropout", 0.0) > 0.0

    def _start_state(self, x, initial_state, B):
        cell = self._cell
        # a mixed policy (mixed_bfloat16): the recurrence carries its state in the variable dtype (float32)
        sdt = x.dtype if self._compute_name is None or not x.is_floating_point() else \
            FLOAT_DTYPES[self._dtype_name]
        ctx = _context.current() if _context.ACTIVE else None
        if ctx is not None:                 # streaming / plotting: the context may give the state
            s = ctx.start(self)
            if s is not None:
                return s
        if initial_state is not None:
            states = [(s if s.dtype == sdt or not s.is_floating_point() else s.to(sdt))
                      if isinstance(s, torch.Tensor) else to_tensor(s, sdt, x.device, self, "initial_state")
                      for s in _as_list(initial_state)]
            want = self._state_shapes(B)
            if len(states) != len(want) or any(tuple(s.shape) != w for s, w in zip(states, want)):
                self._check_state_shapes([tuple(s.shape) for s in states], B)
            st = getattr(cell, "state_type", None)
            return st(*states) if st is not None else tuple(states)
        if self.stateful and (ctx is None or ctx.use_stateful):
            return _access.carried_state(self, B, x.device, sdt)     # checks the batch size
        if hasattr(cell, "initial_state"):
            return cell.initial_state(B, device=x.device, dtype=sdt)
        if hasattr(cell, "get_initial_state"):
            return tuple(cell.get_initial_state(B))
        return tuple(torch.zeros(B, n, device=x.device, dtype=sdt) for n in self.state_size)

    # ---- stateful (logic in rnnstate.states.access) --------------------------------------------------------
    def _end_state(self, x, state0, final):
        ctx = _context.current() if _context.ACTIVE else None
        if ctx is not None:
            if not hasattr(final, "_fields"):       # Keras-contract cells end in a plain tuple
                final = _access.state_type(self)(*final)
            ctx.finish(self, x, state0, final)      # a context run never touches the carried state
        elif self.stateful:
            if self._compute_name is not None:      # mixed policy: carried in the variable dtype, as Keras does
                dt = FLOAT_DTYPES[self._dtype_name]
                final = type(final)(*[s.to(dt) if s.is_floating_point() else s for s in final])
            _access.keep_state(self, final)         # detached: truncated BPTT across calls

    def reset_states(self, states=None, samples=None):
        """Zero the carried state, or only that of `samples` (a bool mask (B,), True where a sequence
        ends, or indices); or set it to `states` (a NamedTuple or list of (B, U) arrays)."""
        _access.reset_states(self, states, samples)

    reset_state = reset_states

    def get_states(self):
        """The carried state, a NamedTuple of (B, U) tensors (copies); zeros before the first call."""
        return _access.get_states(self)

    def set_states(self, states):
        """Set the carried state from a NamedTuple, list or {name: array} dict of (B, U) arrays."""
        _access.set_states(self, states)

    @property
    def states(self):
        return self._states

    # ---- config -------------------------------------------------------------------------------------
    def get_config(self):
        cfg = super().get_config()
        cfg["cell"] = {"class_name": type(self.cell).__name__, "config": self.cell.get_config()}
        if self.path != "auto":
            cfg["path"] = self.path
        return cfg

    @classmethod
    def from_config(cls, config):
        from .. import serialization
        config = dict(config)
        if isinstance(config["cell"], dict) and config["cell"].get("class_name") in ("StackedCells",
                                                                                     "StackedRNNCells"):
            from .stacked import StackedCells
            config["cell"] = StackedCells.from_config(config["cell"]["config"])
        else:
            config["cell"] = serialization.deserialize_layer(config["cell"])
        return cls(**config)


def _state_names(cell):
    if hasattr(cell, "state_names"):
        return tuple(cell.state_names)
    s = cell.state_size
    n = len(s) if isinstance(s, (list, tuple)) else 1
    return ("h", "c")[:n] if n <= 2 else tuple(f"state_{i}" for i in range(n))


def _as_list(states):
    """States as a flat list (Keras' nested per-cell lists for stacked cells are flattened)."""
    if isinstance(states, (list, tuple)):
        return [t for s in states for t in (_as_list(s) if isinstance(s, (list, tuple)) else [s])]
    return [states]
