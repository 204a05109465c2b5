"""Layer configs <-> objects, through rnnstate's own registry only (no imports, no eval).

``serialize_layer(layer)`` gives Keras 3's spec shape,
``{"module", "class_name", "config", "registered_name"}``, so the same dict is readable by
``keras.saving.deserialize_keras_object`` for the layers both libraries have.

``deserialize_layer(spec)`` accepts specs written by rnnstate, by Keras 3 (``config.json`` of a
``.keras`` file) and by Keras 2 (legacy ``.h5`` files). Only the class names of
:func:`registry` are ever resolved; the ``module`` key of a spec is ignored, nothing is imported,
no code is executed (a ``Lambda`` layer, a ``__lambda__`` activation or any class outside the
registry is refused with a ``ValueError``; a ``Lambda`` only loads inside ``safe_mode_scope(False)``,
which ``load_model(..., safe_mode=False)`` opens: the caller's explicit trust, as in Keras). Keras-only options that have no effect on predictions
are dropped when at their defaults (``quantization_config=None``, ``sparse=False``, ...);
L1 / L2 / L1L2 weight regularizers of LSTM, GRU, SimpleRNN, ConvLSTM1D/2D/3D and Dense are kept; other regularizers and
constraints (training-only) are dropped with a warning.
"""
from __future__ import annotations

import contextlib
import contextvars
import warnings

from . import _checks

_SAFE_MODE = contextvars.ContextVar("rnnstate_safe_mode", default=True)


def in_safe_mode() -> bool:
    """True unless inside ``safe_mode_scope(False)``: code stored in files (Lambda) is refused."""
    return _SAFE_MODE.get() is not False


@contextlib.contextmanager
def safe_mode_scope(safe_mode=True):
    """``with safe_mode_scope(False): ...`` lets ``Lambda`` layers in configs be rebuilt (their stored
    Python code will run). Keras' ``safe_mode`` argument of ``load_model``."""
    token = _SAFE_MODE.set(safe_mode is not False)
    try:
        yield
    finally:
        _SAFE_MODE.reset(token)

# rnnstate class -> (Keras module, Keras class name, registered_name) for specs Keras can read.
_KERAS_NAMES = {"Model": ("keras.src.models.functional", "Functional", "Functional"),
                "Sequential": ("keras", "Sequential", None)}

# Keras-only config keys rnnstate does not take, dropped when the value is one of these defaults.
_DROP_IF_DEFAULT = {
    "quantization_config": (None,),
    "sparse": (False, None),
    "ragged": (False, None),
    "optional": (False,),
    "lora_rank": (None,),
    "lora_alpha": (None,),
    "autocast": (True,),
    "data_format": ("channels_last", None),
    "time_major": (False,),
    "activity_regularizer": (None,),
    "embeddings_regularizer": (None,),
    "embeddings_constraint": (None,),
    "synchronized": (False,),
    "input_tensor": (None,),
}
# Training-only options rnnstate does not implement: dropped with a warning (predictions unaffected).
_TRAINING_ONLY_SUFFIXES = ("_regularizer", "_constraint")
# rnnstate-only layer options: in model files and to_json they travel in the spec's "rnnstate_options"
# (beside the config, where Keras ignores them); deserialize_layer merges them back.
RNNSTATE_ONLY_OPTIONS = ("path", "return_cell_sequence", "return_gate_sequences")


def registry() -> dict:
    """Class name -> rnnstate class: every class a file may name. Nothing else is ever resolved."""
    from . import layers, models
    names = [n for n in layers.__all__ if n != "Layer"]
    reg = {n: getattr(layers, n) for n in names if isinstance(getattr(layers, n), type)}
    reg.update({"Model": models.Model, "Functional": models.Model, "Sequential": models.Sequential})
    reg.update(_ops())              # Keras 3's operation nodes (NotEqual, Any...) in functional graphs
    return reg


def _ops():
    from .layers import ops
    return ops.OPS


def keras_class_name(layer) -> str:
    name = type(layer).__name__
    return _KERAS_NAMES.get(name, (None, name, None))[1]


def serialize_layer(layer) -> dict:
    """``{"module", "class_name", "config", "registered_name"}`` (Keras 3's spec layout)."""
    cls = type(layer).__name__
    if registry().get(cls) is not type(layer):
        raise ValueError(f"{_checks.who(layer)}: class {cls!r} is not one of rnnstate's registered layers "
                         f"({', '.join(sorted(registry()))}); only those can be saved and loaded.")
    module, kname, registered = _KERAS_NAMES.get(cls, (_keras_module(cls), cls, None))
    config = layer.get_config()
    return {"module": module, "class_name": kname, "config": _keras_nested(config), "registered_name": registered}


def _keras_module(class_name):
    op = _ops().get(class_name)
    return op.keras_module if op is not None else "keras.layers"


def _keras_nested(obj):
    """Give nested layer specs (``layer``, ``backward_layer``, ``cell``) Keras' module keys too."""
    if isinstance(obj, dict):
        out = {k: _keras_nested(v) for k, v in obj.items()}
        cn = out.get("class_name")
        if isinstance(cn, str) and isinstance(out.get("config"), dict) and "module" not in out \
                and cn in registry():
            module, kname, registered = _KERAS_NAMES.get(cn, (_keras_module(cn), cn, None))
            out = {"module": module, "class_name": kname, "config": out["config"], "registered_name": registered,
                   **{k: v for k, v in out.items() if k not in ("class_name", "config")}}
        return out
    if isinstance(obj, list):
        return [_keras_nested(v) for v in obj]
    return obj


def deserialize_layer(spec):
    """``{"class_name": ..., "config": {...}}`` -> a layer. Unknown classes (``Lambda``, user code) are
    refused: nothing in a config is ever imported or executed."""
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"a layer spec must be a dict with 'class_name' and 'config'; received {spec!r:.200}")
    reg = registry()
    class_name = spec["class_name"]
    cls = reg.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(f"unknown layer class {class_name!r:.100}: rnnstate loads only its own layers "
                         f"({', '.join(sorted(reg))}); code-carrying layers such as Lambda are refused.")
    config = spec.get("config", {})
    if isinstance(config, list) and class_name == "Sequential":      # Keras 2.2's Sequential: a bare list
        config = {"layers": config}
    if not isinstance(config, dict):
        raise ValueError(f"the config of a {class_name} layer must be a dict; received {type(config).__name__}.")
    config = clean_config(class_name, config)
    extras = spec.get("rnnstate_options")
    if isinstance(extras, dict):
        config.update({k: v for k, v in extras.items() if k in RNNSTATE_ONLY_OPTIONS})
    who = f"{class_name} '{config.get('name', '?')}'"
    try:
        return cls.from_config(config)
    except TypeError as e:
        raise ValueError(f"cannot build {who} from its config: {e}") from None
    except NotImplementedError as e:
        raise ValueError(f"cannot build {who}: {e}") from None


def clean_config(class_name: str, config: dict) -> dict:
    """A Keras 2/3 or rnnstate config -> keyword arguments rnnstate's constructor takes."""
    out = {}
    dropped = []
    for k, v in config.items():
        if not isinstance(k, str):
            raise ValueError(f"config keys must be strings; received {k!r:.50} in a {class_name} config.")
        if k in _DROP_IF_DEFAULT and _is_default(v, _DROP_IF_DEFAULT[k]):
            continue
        if k.endswith(_TRAINING_ONLY_SUFFIXES) and class_name not in ("Model", "Functional", "Sequential"):
            if k in _SUPPORTED_REGULARIZERS.get(class_name, ()) and _is_builtin_regularizer(v):
                out[k] = v                      # L1 / L2 / L1L2 on weights: rnnstate applies them
                continue
            if v is not None:
                dropped.append(k)
            continue
        if k == "dtype":
            v = _dtype_name(v)
        out[k] = v
    if dropped:
        warnings.warn(f"{class_name} '{config.get('name', '?')}': rnnstate does not implement "
                      f"{', '.join(sorted(dropped))} (training-only; predictions are unaffected); dropped.",
                      UserWarning, stacklevel=3)
    return out


_SUPPORTED_REGULARIZERS = {c: ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")
                           for c in ("LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell",
                                     "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")}
_SUPPORTED_REGULARIZERS["Dense"] = ("kernel_regularizer", "bias_regularizer")


def _is_builtin_regularizer(v):
    return v is None or (isinstance(v, dict) and v.get("class_name") in ("L1", "L2", "L1L2"))


def _is_default(v, defaults):
    return any(v is d or (v == d and type(v) is type(d)) for d in defaults)


def _dtype_name(v):
    """Keras 3's ``DTypePolicy`` dict (or a policy name) -> a dtype name string."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, dict):
        cfg = v.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
            return cfg["name"]
        if isinstance(cfg, str):
            return cfg
    raise ValueError(f"cannot interpret dtype {v!r:.100}; expected a dtype name or a Keras DTypePolicy dict.")
