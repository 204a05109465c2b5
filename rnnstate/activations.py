"""Keras 3 activation functions implemented on torch tensors.

Every public function takes a ``torch.Tensor`` (anything ``torch.as_tensor``
accepts also works) and returns a tensor of the same shape.  Each function's
``__name__`` is its Keras name, so ``serialize(fn)`` is stable and layers can
test ``serialize(fn) == "tanh"`` to pick fused fast paths.

Names follow ``keras.activations`` (Keras 3):

* ``swish`` is an alias of ``silu`` (the same function object, serialized as
  ``"silu"``), as in Keras.
* ``hard_sigmoid`` uses the Keras 3 definition ``relu6(x + 3) / 6`` (Keras 2
  used ``clip(0.2 * x + 0.5, 0, 1)``).
* ``leaky_relu`` defaults to ``negative_slope=0.2`` (Keras), not torch's 0.01.
* ``gelu`` defaults to the exact (erf) form, ``approximate=False``.
* ``None`` means ``linear`` in :func:`get`.
"""

import torch
import torch.nn.functional as F

__all__ = [
    "get",
    "serialize",
    "deserialize",
    "tanh",
    "sigmoid",
    "relu",
    "linear",
    "softmax",
    "hard_sigmoid",
    "elu",
    "selu",
    "gelu",
    "softplus",
    "softsign",
    "silu",
    "swish",
    "exponential",
    "leaky_relu",
    "relu6",
    "log_softmax",
    "log_sigmoid",
    "mish",
    "celu",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "tanh_shrink",
]


def _t(x):
    """Return ``x`` as a tensor (no copy when it already is one)."""
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)


def tanh(x):
    """Hyperbolic tangent: ``tanh(x) = (e^x - e^-x) / (e^x + e^-x)``."""
    return torch.tanh(_t(x))


def sigmoid(x):
    """Logistic sigmoid: ``sigmoid(x) = 1 / (1 + exp(-x))``."""
    return torch.sigmoid(_t(x))


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit (Keras form).

    ``f(x) = min(x, max_value)`` if ``x > threshold`` else
    ``negative_slope * (x - threshold)``; with the defaults ``max(x, 0)``.
    """
    x = _t(x)
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return torch.relu(x)
    if negative_slope != 0.0 and max_value is None and threshold == 0.0:
        return F.leaky_relu(x, negative_slope=negative_slope)
    above = x > threshold
    pos = torch.where(above, x, torch.zeros_like(x))
    if max_value is not None:
        pos = torch.clamp(pos, min=0.0, max=max_value)
    if negative_slope != 0.0:
        neg = torch.relu(threshold - x)
        pos = pos - negative_slope * neg
    return pos


def linear(x):
    """Identity (pass-through): ``linear(x) = x``."""
    return x


def softmax(x, axis=-1):
    """Softmax along ``axis``: ``exp(x_i) / sum_j exp(x_j)``."""
    return torch.softmax(_t(x), dim=axis)


def log_softmax(x, axis=-1):
    """Log-softmax along ``axis``: ``x_i - log(sum_j exp(x_j))``."""
    return torch.log_softmax(_t(x), dim=axis)


def hard_sigmoid(x):
    """Keras 3 hard sigmoid: ``relu6(x + 3) / 6`` (0 below -3, 1 above 3)."""
    return F.relu6(_t(x) + 3.0) / 6.0


def elu(x, alpha=1.0):
    """Exponential linear unit: ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    return F.elu(_t(x), alpha=alpha)


def selu(x):
    """Scaled ELU: ``scale * elu(x, alpha)`` with alpha=1.67326324, scale=1.05070098."""
    return torch.selu(_t(x))


def gelu(x, approximate=False):
    """Gaussian error linear unit: ``x * Phi(x)`` (tanh approximation if ``approximate``)."""
    return F.gelu(_t(x), approximate="tanh" if approximate else "none")


def softplus(x):
    """Softplus: ``log(1 + exp(x))``."""
    return F.softplus(_t(x))


def softsign(x):
    """Softsign: ``x / (1 + |x|)``."""
    return F.softsign(_t(x))


def silu(x):
    """Swish / SiLU: ``x * sigmoid(x)``."""
    return F.silu(_t(x))


swish = silu


def exponential(x):
    """Exponential: ``exp(x)``."""
    return torch.exp(_t(x))


def leaky_relu(x, negative_slope=0.2):
    """Leaky ReLU: ``x`` if ``x >= 0`` else ``negative_slope * x`` (Keras default 0.2)."""
    return F.leaky_relu(_t(x), negative_slope=negative_slope)


def relu6(x):
    """ReLU capped at 6: ``min(max(x, 0), 6)``."""
    return F.relu6(_t(x))


def log_sigmoid(x):
    """Log-sigmoid: ``log(1 / (1 + exp(-x)))``."""
    return F.logsigmoid(_t(x))


def mish(x):
    """Mish: ``x * tanh(softplus(x))``."""
    return F.mish(_t(x))


def celu(x, alpha=1.0):
    """Continuously differentiable ELU: ``max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))``."""
    return F.celu(_t(x), alpha=alpha)


def hard_silu(x):
    """Hard SiLU / hard swish: ``x * relu6(x + 3) / 6``."""
    return F.hardswish(_t(x))


hard_swish = hard_silu


def hard_tanh(x):
    """Hard tanh: ``clip(x, -1, 1)``."""
    return F.hardtanh(_t(x))


def tanh_shrink(x):
    """Tanh shrink: ``x - tanh(x)``."""
    return F.tanhshrink(_t(x))


# Name -> function.  Aliases (``swish``, ``hard_swish``) map to the same
# object, whose ``__name__`` is the canonical Keras name used by serialize().
_REGISTRY = {
    fn.__name__: fn
    for fn in (
        tanh,
        sigmoid,
        relu,
        linear,
        softmax,
        log_softmax,
        hard_sigmoid,
        elu,
        selu,
        gelu,
        softplus,
        softsign,
        silu,
        exponential,
        leaky_relu,
        relu6,
        log_sigmoid,
        mish,
        celu,
        hard_silu,
        hard_tanh,
        tanh_shrink,
    )
}
_ALIASES = {"swish": silu, "hard_swish": hard_silu}
_ALL_NAMES = dict(_REGISTRY, **_ALIASES)

# Torch callables whose default behaviour is identical to a Keras activation;
# serialize() maps them to the Keras name (they deserialize to our function).
# torch's leaky_relu is deliberately absent: its default slope is 0.01, not 0.2.
_TORCH_EQUIVALENTS = {
    torch.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    torch.relu: "relu",
    torch.selu: "selu",
    torch.exp: "exponential",
    F.relu: "relu",
    F.relu6: "relu6",
    F.elu: "elu",
    F.selu: "selu",
    F.gelu: "gelu",
    F.softplus: "softplus",
    F.softsign: "softsign",
    F.silu: "silu",
    F.mish: "mish",
    F.logsigmoid: "log_sigmoid",
    F.hardswish: "hard_silu",
    F.hardtanh: "hard_tanh",
    F.tanhshrink: "tanh_shrink",
}


def _known_names():
    return ", ".join(sorted(_ALL_NAMES))


def get(identifier):
    """Resolve an activation: name string, ``None`` (-> linear), Keras dict, or callable.

    Callables are returned unchanged.  Unknown names raise ``ValueError``.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _ALL_NAMES.get(identifier)
        if fn is None:
            raise ValueError(
                f"Unknown activation {identifier!r}. Expected one of: {_known_names()}"
            )
        return fn
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Could not interpret activation identifier: {identifier!r}. Expected "
        f"a name string, None, or a callable."
    )


def serialize(fn):
    """Return the Keras name of an activation (``None`` -> ``"linear"``).

    Raises ``ValueError`` for callables that are not registered activations.
    """
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        return get(fn).__name__
    for name, registered in _REGISTRY.items():
        if fn is registered:
            return name
    try:
        torch_name = _TORCH_EQUIVALENTS.get(fn)
    except TypeError:  # unhashable callable
        torch_name = None
    if torch_name is not None:
        return torch_name
    raise ValueError(
        f"Activation {fn!r} cannot be serialized: it is not one of the registered "
        f"activations ({_known_names()})."
    )


def deserialize(config):
    """Inverse of :func:`serialize`; also accepts Keras' function dict.

    Keras 3 may store a function as
    ``{"module": "keras.activations", "class_name": "function", "config": "tanh", ...}``.
    Only names in this module's registry are resolved.
    """
    if isinstance(config, dict):
        name = config.get("config")
        if not isinstance(name, str):
            name = config.get("registered_name") or config.get("class_name")
        if not isinstance(name, str):
            raise ValueError(f"Could not interpret activation config: {config!r}")
        return get(name)
    if isinstance(config, str) or config is None:
        return get(config)
    raise ValueError(f"Could not interpret activation config: {config!r}")
