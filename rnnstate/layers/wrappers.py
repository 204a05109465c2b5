"""Bidirectional and TimeDistributed."""
from __future__ import annotations

import torch

from .. import _checks
from .._state import result_type
from ..states._unpack import checked_result_type
from .._symbolic import SymbolicTensor
from .base import Layer, shape_of, to_mask, to_tensor

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Run a recurrent layer forwards and a copy of it backwards, and merge the outputs.

    ``merge_mode``: ``"concat"`` (default, (.., 2U)), ``"sum"``, ``"mul"``, ``"ave"`` or ``None``
    (both outputs returned separately). With ``return_state=True`` the result is
    ``(output, forward_h, forward_c, backward_h, backward_c)`` (LSTM; GRU/SimpleRNN without the c's),
    never merged; ``res.forward`` / ``res.backward`` give each direction's named state.
    ``initial_state``: forward states first, then backward states. With ``return_sequences`` the
    backward output is flipped back into input time order before merging (Keras).
    Weights: the forward layer's, then the backward layer's.
    """

    _config_args = ("merge_mode",)

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        from .rnn import RNN
        if not isinstance(layer, RNN):
            raise _checks.error(self, f"argument `layer` must be a recurrent layer (LSTM, GRU, SimpleRNN, RNN); "
                                      f"received {type(layer).__name__}.")
        self.merge_mode = _checks.one_of(self, "merge_mode", merge_mode, MERGE_MODES)
        cfg = layer.get_config()
        cfg.pop("batch_input_shape", None)
        if self._batch_input_shape is None and layer._batch_input_shape is not None:
            self._batch_input_shape = layer._batch_input_shape
        cfg["name"] = "forward_" + layer.name
        self.forward_layer = type(layer).from_config(cfg)
        if backward_layer is None:
            bcfg = dict(cfg, name="backward_" + layer.name, go_backwards=not layer.go_backwards)
            backward_layer = type(layer).from_config(bcfg)
        else:
            _checks.backward_layer(self, layer, backward_layer, isinstance(backward_layer, RNN))
            fw_u, bw_u = _output_size(layer), _output_size(backward_layer)
            if self.merge_mode in ("sum", "mul", "ave") and fw_u != bw_u:
                raise _checks.merge_sizes(self, self.merge_mode, fw_u, bw_u)
            if layer.stateful and len(layer.state_size) != len(backward_layer.state_size):
                raise _checks.error(self, f"argument `backward_layer`: stateful layers with different states "
                                          f"({type(layer).__name__} and {type(backward_layer).__name__}) are not "
                                          f"supported yet; expected the same kind of layer.", NotImplementedError)
        self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = layer.stateful
        fields = ["output"] if self.merge_mode is not None else ["forward_output", "backward_output"]
        if self.return_state:
            for prefix, sub in (("forward", self.forward_layer), ("backward", self.backward_layer)):
                n = len(sub.state_size)
                fields += [f"{prefix}_{s}" for s in list(sub._fields[1:])[:n]]
        self._fields = tuple(fields)
        if weights is not None:
            self._pending_weights = weights

    def _sublayers(self):
        return [self.forward_layer, self.backward_layer]

    def build(self, input_shape):
        self.forward_layer._check_rank(self, input_shape)
        self.forward_layer._maybe_build(input_shape)
        self.backward_layer._maybe_build(input_shape)
        if getattr(self, "_pending_weights", None) is not None:
            self.set_weights(self._pending_weights)
            self._pending_weights = None

    @property
    def last_path(self):
        return {"forward": self.forward_layer.last_path, "backward": self.backward_layer.last_path}

    def _split_states(self, initial_state):
        if initial_state is None:
            return None, None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        n, m = len(self.forward_layer.state_size), len(self.backward_layer.state_size)
        if len(states) != n + m:
            raise _checks.error(self, f"argument `initial_state` must be {n + m} tensors: the forward layer's "
                                      f"{n} state(s) then the backward layer's {m}; received {len(states)}.")
        return states[:n], states[n:]

    def _merge(self, y_fw, y_bw):
        m = self.merge_mode
        if m == "concat":
            return torch.cat([y_fw, y_bw], -1)
        if m == "sum":
            return y_fw + y_bw
        if m == "mul":
            return y_fw * y_bw
        if m == "ave":
            return (y_fw + y_bw) / 2
        return None

    def compute_output_spec(self, inputs, initial_state=None, training=None, mask=None):
        self.forward_layer._check_rank(self, shape_of(inputs))
        fw_init, bw_init = self._split_states(initial_state)
        self._adopt_input_dtype(inputs)
        self._maybe_build(shape_of(inputs))
        fw = self.forward_layer.compute_output_spec(inputs, initial_state=fw_init)
        bw = self.backward_layer.compute_output_spec(inputs, initial_state=bw_init)
        fw, bw = _as_list(fw), _as_list(bw)
        y = fw[0]
        if self.merge_mode == "concat":
            out = [SymbolicTensor(y.shape[:-1] + (y.shape[-1] + bw[0].shape[-1],), y.dtype)]
        elif self.merge_mode is None:
            out = [fw[0], bw[0]]
        else:
            out = [SymbolicTensor(y.shape, y.dtype)]
        if self.return_state:
            out += fw[1:] + bw[1:]
        return out[0] if len(out) == 1 else self._result_cls()(*out)

    def compute_output_shape(self, input_shape):
        spec = self.compute_output_spec(SymbolicTensor(input_shape))
        return spec.shape if isinstance(spec, SymbolicTensor) else [s.shape for s in spec]

    def forward(self, inputs, initial_state=None, training=None, mask=None):
        if inputs.dim() != self.forward_layer._input_ndim:
            self.forward_layer._check_rank(self, tuple(inputs.shape))      # speak as this layer, not its inner copies
        if mask is not None:
            mask = to_mask(self, mask, inputs.device)
            if tuple(mask.shape) != tuple(inputs.shape[:2]):
                _checks.mask_shape(self, tuple(inputs.shape[:2]), tuple(mask.shape))
        fw_init, bw_init = self._split_states(initial_state)
        fw = _as_list(self.forward_layer(inputs, initial_state=fw_init, training=training, mask=mask))
        bw = _as_list(self.backward_layer(inputs, initial_state=bw_init, training=training, mask=mask))
        y_fw, y_bw = fw[0], bw[0]
        if self.return_sequences:
            y_bw = y_bw.flip(1)
        out = [y_fw, y_bw] if self.merge_mode is None else [self._merge(y_fw, y_bw)]
        if self.return_state:
            out += fw[1:] + bw[1:]
        return out[0] if len(out) == 1 else self._result_cls()(*out)

    _consumes_mask = True

    def compute_mask(self, inputs, mask=None):
        """Keras: the merged output sequence keeps the input's mask (both outputs for
        ``merge_mode=None``); last-step outputs and states have none."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        seq = mask if self.return_sequences else None
        masks = [seq, seq] if self.merge_mode is None else [seq]
        if self.return_state:
            masks += [None] * (len(self.forward_layer.state_size) + len(self.backward_layer.state_size))
        return masks[0] if len(masks) == 1 else masks

    def _result_cls(self):
        """The named result; unpacking it into the wrong count lists the fields (rnnstate.states._unpack)."""
        t = self.__dict__.get("_result_type")
        if t is None:
            t = self.__dict__["_result_type"] = checked_result_type(result_type(self._fields), _checks.who(self))
        return t

    # ---- stateful: {"forward": state, "backward": state} (logic in rnnstate.states.access) -----------------
    def reset_states(self, states=None, samples=None):
        """Zero both directions' carried states (or only `samples`), or set them: `states` as
        ``{"forward": ..., "backward": ...}`` or the forward states then the backward ones."""
        from ..states import access
        access.reset_states(self, states, samples)

    reset_state = reset_states

    def get_states(self):
        """``{"forward": LSTMState(h, c), "backward": LSTMState(h, c)}`` (copies)."""
        from ..states import access
        return access.get_states(self)

    def set_states(self, states):
        from ..states import access
        access.set_states(self, states)

    def get_config(self):
        cfg = super().get_config()
        cfg["layer"] = {"class_name": type(self.forward_layer).__name__, "config": self.forward_layer.get_config()}
        cfg["layer"]["config"]["name"] = self.forward_layer.name[len("forward_"):]
        cfg["backward_layer"] = {"class_name": type(self.backward_layer).__name__,
                                 "config": self.backward_layer.get_config()}
        return cfg

    @classmethod
    def from_config(cls, config):
        from .. import serialization
        config = dict(config)
        config["layer"] = serialization.deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = serialization.deserialize_layer(config["backward_layer"])
        return cls(**config)


class TimeDistributed(Layer):
    """Apply `layer` to every timestep: (B, T, ...) -> (B, T, ...out) via one call on (B*T, ...)."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        from ..cells.base import Cell
        if not isinstance(layer, Layer) or isinstance(layer, Cell):
            hint = " A cell runs one step with states: wrap it in `RNN(cell)` first." if isinstance(layer, Cell) else ""
            raise _checks.error(self, f"argument `layer` must be an rnnstate layer taking one tensor; received "
                                      f"{type(layer).__name__}.{hint}", TypeError)
        self.layer = layer

    def _sublayers(self):
        return [self.layer]

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise _checks.error(self, f"expects an input of at least 3 dimensions (batch, timesteps, ...); "
                                      f"received shape {_checks.fmt_shape(input_shape)}.")
        self.layer._maybe_build((None,) + tuple(input_shape[2:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    _consumes_mask = True

    def forward(self, inputs, training=None, mask=None):
        """`mask` (B, T, ...) as in Keras: its first two axes must match the input's; the output keeps it
        (per-step layers don't change which steps are padding), and a layer that takes masks gets its
        per-step part."""
        B, T = inputs.shape[:2]
        kwargs = {}
        if mask is not None:
            mask = to_mask(self, mask, inputs.device)
            if mask.dim() < 2 or tuple(mask.shape[:2]) != (B, T):
                raise _checks.error(self, f"argument `mask` must have shape (batch, timesteps, ...) matching the "
                                          f"input's first two axes {_checks.fmt_shape((B, T))}; received shape "
                                          f"{_checks.fmt_shape(tuple(mask.shape))}.")
            if self.layer._consumes_mask and mask.dim() > 2:
                kwargs["mask"] = mask.reshape((B * T,) + tuple(mask.shape[2:]))
        y = self.layer(inputs.reshape((B * T,) + tuple(inputs.shape[2:])), training=training, **kwargs)
        return y.reshape((B, T) + tuple(y.shape[1:]))

    def get_config(self):
        cfg = super().get_config()
        cfg["layer"] = {"class_name": type(self.layer).__name__, "config": self.layer.get_config()}
        return cfg

    @classmethod
    def from_config(cls, config):
        from .. import serialization
        config = dict(config)
        config["layer"] = serialization.deserialize_layer(config["layer"])
        return cls(**config)


def _output_size(layer):
    try:
        return int(layer.cell.output_size)
    except (AttributeError, TypeError):
        return None


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]
