"""LayerNormalization and BatchNormalization (Keras' conventions: epsilon 1e-3, momentum 0.99)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import _checks, initializers, regularizers
from ._weights import param, ref
from .base import Layer, init_weight, to_mask

_KERAS_EPSILON = 1e-7          # keras.backend.epsilon(): guards the masked mean's denominator


def _axes(layer, axis, rank):
    """Normalised, sorted, positive axes; axis 0 (batch) and out-of-range axes are refused."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not axes:
        raise _checks.error(layer, f"argument `axis` must name at least one non-batch axis; received {axis!r}.")
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, int) or not -rank <= a < rank or a % rank == 0:
            raise _checks.error(layer, f"argument `axis` must name non-batch axes of the {rank}-D input "
                                       f"(1..{rank - 1} or -1..-{rank - 1}); received {axis!r}.")
        out.append(a % rank)
    return sorted(set(out))


def _resolve_weights_args(layer, **args):
    """``*_initializer`` / ``*_regularizer`` arguments resolved as every layer does (errors name the layer and
    the argument; a None initializer is Keras' default)."""
    for k, v in args.items():
        getter = initializers.get_for_weight if k.endswith("_initializer") else regularizers.get
        setattr(layer, k, _checks.resolved(layer, k, getter, v))

class _Norm(Layer):
    def _penalties(self):
        out = []
        for w, reg in ((getattr(self, "gamma", None), self.gamma_regularizer),
                       (getattr(self, "beta", None), self.beta_regularizer)):
            if w is not None and reg is not None:
                out.append(reg(w))
        return out

    def _own_penalties(self):
        return self._penalties() if self.built else []

    def _check_input(self, shape):
        if len(shape) != self._rank or any(shape[a] is not None and int(shape[a]) != n
                                           for a, n in zip(self._axes, self._param_shape)):
            want = ["?"] * self._rank
            for a, n in zip(self._axes, self._param_shape):
                want[a] = str(n)
            raise _checks.error(self, f"was built for {self._rank}-D inputs of shape (None, {', '.join(want[1:])}) "
                                      f"(? = any); received shape {_checks.fmt_shape(tuple(shape))}.")

    def compute_output_shape(self, input_shape):
        if self.built:
            self._check_input(input_shape)
        return tuple(input_shape)


class LayerNormalization(_Norm):
    """Normalise each sample over `axis` (default the features): ``y = (x - mean) / sqrt(var + epsilon)
    * gamma + beta``, mean and (biased) variance over `axis` per sample. Weights: ``gamma``, ``beta``,
    each of the shape of the normalised axes. Masks pass through unchanged (Keras)."""

    _config_args = ("axis", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                    "beta_regularizer", "gamma_regularizer")

    def __init__(self, axis=-1, epsilon=0.001, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        if kwargs.pop("rms_scaling", False):
            raise _checks.error("LayerNormalization", "argument `rms_scaling=True` (deprecated in Keras) is not "
                                                      "supported; received True.", NotImplementedError)
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.epsilon = _checks.number(self, "epsilon", epsilon, low=0.0)
        self.center, self.scale = bool(center), bool(scale)
        _resolve_weights_args(self, beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                              beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer)

    def build(self, input_shape):
        self._rank = len(input_shape)
        self._axes = _axes(self, self.axis, self._rank)
        if any(input_shape[a] is None for a in self._axes):
            raise _checks.error(self, f"the normalised axes {self._axes} must have known sizes; received shape "
                                      f"{_checks.fmt_shape(input_shape)}.")
        self._param_shape = tuple(int(input_shape[a]) for a in self._axes)
        # F.layer_norm normalises the trailing dims: usable when the axes are exactly those
        self._trailing = self._axes == list(range(self._rank - len(self._axes), self._rank))
        self.gamma = param(self.gamma_initializer, self._param_shape, self, "gamma_initializer") if self.scale else None
        self.beta = param(self.beta_initializer, self._param_shape, self, "beta_initializer") if self.center else None

    def _keras_weights(self):
        if not self.built:
            return []
        return ([ref(self, "gamma")] if self.scale else []) + ([ref(self, "beta")] if self.center else [])

    def _broadcast(self, w):
        shape = [1] * self._rank
        for a, n in zip(self._axes, self._param_shape):
            shape[a] = n
        return w.reshape(shape)

    def forward(self, x, training=None):
        if x.dim() != self._rank:
            self._check_input(tuple(x.shape))
        if self._trailing:
            return F.layer_norm(x, self._param_shape, self.gamma, self.beta, self.epsilon)
        var, mean = torch.var_mean(x, dim=self._axes, keepdim=True, correction=0)
        y = (x - mean) * torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * self._broadcast(self.gamma)
        if self.beta is not None:
            y = y + self._broadcast(self.beta)
        return y


class BatchNormalization(_Norm):
    """Normalise each feature (`axis`) over the batch (and time) with Keras' semantics.

    Training (``fit``, or ``training=True``, and the layer trainable): mean and biased variance of
    the batch over every axis but `axis` (only unmasked steps with a (B, T) mask), then
    ``moving_mean = momentum * moving_mean + (1 - momentum) * mean`` (same for the variance; Keras'
    convention, momentum 0.99, i.e. torch's ``momentum=0.01``). Inference (``predict``, a plain call,
    or a frozen layer): the moving statistics. ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``.

    Weights (Keras order): ``gamma``, ``beta`` (trainable), ``moving_mean``, ``moving_variance``
    (non-trainable: torch buffers, saved in files and set by ``set_weights``).
    """

    _config_args = ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                    "moving_mean_initializer", "moving_variance_initializer", "beta_regularizer",
                    "gamma_regularizer")
    _consumes_mask = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 renorm=False, renorm_clipping=None, renorm_momentum=0.99, synchronized=False, **kwargs):
        if renorm:
            raise _checks.error("BatchNormalization", "argument `renorm=True` is not supported yet by rnnstate; "
                                                      "received True.", NotImplementedError)
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise _checks.error(self, f"argument `axis` must be one axis (an int); received {axis!r}.")
            axis = axis[0]
        self.axis = axis
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise _checks.error(self, f"argument `momentum` must be a float in [0, 1] (Keras' convention: the "
                                      f"weight of the old moving statistics, 0.99 by default); received "
                                      f"{momentum!r}.")
        self.momentum = float(momentum)
        self.epsilon = _checks.number(self, "epsilon", epsilon, low=0.0)
        self.center, self.scale = bool(center), bool(scale)
        _resolve_weights_args(self, beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                              moving_mean_initializer=moving_mean_initializer,
                              moving_variance_initializer=moving_variance_initializer,
                              beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer)

    def build(self, input_shape):
        self._rank = len(input_shape)
        self._axes = _axes(self, self.axis, self._rank)
        a = self._axes[0]
        if input_shape[a] is None:
            raise _checks.error(self, f"axis {self.axis} must have a known size; received shape "
                                      f"{_checks.fmt_shape(input_shape)}.")
        n = int(input_shape[a])
        self._param_shape = (n,)
        self._reduce = [d for d in range(self._rank) if d != a]
        self.gamma = param(self.gamma_initializer, (n,), self, "gamma_initializer") if self.scale else None
        self.beta = param(self.beta_initializer, (n,), self, "beta_initializer") if self.center else None
        for name in ("moving_mean", "moving_variance"):
            init = getattr(self, f"{name}_initializer")
            self.register_buffer(name, init_weight(self, f"{name}_initializer", lambda: init((n,)), (n,)).clone())
        mv = self.moving_variance                          # (meta: the dry build of a loaded file, no values)
        if mv.device.type != "meta" and bool((mv < 0).any()):   # sqrt(var + epsilon) would be NaN at inference
            raise _checks.error(self, f"argument `moving_variance_initializer` must give variances >= 0; received "
                                      f"{_checks._short(self.moving_variance_initializer)}, which gave "
                                      f"{self.moving_variance.min().item():.3g}.")

    def _keras_weights(self):
        if not self.built:
            return []
        ws = ([ref(self, "gamma")] if self.scale else []) + ([ref(self, "beta")] if self.center else [])
        return ws + [ref(self, "moving_mean", trainable=False), ref(self, "moving_variance", trainable=False)]

    def _moments(self, x, mask):
        if mask is None:
            var, mean = torch.var_mean(x, dim=self._reduce, correction=0)
            return mean, var
        m = mask.unsqueeze(-1).expand_as(x)
        w = m.to(x.dtype)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        count = w.sum(self._reduce, keepdim=True) + _KERAS_EPSILON
        mean = torch.where(m, x, zero).sum(self._reduce, keepdim=True) / count
        var = torch.where(m, x - mean, zero).square().sum(self._reduce, keepdim=True) / count
        return mean.reshape(-1), var.reshape(-1)

    def forward(self, x, training=None, mask=None):
        if x.dim() != self._rank or x.shape[self._axes[0]] != self._param_shape[0]:
            self._check_input(tuple(x.shape))
        if mask is not None:
            mask = to_mask(self, mask, x.device)
            if mask.dim() != x.dim() - 1 or tuple(mask.shape) != tuple(x.shape[:-1]):
                raise _checks.error(self, f"argument `mask` must have one axis less than the input, shape "
                                          f"{_checks.fmt_shape(tuple(x.shape[:-1]))}; received shape "
                                          f"{_checks.fmt_shape(tuple(mask.shape))}.")
        if self._is_training(training) and self.trainable:
            mean, var = self._moments(x, mask)
            with torch.no_grad():
                k = self.momentum
                self.moving_mean.mul_(k).add_(mean.detach(), alpha=1.0 - k)
                self.moving_variance.mul_(k).add_(var.detach(), alpha=1.0 - k)
        else:
            mean, var = self.moving_mean, self.moving_variance
        shape = [1] * self._rank
        shape[self._axes[0]] = self._param_shape[0]
        inv = torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            inv = inv * self.gamma
        y = (x - mean.reshape(shape)) * inv.reshape(shape)
        if self.beta is not None:
            y = y + self.beta.reshape(shape)
        return y
