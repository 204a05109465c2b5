"""Cell protocol and the weight handling shared by the built-in gated cells.

A cell knows one time step and nothing of time, flags or direction:

* ``state_size`` (list of ints, Keras' order), ``output_size``
* ``initial_state(batch_size, device=None, dtype=float32)`` -> a NamedTuple of zeros
* ``step(x_t, state) -> (y_t, new_state)`` for one step, x_t (B, F)
* fast-path split used by the time loop: ``project_input(x)`` (any leading dims, one matmul for
  all steps) and ``recurrent_step(xw_t, state, rec_mask=None, return_gates=False)``
* Keras' contract ``cell(inputs, states) -> (output, new_states_list)``, so rnnstate cells also
  work where Keras cells do.
* its kernels: ``fused_reason()`` says why the cell has no fused kernel for its configuration (None
  when it has); a cell with kernels implements them as methods (``run_torch_op``, ``run_cell_op``,
  ``run_torch_packed``, ``recompute_sequences``, and, with rnnstate's compiled loops,
  ``compiled_reason``, ``run_compiled``, ``run_compiled_train``). ``rnnstate.loop.fused`` holds the
  policy that picks one; the layer asks its cell, never its class name.

Parameters are stored in torch's fused layout (``weight_ih (G*U, F)``, ``weight_hh (G*U, U)``,
``bias_ih``, ``bias_hh``) so the fused kernels run with no per-call re-layout; Keras' layout is
produced only by ``_keras_weights`` (see ``rnnstate._layout``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import _checks, _layout, activations, initializers, regularizers
from ..layers.base import Layer, WeightRef, init_weight, probe_activation, to_tensor

_NOT_YET = ("activity_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint")
_REGULARIZERS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")


class Cell(Layer):
    """Base class of rnnstate cells. Subclasses define ``state_type``, ``initial_state`` and ``step``."""

    state_type = None

    @property
    def state_names(self):
        return self.state_type._fields

    def initial_state(self, batch_size, device=None, dtype=torch.float32):
        z = torch.zeros(batch_size, self.units, device=device, dtype=dtype)
        return self.state_type(*([z] * len(self.state_type._fields)))

    def get_initial_state(self, batch_size):  # Keras' name
        return list(self.initial_state(batch_size, device=self._device()))

    def step(self, x_t, state):
        """One time step: x_t (B, F), state -> (y_t (B, U), new_state)."""
        y, new = self.recurrent_step(self.project_input(x_t), state)
        return y, new

    def forward(self, inputs, states, training=None):
        """Keras' cell contract: ``(inputs, states) -> (output, [new_states])``."""
        states = states if isinstance(states, (list, tuple)) else [states]
        states = [s if isinstance(s, torch.Tensor) else to_tensor(s, inputs.dtype, inputs.device) for s in states]
        y, new = self.step(inputs, self.state_type(*states))
        return y, list(new)

    # ---- kernels ---------------------------------------------------------------------------------------
    kernel_label = None       # "LSTM", "GRU", ...: names the cell's kernels in ``last_path``
    onednn_kernel = False     # torch's op for this cell has a oneDNN kernel on CPU (the LSTM's)

    def fused_reason(self):
        """Why this cell can't run on a fused kernel (None when it can). A cell without kernels of its
        own runs on the reference loop."""
        return f"{type(self).__name__} is a custom cell; it declares no fused kernel"

    def compiled_reason(self, x, state):
        """Why rnnstate's compiled loop can't run this call (None when it can). Called only when
        ``fused_reason()`` is None."""
        return f"{type(self).__name__} has no compiled kernel"


    _generator = None      # a cell's own dropout generator (Keras' `seed`), set by cells that take one

    def _keras_recurrent_args(self, who, activation, recurrent_activation, use_bias, weight_initializers,
                              weight_regularizers, dropout, recurrent_dropout, seed):
        """The arguments every Keras recurrent cell takes, resolved and checked (errors name `who`):
        activations, ``use_bias``, the kernel/recurrent/bias initializers and regularizers (dicts by
        argument name), ``dropout``, ``recurrent_dropout`` and ``seed`` (which seeds the dropout masks)."""
        self.activation = _checks.resolved(who, "activation", activations.get, activation)
        self.recurrent_activation = _checks.resolved(who, "recurrent_activation", activations.get,
                                                     recurrent_activation)
        self.use_bias = bool(use_bias)
        for k, v in weight_initializers.items():
            setattr(self, k, _checks.resolved(who, k, initializers.get_for_weight, v))
        for k, v in weight_regularizers.items():
            setattr(self, k, _checks.resolved(who, k, regularizers.get, v))
        self.dropout = _checks.fraction(who, "dropout", dropout)
        self.recurrent_dropout = _checks.fraction(who, "recurrent_dropout", recurrent_dropout)
        self.seed = _checks.seed(who, seed)
        self._generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    def dropout_mask(self, shape, rate, device, dtype):
        """Keras' dropout mask: one Bernoulli(1 - rate) draw per sample and unit (or element), kept for
        all steps, scaled by 1 / (1 - rate)."""
        keep = 1.0 - rate
        if self._generator is not None:
            m = torch.rand(shape, generator=self._generator).to(device=device)
        else:
            m = torch.rand(shape, device=device)
        return (m < keep).to(dtype) / keep


class GatedCell(Cell):
    """Weights, config and Keras layout for LSTM / GRU / SimpleRNN cells (G gate blocks of U units)."""

    kind = ""          # key into _layout.GATE_PERM
    n_gates = 1
    _config_args = ("units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
                    "recurrent_initializer", "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
                    "bias_regularizer", "dropout", "recurrent_dropout", "seed")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", dropout=0.0, recurrent_dropout=0.0, seed=None, _owner=None, **kwargs):
        self._owner = _owner
        for k in _NOT_YET:
            if kwargs.get(k, None) is not None:
                raise _checks.error(_owner or type(self).__name__, f"argument `{k}` is not supported yet by rnnstate; "
                                                         f"received {kwargs[k]!r}. Pass None (the default).",
                                    NotImplementedError)
            kwargs.pop(k, None)
        regs = {k: kwargs.pop(k, None) for k in _REGULARIZERS}
        kwargs.pop("implementation", None)   # Keras 2's kernel choice: rnnstate picks its own path
        super().__init__(**kwargs)
        self.units = _checks.positive_int(self, "units", units)
        if (isinstance(activation, (int, float)) and not isinstance(activation, bool)) or (
                isinstance(activation, (tuple, list)) and all(isinstance(d, int) or d is None for d in activation)):
            shape = tuple(activation) if isinstance(activation, (tuple, list)) else "(timesteps, features)"
            raise _checks.error(self, f"argument `activation` must be an activation name or callable; received "
                                      f"{activation!r}. The second positional argument is `activation`, not the "
                                      f"input size or shape: give the input shape as `input_shape={shape}` "
                                      f"or with `Input(shape={shape})`.")
        self._keras_recurrent_args(self, activation, recurrent_activation, use_bias,
                                   {"kernel_initializer": kernel_initializer,
                                    "recurrent_initializer": recurrent_initializer,
                                    "bias_initializer": bias_initializer}, regs, dropout, recurrent_dropout, seed)
        # refuse sizes no machine can hold before anything is allocated (the kernel is checked at build)
        _checks.weights_fit(self, "units", self.units, f"the recurrent kernel ({self.units}, "
                                                       f"{self.n_gates * self.units})",
                            self.units * self.n_gates * self.units)
        self.state_size = [self.units] * len(self.state_type._fields)
        self.output_size = self.units

    # ---- activation names, for the fused-path check --------------------------------------------------
    @property
    def activation_name(self):
        return _act_name(self.activation)

    @property
    def recurrent_activation_name(self):
        return _act_name(self.recurrent_activation)

    # ---- weights --------------------------------------------------------------------------------------
    def _keras_bias_shape(self):
        return (self.n_gates * self.units,)

    def _init_keras_bias(self):
        return self.bias_initializer(self._keras_bias_shape())

    def _bias_hh_is_param(self):
        return False

    def build(self, input_shape):
        feat = input_shape[-1]
        if feat is None:
            raise _checks.error(self, f"the last axis (features) of the input must be known; received shape "
                                      f"{_checks.fmt_shape(input_shape)}.")
        self.input_dim = int(feat)
        G = self.n_gates * self.units
        _checks.weights_fit(self, "units", self.units, f"with {self.input_dim} input features, the kernel "
                            f"({self.input_dim}, {G}) and recurrent kernel ({self.units}, {G})",
                            (self.input_dim + self.units) * G)
        probe_activation(self, "activation", self.activation, self.units)
        probe_activation(self, "recurrent_activation", self.recurrent_activation, self.units)
        kernel = init_weight(self, "kernel_initializer", lambda: self.kernel_initializer((self.input_dim, G)),
                             (self.input_dim, G))                                        # (F, G)
        rec = init_weight(self, "recurrent_initializer", lambda: self.recurrent_initializer((self.units, G)),
                          (self.units, G))                                               # (U, G)
        self.weight_ih = nn.Parameter(_layout.kernel_to_torch(kernel, self.kind))        # (G, F)
        self.weight_hh = nn.Parameter(_layout.kernel_to_torch(rec, self.kind))           # (G, U)
        if self.use_bias:
            b = init_weight(self, "bias_initializer", self._init_keras_bias, self._keras_bias_shape())
            if b.dim() == 2:    # GRU reset_after: (2, G)
                self.bias_ih = nn.Parameter(_layout.bias_to_torch(b[0], self.kind))
                self.bias_hh = nn.Parameter(_layout.bias_to_torch(b[1], self.kind))
            else:
                self.bias_ih = nn.Parameter(_layout.bias_to_torch(b, self.kind))
                self.register_buffer("bias_hh", torch.zeros(G), persistent=False)
        else:
            self.bias_ih = None
            self.bias_hh = None

    def _keras_weights(self):
        if not self.built:
            return []
        kind, U, G = self.kind, self.units, self.n_gates * self.units

        def put_param(name, conv):
            def put(v):
                getattr(self, name).copy_(conv(v, kind))
            return put

        ws = [
            WeightRef(self, "kernel", (self.input_dim, G), lambda: _layout.kernel_from_torch(self.weight_ih, kind),
                      put_param("weight_ih", _layout.kernel_to_torch)),
            WeightRef(self, "recurrent_kernel", (U, G), lambda: _layout.kernel_from_torch(self.weight_hh, kind),
                      put_param("weight_hh", _layout.kernel_to_torch)),
        ]
        if self.use_bias:
            if self._bias_hh_is_param():
                def get_b():
                    return torch.stack([_layout.bias_from_torch(self.bias_ih, kind),
                                        _layout.bias_from_torch(self.bias_hh, kind)])

                def put_b(v):
                    self.bias_ih.copy_(_layout.bias_to_torch(v[0], kind))
                    self.bias_hh.copy_(_layout.bias_to_torch(v[1], kind))
                ws.append(WeightRef(self, "bias", (2, G), get_b, put_b))
            else:
                ws.append(WeightRef(self, "bias", (G,), lambda: _layout.bias_from_torch(self.bias_ih, kind),
                                    put_param("bias_ih", _layout.bias_to_torch)))
        return ws

    def _own_penalties(self):
        """Regularization penalties of this cell's weights (Keras: kernel, recurrent_kernel, bias)."""
        if not self.built:
            return []
        out = []
        for reg, w in ((self.kernel_regularizer, self.weight_ih), (self.recurrent_regularizer, self.weight_hh)):
            if reg is not None:
                out.append(reg(w if regularizers.is_sum_based(reg) else _layout.kernel_view(w, self.kind)))
        if self.bias_regularizer is not None and self.bias_ih is not None:
            b = self.bias_ih if not self._bias_hh_is_param() else torch.stack([self.bias_ih, self.bias_hh])
            out.append(self.bias_regularizer(b))
        return out

    # ---- kernels shared by the gated cells (each cell adds its own ops) --------------------------------
    def _torch_params(self):
        """torch's flat RNN weights: ([w_ih, w_hh, b_ih, b_hh], has_bias)."""
        if self.bias_ih is None:
            return [self.weight_ih, self.weight_hh], False
        return [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh], True

    def _overrides(self, cls, *names):
        """The first of `names` that a subclass overrides (its equations then differ from the kernels')."""
        for n in names:
            if getattr(type(self), n) is not getattr(cls, n):
                return n
        return None

    def _gated_reason(self, cls):
        """The checks the LSTM/GRU kernels share: activations tanh/sigmoid, equations not overridden."""
        over = self._overrides(cls, "recurrent_step", "project_input")
        if over is not None:
            return (f"{type(self).__name__} overrides `{over}`; the fused kernels implement "
                    f"{cls.__name__}'s equations")
        if self.activation_name != "tanh":
            return f"activation={self.activation_name!r}; the fused kernels need 'tanh'"
        if self.recurrent_activation_name != "sigmoid":
            return f"recurrent_activation={self.recurrent_activation_name!r}; the fused kernels need 'sigmoid'"
        return None

    def _compiled_inputs_reason(self, x, state, b2):
        """Why the compiled loop can't take these tensors (None when it can): the extension, CPU,
        float32/float64, one dtype and device for inputs, states and weights."""
        from ..loop import fused
        reason = fused.kernel_inputs_reason(x)
        if reason is not None:
            return reason
        dt, dev = x.dtype, x.device
        ts = [self.weight_ih, self.weight_hh, *state] + [b for b in (self.bias_ih, b2) if b is not None]
        if any(t.dtype != dt or t.device != dev for t in ts):
            return "inputs, states and weights differ in dtype or device"
        return None

    # ---- per-sequence pieces used by the time loop ----------------------------------------------------
    def project_input(self, x):
        """x (..., F) -> x @ W_ih^T + b_ih, (..., G*U): the input part of every gate, all steps at once."""
        return F.linear(x, self.weight_ih, self.bias_ih)



def _act_name(fn):
    try:
        return activations.serialize(fn)
    except ValueError:
        return None
