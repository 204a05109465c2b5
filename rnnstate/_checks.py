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


def no_timesteps(layer, shape):
    raise error(layer, f"needs at least one timestep (as Keras' recurrent layers do); received an input of shape "
                       f"{fmt_shape(shape)} (0 timesteps).")


def not_traceable(layer, why):
    """A call torch.jit.trace / TorchScript ONNX export can't capture correctly: refused, never baked."""
    raise error(layer, why + ".", RuntimeError)


def feature_count(layer, expected: int, shape):
    if shape[-1] is not None and int(shape[-1]) != expected:
        raise error(layer, f"was built for inputs with {expected} features (last axis), i.e. shape "
                           f"(batch, timesteps, {expected}); received an input of shape {fmt_shape(shape)}.")


def mask_shape(layer, expected, received):
    raise error(layer, f"argument `mask` must be a (batch, timesteps) boolean array matching the input, i.e. shape "
                       f"{fmt_shape(expected)}; received shape {fmt_shape(received)}.")


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


# ---- states: stateful layers, get/set/reset, streaming, the state store ----------------------------------------
def stateful_batch(layer, expected, received, how):
    """A stateful layer got a batch whose size differs from the one its state is for."""
    if how == "declared":
        fix = ("The batch size was fixed by the model's input (`Input(batch_size=...)` or `batch_input_shape`). "
               "To run other batch sizes, stream with explicit states (`model.stream()`, any batch size), or "
               "build the model with `Input(shape=...)` (batch size taken from the first call).")
    else:
        fix = ("The batch size was taken from the first call; call `reset_states()` to start over with "
               "another batch size, or stream with explicit states (`model.stream()`, any batch size).")
    return error(layer, f"is stateful and holds states for a batch of {expected} samples; received a batch of "
                        f"{received} samples.\n- Expected batch size: {expected}\n- Received batch size: "
                        f"{received}\n{fix}")


def not_stateful(layer, method):
    return error(layer, f"`{method}` needs `stateful=True`; this layer carries no state between calls. Create "
                        f"it with `stateful=True`, or pass states explicitly (`initial_state=` on a call, or "
                        f"`model.stream()`).")


def no_state_yet(layer):
    return error(layer, "holds no state yet and its batch size is unknown: call it on a batch first, give the "
                        "batch size (`Input(batch_size=...)` or `batch_input_shape=`), or `set_states(...)`.")


def no_stateful_layers(model, method):
    return error(model, f"`{method}` found no stateful recurrent layer in this model (create them with "
                        f"`stateful=True`); there is no state to {'reset' if 'reset' in method else 'get or set'}. "
                        f"For explicit states on any model use `model.stream()`.")


def reset_samples(layer, samples, batch):
    return error(layer, f"argument `samples` of `reset_states` must be a bool mask of length {batch} (True where "
                        f"a sequence ends) or integer sample indices in [0, {batch}); received {samples!r:.200}.")


def states_and_samples(layer):
    return error(layer, "`reset_states` takes either `states` (new values for the whole batch) or `samples` "
                        "(which samples to zero), not both.")


def state_count(owner, expected, names, received):
    return error(owner, f"expects {expected} state tensor{'s' if expected != 1 else ''} ({', '.join(names)}); "
                        f"received {received}.")


def state_shape(owner, name, expected, received):
    return error(owner, f"state `{name}` must have shape {fmt_shape(expected)} (batch, units); received shape "
                        f"{fmt_shape(received)}.")


def state_keys(owner, unknown, known):
    return error(owner, f"has no recurrent layer(s) named {sorted(unknown)} to take states; known: {list(known)}.")


def state_structure(owner, expected, received):
    return error(owner, f"states must be {expected}; received {received}.", TypeError)


def layer_ran_twice(layer):
    return error(layer, "ran twice in one step; a layer called at two places in a graph has two states, which "
                        "a stream can't key by layer name. Use two layers (they may share weights via "
                        "`set_weights`).")


def not_streamable(layer, why):
    return error(layer, f"can't be streamed: {why} Streaming (chunk by chunk, carrying states) equals the full "
                        f"run only when time flows forward through every layer.")


def peek_nothing(model):
    return error(model, "`predict(..., peek=True)` keeps the states of stateful layers unchanged, but this model "
                        "has no stateful layer; drop `peek=True`.")


def unpack_count(owner, fields, n):
    """A named result unpacked into the wrong number of names (Python would only say "expected 3")."""
    bidi = any(f.startswith("backward_") for f in fields)
    named = f"`res.{fields[0]}`" + (", `res.forward.h`, `res.backward.h`" if bidi else
                                    "".join(f", `res.{f}`" for f in fields[1:3]))
    msg = (f"{owner} returns {len(fields)} values ({', '.join(fields)}); they were unpacked into {n} "
           f"name{'s' if n != 1 else ''}. Unpack all {len(fields)}: `{', '.join(fields)} = ...`, or keep the "
           f"result and use its fields ({named}).")
    if bidi:
        msg += (" For one state covering both directions, concatenate them: "
                "`state_h = Concatenate()([forward_h, backward_h])`.")
    return ValueError(msg)


def store_keys(store, msg):
    return ValueError(f"StateStore: {msg}")


def plot_nothing(obj):
    return error(obj, "has no recurrent layer to plot (LSTM, GRU, SimpleRNN, RNN or Bidirectional).")


def plot_units(obj, units, n):
    return error(obj, f"argument `units` must be unit indices in [0, {n}); received {units!r:.200}.")
