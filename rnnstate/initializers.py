"""Keras 3 weight initializers producing torch tensors in Keras layout.

Every initializer is called as ``init(shape, dtype=None) -> torch.Tensor``
(``dtype`` defaults to ``torch.float32``).  Shapes are in Keras layout, e.g. a
recurrent kernel is ``(units, 4 * units)`` with ``fan_in = shape[0]`` and
``fan_out = shape[1]``.

Seed semantics follow Keras 3 exactly:

* ``seed=<int>``: every call of the same object returns the same values (a
  fresh ``torch.Generator`` seeded with that int is used on each call).
* ``seed=None``: Keras draws a random default seed once, when the object is
  constructed, so the *same object* also returns the same values on every
  call, while two separately constructed objects differ.  Here the default
  seed is drawn from torch's global RNG at construction time, so
  ``torch.manual_seed`` / ``rnnstate.utils.set_random_seed`` make it
  reproducible.  ``get_config()`` still reports ``seed=None``, as Keras does.

Values cannot match Keras' JAX/TF random streams; distributions and formulas
do match.  Configs and :func:`serialize` output use Keras' format, so they can
be read by ``keras.initializers.deserialize`` and vice versa.
"""

import math
import numbers

import numpy as np
import torch

from . import _checks

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "Identity",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "Orthogonal",
    "zeros",
    "ones",
    "constant",
    "identity",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "compute_fans",
    "get",
    "get_for_weight",
    "serialize",
    "deserialize",
]

# Std of a unit normal truncated to [-2, 2]; VarianceScaling divides by it so
# the truncated samples have the requested variance.
_TRUNCATED_NORMAL_STD = 0.87962566103423978

_DTYPE_NAMES = {
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def _standardize_dtype(dtype):
    """Map ``None`` / str / numpy / torch dtype to a ``torch.dtype`` (None -> float32)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = str(dtype)
    if isinstance(name, str) and name.startswith("torch."):
        name = name[len("torch."):]
    if name not in _DTYPE_NAMES:
        raise ValueError(f"Unsupported dtype: {dtype!r}")
    return _DTYPE_NAMES[name]


def _standardize_shape(shape):
    """Return ``shape`` as a tuple of python ints."""
    if isinstance(shape, numbers.Integral):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def _float_dtype(dtype):
    """Validate a floating dtype for random initializers (None -> float32)."""
    dtype = _standardize_dtype(dtype)
    if not dtype.is_floating_point:
        raise ValueError(
            f"Random initializers only support floating dtypes. Received: dtype={dtype}"
        )
    return dtype


def compute_fans(shape, input_axes=None, output_axes=None):
    """Keras fan rule: 2-D ``(fan_in, fan_out) = shape``; N-D ``(shape[-2], shape[-1]) * prod(shape[:-2])``.

    0-D gives ``(1, 1)`` and 1-D gives ``(shape[0], shape[0])``.  When both
    ``input_axes`` and ``output_axes`` are given, each fan is the product of
    the sizes along those axes.
    """
    shape = _standardize_shape(shape)
    if input_axes is not None and output_axes is not None:
        fan_in = 1
        for axis in input_axes:
            fan_in *= shape[axis]
        fan_out = 1
        for axis in output_axes:
            fan_out *= shape[axis]
        return int(fan_in), int(fan_out)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = 1
    for d in shape[:-2]:
        receptive *= d
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``__call__(shape, dtype=None)`` returns a tensor; ``get_config()`` returns its kwargs."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError(
            f"{type(self).__name__} must implement __call__(shape, dtype=None)."
        )

    def get_config(self):
        """Return the constructor kwargs as a JSON-friendly dict."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Build an instance from ``get_config()`` output: ``cls(**config)``."""
        return cls(**config)

    def clone(self):
        """Return a new instance with the same config."""
        return self.__class__.from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------------------
# Deterministic initializers
# ---------------------------------------------------------------------------


class Zeros(Initializer):
    """All zeros: ``w = 0``."""

    def __call__(self, shape, dtype=None):
        return torch.zeros(_standardize_shape(shape), dtype=_standardize_dtype(dtype))


class Ones(Initializer):
    """All ones: ``w = 1``."""

    def __call__(self, shape, dtype=None):
        return torch.ones(_standardize_shape(shape), dtype=_standardize_dtype(dtype))


class Constant(Initializer):
    """Constant fill: ``w = value`` (scalar or array broadcast to ``shape``)."""

    def __init__(self, value=0.0):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            value = value.item() if value.ndim == 0 else value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        _finite_values(self, "value", value)
        self.value = value

    def __call__(self, shape, dtype=None):
        dtype = _standardize_dtype(dtype)
        shape = _standardize_shape(shape)
        value = torch.as_tensor(self.value, dtype=dtype)
        try:
            torch.broadcast_shapes(tuple(value.shape), shape)
        except RuntimeError:
            raise _checks.error(self, f"argument `value` of shape {_checks.fmt_shape(tuple(value.shape))} must "
                                      f"broadcast to the weight's shape {_checks.fmt_shape(shape)}; it does "
                                      f"not.") from None
        return (value * torch.ones(shape, dtype=dtype)).expand(shape).contiguous()

    def get_config(self):
        return {"value": self.value}


class Identity(Initializer):
    """Scaled (possibly rectangular) identity matrix: ``w = gain * eye(rows, cols)``; 2-D only."""

    def __init__(self, gain=1.0):
        self.gain = _checks.number(self, "gain", gain, low=-_BIG, high=_BIG)

    def __call__(self, shape, dtype=None):
        shape = _standardize_shape(shape)
        if len(shape) != 2:
            raise ValueError(
                "Identity matrix initializer can only be used for 2D matrices. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        dtype = _standardize_dtype(dtype)
        return self.gain * torch.eye(*shape, dtype=dtype)

    def get_config(self):
        # Keras 3's Identity.get_config() returns {} (dropping ``gain``); we keep
        # it so the round trip is lossless.  Keras accepts this config too.
        return {"gain": self.gain}


# Initializer hyperparameters are bounded so the weights they give stay finite in float32 (|w| <= 3.4e38).
_BIG = 1e30


def _finite_values(owner, arg, value):
    """A constant's value: finite numbers (a scalar or a nested list), never NaN/inf weights."""
    try:
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":          # strings, objects, complex: not numbers (np would parse '0')
            raise TypeError(a.dtype)
        a = a.astype(np.float64)
    except (TypeError, ValueError):
        raise _checks.error(owner, f"argument `{arg}` must be a finite number or an array of them; received "
                                   f"{value!r:.100}.", TypeError) from None
    if not (np.isfinite(a).all() and (np.abs(a) <= _BIG).all()):
        raise _checks.error(owner, f"argument `{arg}` must be a finite number in [-1e+30, 1e+30] or an array of "
                                   f"them (NaN/inf would give NaN/inf weights); received {value!r:.100}.")


# ---------------------------------------------------------------------------
# Random initializers
# ---------------------------------------------------------------------------


class RandomInitializer(Initializer):
    """Base for seeded initializers: an int seed (or a seed drawn at construction) fixes the values."""

    def __init__(self, seed=None):
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
        ):
            raise ValueError(
                f"`seed` argument should be an integer or None. Received: seed={seed!r}"
            )
        self._init_seed = None if seed is None else int(seed)
        if seed is None:
            # Keras draws a default seed once per object (so repeated calls of
            # the same object give the same values).  Draw it from torch's
            # global RNG so torch.manual_seed makes it reproducible.
            # Explicitly on the CPU: under ``torch.device("meta")`` (the shape-only dry build of a
            # loaded config) a default device would make the draw a valueless meta tensor.
            seed = int(torch.randint(1, 10**9, (1,), device="cpu").item())
        self.seed = int(seed)

    def _generator(self):
        """A fresh generator seeded with ``self.seed`` (same stream every call)."""
        return torch.Generator().manual_seed(self.seed)

    def get_config(self):
        return {"seed": self._init_seed}


def _sample_dtype(dtype):
    """Dtype to sample in (float64 stays float64, everything else float32)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _normal(shape, mean, stddev, dtype, generator):
    work = _sample_dtype(dtype)
    out = torch.randn(shape, generator=generator, dtype=work)
    return (out * stddev + mean).to(dtype)


def _uniform(shape, minval, maxval, dtype, generator):
    work = _sample_dtype(dtype)
    out = torch.rand(shape, generator=generator, dtype=work)
    return (out * (maxval - minval) + minval).to(dtype)


def _truncated_normal(shape, mean, stddev, dtype, generator):
    """Normal(mean, stddev) restricted to ``[mean - 2 stddev, mean + 2 stddev]``."""
    work = _sample_dtype(dtype)
    out = torch.empty(shape, dtype=work)
    if out.numel():
        torch.nn.init.trunc_normal_(
            out,
            mean=0.0,
            std=1.0,
            a=-2.0,
            b=2.0,
            generator=generator,
        )
    return (out * stddev + mean).to(dtype)


class RandomNormal(RandomInitializer):
    """Normal samples: ``w ~ N(mean, stddev^2)``."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _checks.number(self, "mean", mean, low=-_BIG, high=_BIG)
        self.stddev = _checks.number(self, "stddev", stddev, low=0.0, high=_BIG)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _normal(
            _standardize_shape(shape),
            self.mean,
            self.stddev,
            _float_dtype(dtype),
            self._generator(),
        )

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(RandomInitializer):
    """Uniform samples: ``w ~ U[minval, maxval)``."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = _checks.number(self, "minval", minval, low=-_BIG, high=_BIG)
        self.maxval = _checks.number(self, "maxval", maxval, low=-_BIG, high=_BIG)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _uniform(
            _standardize_shape(shape),
            self.minval,
            self.maxval,
            _float_dtype(dtype),
            self._generator(),
        )

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class TruncatedNormal(RandomInitializer):
    """Truncated normal: ``w ~ N(mean, stddev^2)`` restricted to ``|w - mean| <= 2 stddev``."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _checks.number(self, "mean", mean, low=-_BIG, high=_BIG)
        self.stddev = _checks.number(self, "stddev", stddev, low=0.0, high=_BIG)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _truncated_normal(
            _standardize_shape(shape),
            self.mean,
            self.stddev,
            _float_dtype(dtype),
            self._generator(),
        )

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class VarianceScaling(RandomInitializer):
    """Variance scaling: ``n = fan_in | fan_out | (fan_in + fan_out) / 2``, target ``Var(w) = scale / max(1, n)``.

    ``uniform``: ``U[-sqrt(3 s/n), sqrt(3 s/n)]``; ``truncated_normal``
    (``"normal"`` is an alias): truncated at 2 std with std
    ``sqrt(s/n) / 0.87962566103423978``; ``untruncated_normal``: ``N(0, s/n)``.
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("uniform", "truncated_normal", "untruncated_normal")

    def __init__(
        self,
        scale=1.0,
        mode="fan_in",
        distribution="truncated_normal",
        seed=None,
        input_axes=None,
        output_axes=None,
    ):
        scale = _checks.number(self, "scale", scale, low=0.0, high=_BIG, low_open=True)
        if mode not in self._MODES:
            raise ValueError(
                f"Invalid `mode` argument: {mode!r}. Expected one of {self._MODES}"
            )
        dist = str(distribution).lower()
        if dist == "normal":
            dist = "truncated_normal"
        if dist not in self._DISTRIBUTIONS:
            raise ValueError(
                f"Invalid `distribution` argument: {distribution!r}. "
                f"Expected one of {self._DISTRIBUTIONS}"
            )
        self.scale = scale
        self.mode = mode
        self.distribution = dist
        self.input_axes = None if input_axes is None else list(input_axes)
        self.output_axes = None if output_axes is None else list(output_axes)
        super().__init__(seed=seed)

    def _variance(self, shape):
        """Target variance ``scale / max(1, n)`` for ``shape``."""
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        if self.mode == "fan_in":
            n = fan_in
        elif self.mode == "fan_out":
            n = fan_out
        else:
            n = (fan_in + fan_out) / 2.0
        return self.scale / max(1.0, n)

    def __call__(self, shape, dtype=None):
        shape = _standardize_shape(shape)
        dtype = _float_dtype(dtype)
        variance = self._variance(shape)
        gen = self._generator()
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / _TRUNCATED_NORMAL_STD
            return _truncated_normal(shape, 0.0, stddev, dtype, gen)
        if self.distribution == "untruncated_normal":
            return _normal(shape, 0.0, math.sqrt(variance), dtype, gen)
        limit = math.sqrt(3.0 * variance)
        return _uniform(shape, -limit, limit, dtype, gen)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


class _FixedVarianceScaling(VarianceScaling):
    """VarianceScaling preset whose config is only ``seed`` / ``input_axes`` / ``output_axes``."""

    _PRESET = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        scale, mode, distribution = self._PRESET
        super().__init__(
            scale=scale,
            mode=mode,
            distribution=distribution,
            seed=seed,
            input_axes=input_axes,
            output_axes=output_axes,
        )

    def get_config(self):
        return {
            "seed": self._init_seed,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


class GlorotUniform(_FixedVarianceScaling):
    """Glorot/Xavier uniform: ``U[-l, l]``, ``l = sqrt(6 / (fan_in + fan_out))``."""

    _PRESET = (1.0, "fan_avg", "uniform")


class GlorotNormal(_FixedVarianceScaling):
    """Glorot/Xavier normal: truncated normal, ``std = sqrt(2 / (fan_in + fan_out)) / 0.8796...``."""

    _PRESET = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    """He uniform: ``U[-l, l]``, ``l = sqrt(6 / fan_in)``."""

    _PRESET = (2.0, "fan_in", "uniform")


class HeNormal(_FixedVarianceScaling):
    """He normal: truncated normal, ``std = sqrt(2 / fan_in) / 0.8796...``."""

    _PRESET = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    """LeCun uniform: ``U[-l, l]``, ``l = sqrt(3 / fan_in)``."""

    _PRESET = (1.0, "fan_in", "uniform")


class LecunNormal(_FixedVarianceScaling):
    """LeCun normal: truncated normal, ``std = sqrt(1 / fan_in) / 0.8796...``."""

    _PRESET = (1.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    """Orthogonal: ``w = gain * Q`` from the QR of a normal ``(prod(shape[:-1]), shape[-1])`` matrix.

    ``Q`` is sign-corrected by ``sign(diag(R))`` and transposed when there are
    fewer rows than columns, so ``Q^T Q = I`` (or ``Q Q^T = I``).
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = _checks.number(self, "gain", gain, low=-_BIG, high=_BIG)
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape = _standardize_shape(shape)
        if len(shape) < 2:
            raise ValueError(
                "The tensor to initialize must be at least two-dimensional. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        dtype = _float_dtype(dtype)
        rows = 1
        for d in shape[:-1]:
            rows *= d
        cols = shape[-1]
        flat = (max(rows, cols), min(rows, cols))
        work = _sample_dtype(dtype)
        a = torch.randn(flat, generator=self._generator(), dtype=work)
        q, r = torch.linalg.qr(a, mode="reduced")
        q = q * torch.sign(torch.diagonal(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).to(dtype).contiguous()

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


# snake_case aliases: the classes themselves, as in ``keras.initializers``.
zeros = Zeros
ones = Ones
constant = Constant
identity = Identity
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_uniform = HeUniform
he_normal = HeNormal
lecun_uniform = LecunUniform
lecun_normal = LecunNormal
orthogonal = Orthogonal

_CLASSES = (
    Zeros,
    Ones,
    Constant,
    Identity,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    Orthogonal,
)


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


# Name -> class.  Same keys Keras resolves: CamelCase, snake_case and its
# legacy aliases.  Only these names can ever be deserialized.
_REGISTRY = {cls.__name__: cls for cls in _CLASSES}
_REGISTRY.update({_snake(cls.__name__): cls for cls in _CLASSES})
_REGISTRY.update(
    {
        "normal": RandomNormal,
        "uniform": RandomUniform,
        "one": Ones,
        "zero": Zeros,
        "IdentityInitializer": Identity,
        "OrthogonalInitializer": Orthogonal,
    }
)
_BUILTIN_CLASSES = frozenset(_CLASSES)


def _known_names():
    return ", ".join(sorted(_REGISTRY))


def serialize(initializer):
    """Keras-format config: ``{"module", "class_name", "config", "registered_name"}`` (None -> None).

    ``deserialize(serialize(init))`` rebuilds an equivalent object; the dict
    is also accepted by ``keras.initializers.deserialize``.
    """
    if initializer is None:
        return None
    if isinstance(initializer, str):
        initializer = get(initializer)
    if isinstance(initializer, type) and issubclass(initializer, Initializer):
        initializer = initializer()
    if not isinstance(initializer, Initializer):
        raise ValueError(
            f"Initializer {initializer!r} cannot be serialized: only Initializer "
            "instances (with get_config()) can."
        )
    cls = type(initializer)
    builtin = cls in _BUILTIN_CLASSES
    return {
        "module": "keras.initializers" if builtin else cls.__module__,
        "class_name": cls.__name__,
        "config": initializer.get_config(),
        "registered_name": None if builtin else cls.__name__,
    }


def deserialize(config, custom_objects=None):
    """Rebuild an initializer from :func:`serialize` output (or a bare name string).

    Class names are looked up ONLY in this module's registry, plus the
    explicit ``custom_objects`` mapping if given; no module is ever imported.
    """
    if isinstance(config, str):
        config = {"class_name": config, "config": {}}
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "Could not interpret initializer config: expected a dict with "
            f"'class_name' and 'config', got {config!r}"
        )
    class_name = config["class_name"]
    cls = None
    if custom_objects:
        cls = custom_objects.get(class_name) or custom_objects.get(
            config.get("registered_name")
        )
    if cls is None:
        cls = _REGISTRY.get(class_name)
    if cls is None:
        raise ValueError(
            f"Unknown initializer {class_name!r}. Expected one of: {_known_names()}"
        )
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"Initializer config must be a dict, got {inner!r}")
    if isinstance(cls, type) and issubclass(cls, Initializer):
        return cls.from_config(dict(inner))
    return cls(**inner) if inner else cls()


def get(identifier):
    """Resolve an initializer from a name, Keras dict, class, instance, callable or array.

    Strings and dicts go through :func:`deserialize`; classes are
    instantiated; instances and callables are returned unchanged; an array
    or tensor becomes an initializer returning that value (shape must match).
    ``None`` returns ``None``.
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if isinstance(identifier, type):
        if issubclass(identifier, Initializer):
            return identifier()
        raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")
    if isinstance(identifier, (torch.Tensor, np.ndarray, np.generic)):
        if isinstance(identifier, torch.Tensor):
            value = identifier.detach()
        else:
            value = torch.as_tensor(np.asarray(identifier))

        def initialize_fn(shape, dtype=None):
            shape = _standardize_shape(shape)
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"Expected `shape` to be {tuple(value.shape)} for direct "
                    f"tensor as initializer. Received shape={shape}"
                )
            return value.clone().to(_standardize_dtype(dtype))

        return initialize_fn
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")


def get_for_weight(identifier):
    """:func:`get` for a layer's ``*_initializer`` argument: ``None`` means Keras' default for a
    float weight (``add_weight(initializer=None)`` uses ``glorot_uniform``), as Keras layers do."""
    if identifier is None:
        return GlorotUniform()
    return get(identifier)
