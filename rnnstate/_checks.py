"""All user-facing error wording lives here.

Every message names the layer (class and name), the argument, what was expected
and what was received, so users never have to read a torch traceback.
"""
from __future__ import annotations

import numbers


def who(layer) -> str:
    """``LSTM 'lstm_1'`` for a layer, or the bare class name for a class."""
    if isinstance(layer, str):
        return layer
    if isinstance(layer, type):
        return layer.__name__
    owner = getattr(layer, "_owner", None)       # a cell built by LSTM/GRU/SimpleRNN speaks as that layer
    if owner:
        return owner
    name = getattr(layer, "name", None)
    cls = type(layer).__name__
    return f"{cls} '{name}'" if name else cls


def fmt_shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def error(layer, msg: str, exc=ValueError):
    return exc(f"{who(layer)}: {msg}")


def positive_int(layer, arg: str, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise error(layer, f"argument `{arg}` must be a positive integer; received {value!r}.")
    return int(value)


def fraction(layer, arg: str, value):
    """Dropout-like rates: a float in [0, 1). Never clamped silently."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= float(value) < 1.0):
        raise error(layer, f"argument `{arg}` must be a float in [0, 1); received {value!r}.")
    return float(value)


def one_of(layer, arg: str, value, allowed):
    if value not in allowed:
        raise error(layer, f"argument `{arg}` must be one of {list(allowed)}; received {value!r}.")
    return value


def rnn_input_rank(layer, shape):
    if len(shape) != 3:
        hint = ""
        if len(shape) == 2:
            hint = (" A 2-D input usually means the recurrent layer before this one returned only its last "
                    "output: stacking recurrent layers needs `return_sequences=True` on the layer before, "
                    "and a single sequence needs a batch axis, e.g. `x.reshape((1, timesteps, features))`.")
        raise error(layer, f"expects a 3-D input of shape (batch, timesteps, features); received an input of "
                           f"shape {fmt_shape(shape)} ({len(shape)}-D).{hint}")


def feature_count(layer, expected: int, shape):
    if shape[-1] is not None and int(shape[-1]) != expected:
        raise error(layer, f"was built for inputs with {expected} features (last axis), i.e. shape "
                           f"(batch, timesteps, {expected}); received an input of shape {fmt_shape(shape)}.")


def initial_state(layer, states, expected_shapes, names):
    """`states` is a list of shapes actually given; `expected_shapes` the per-state (batch, units)."""
    want = len(expected_shapes)
    desc = ", ".join(names)
    exp = " and ".join(fmt_shape(s) for s in expected_shapes)
    if len(states) != want:
        got = ", ".join(fmt_shape(s) for s in states) or "nothing"
        raise error(layer, f"argument `initial_state` must be {want} tensor{'s' if want > 1 else ''} ({desc}) "
                           f"of shape {exp}; received {len(states)} tensor{'s' if len(states) != 1 else ''} "
                           f"of shape {got}.")
    for i, (got, exp_s) in enumerate(zip(states, expected_shapes)):
        if len(got) != 2 or any(e is not None and g is not None and int(g) != int(e) for g, e in zip(got, exp_s)):
            raise error(layer, f"argument `initial_state` entry {i} ({names[i]}) must have shape "
                               f"{fmt_shape(exp_s)} (batch, units); received shape {fmt_shape(got)}.")


def not_iterable(layer, shape):
    raise TypeError(
        f"The output of {who(layer)} is a single symbolic tensor of shape {fmt_shape(shape)}; it cannot be "
        f"unpacked or iterated (Tensor objects are only iterable when eager, and this layer returns one "
        f"tensor). To get the final state(s) as well, pass `return_state=True`, e.g. "
        f"`output, h = GRU(units, return_state=True)(x)` or `output, h, c = LSTM(units, return_state=True)(x)`.")


def unknown_kwargs(cls_name, kwargs, hint=""):
    names = ", ".join(f"`{k}`" for k in sorted(kwargs))
    return TypeError(f"{cls_name}: unexpected keyword argument(s) {names}.{hint}")
