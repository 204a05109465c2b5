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


def positive_int(layer, arg: str, value, maximum=None):
    """A positive int (not a bool), at most `maximum` if given (sizes torch holds in 32 bits: `INT32_MAX`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise error(layer, f"argument `{arg}` must be a positive integer; received {value!r}.")
    if maximum is not None and value > maximum:
        raise error(layer, f"argument `{arg}` must be a positive integer <= {maximum}; received {value!r}.")
    return int(value)


INT32_MAX = 2 ** 31 - 1


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


def conv_rnn_input_rank(layer, shape, rank, data_format):
    """A ConvLSTM{rank}D input must be (batch, timesteps, *spatial, channels) (or channels first)."""
    sp = ", ".join(("steps",) if rank == 1 else ("rows", "cols") if rank == 2 else ("dim1", "dim2", "dim3"))
    want = f"(batch, timesteps, {sp}, channels)" if data_format == "channels_last" else \
        f"(batch, timesteps, channels, {sp})"
    if len(shape) != rank + 3:
        hint = ""
        if len(shape) == rank + 2:
            hint = (" A single sequence needs a batch axis; a layer before that returned only its last step "
                    "needs `return_sequences=True`.")
        raise error(layer, f"expects a {rank + 3}-D input of shape {want}; received an input of shape "
                           f"{fmt_shape(shape)} ({len(shape)}-D).{hint}")


def conv_rnn_input_shape(layer, built_step, step):
    """A built ConvLSTM got a step of another spatial/channel shape than the one its weights and states are for."""
    if any(b is not None and s is not None and int(b) != int(s) for b, s in zip(built_step, step)):
        raise error(layer, f"was built for input steps of shape {fmt_shape((None, *built_step))}; received steps "
                           f"of shape {fmt_shape((None, *step))} (the spatial and channel dims are fixed at the first "
                           f"call, as in Keras).")


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
    what = "(batch, units)" if len(expected_shapes[0]) == 2 else \
        "(batch, *spatial, filters), as the layer's output step"
    for i, (got, exp_s) in enumerate(zip(states, expected_shapes)):
        if len(got) != len(exp_s) or any(e is not None and g is not None and int(g) != int(e)
                                         for g, e in zip(got, exp_s)):
            raise error(layer, f"argument `initial_state` entry {i} ({names[i]}) must have shape "
                               f"{fmt_shape(exp_s)} {what}; received shape {fmt_shape(got)}.")


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


# ---- constructor arguments ----------------------------------------------------------------------------------
def _short(value, n=120):
    """``repr`` of a received value, cut to `n` characters, with its type when that helps."""
    r = repr(value)
    if len(r) > n:
        r = r[:n] + "..."
    kind = type(value).__name__
    plain = ("int", "float", "str", "bool", "NoneType", "tuple", "list", "dict")
    return r if kind in plain else f"{r} (of type {kind})"


def integer(owner, arg: str, value, minimum=None, allow_none=False):
    """An int (not a bool), optionally >= `minimum`; None passes when `allow_none`."""
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral) and \
        (minimum is None or value >= minimum)
    if not ok:
        want = "an integer" if minimum is None else \
            ("a positive integer" if minimum == 1 else f"an integer >= {minimum}")
        raise error(owner, f"argument `{arg}` must be {want}{' or None' if allow_none else ''}; received "
                           f"{_short(value)}.", TypeError if not isinstance(value, numbers.Number) else ValueError)
    return int(value)


FLOAT32_MAX = 3.4028234663852886e38      # larger magnitudes are inf in float32 weights and optimizer states


def number(owner, arg: str, value, low=None, high=None, low_open=False, high_open=False, allow_none=False,
           alternatives=""):
    """A finite real number (not a bool) in the given range; never clamped. `alternatives`: other
    accepted kinds, for the message (e.g. "a LearningRateSchedule or a callable(step)")."""
    if value is None and allow_none:
        return None

    def g(v):
        return f"{v:g}" if isinstance(v, float) else str(v)
    if low is not None and high is not None:
        rng = f" in {'(' if low_open else '['}{g(low)}, {g(high)}{')' if high_open else ']'}"
    elif low is not None:
        rng = f" {'>' if low_open else '>='} {g(low)}"
    elif high is not None:
        rng = f" {'<' if high_open else '<='} {g(high)}"
    else:
        rng = ""
    want = f"a finite number{rng}" + (f", {alternatives}" if alternatives else "") + (" or None" if allow_none else "")
    ok_type = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if not ok_type:
        raise error(owner, f"argument `{arg}` must be {want}; received {_short(value)}.", TypeError)
    try:
        v = float(value)
    except (OverflowError, ValueError, TypeError):
        v = float("nan")
    ok = v == v and abs(v) <= FLOAT32_MAX and \
        (low is None or (v > low if low_open else v >= low)) and \
        (high is None or (v < high if high_open else v <= high))
    if not ok:
        raise error(owner, f"argument `{arg}` must be {want}; received {_short(value)}.")
    return v


def string(owner, arg: str, value, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise error(owner, f"argument `{arg}` must be a string{' or None' if allow_none else ''}; received "
                           f"{_short(value)}.", TypeError)
    return value


def layer_name(owner, value):
    """Keras: a layer name is a string without '/' (None: a unique name is made)."""
    if value is None:
        return None
    string(owner, "name", value)
    if "/" in value:
        raise error(owner, f"argument `name` must not contain '/' (it separates weight paths); received "
                           f"{value!r}.")
    return value


def seed(owner, value, arg="seed"):
    """A random seed: None or a non-negative int (Keras)."""
    return integer(owner, arg, value, minimum=0, allow_none=True)


def shape(owner, arg: str, value, allow_none_dims=True, allow_int=True):
    """A shape: a tuple/list of positive ints (None for a free axis); an int n means (n,)."""
    if allow_int and not isinstance(value, bool) and isinstance(value, numbers.Integral):
        value = (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) and not _is_shape_like(value):
        raise error(owner, f"argument `{arg}` must be a tuple of positive integers"
                           f"{' (None for a free axis)' if allow_none_dims else ''}; received {_short(value)}.",
                    TypeError)
    dims = tuple(value)
    for d in dims:
        if d is None and allow_none_dims:
            continue
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
            raise error(owner, f"argument `{arg}` must be a tuple of positive integers"
                               f"{' (None for a free axis)' if allow_none_dims else ''}; received "
                               f"{_short(value)} (entry {d!r} is not).")
    return tuple(None if d is None else int(d) for d in dims)


def _is_shape_like(value):
    return type(value).__name__ == "Size" or getattr(value, "ndim", None) == 1     # torch.Size, 1-D arrays


def resolved(owner, arg: str, getter, value):
    """``getter(value)`` (``initializers.get``, ``activations.get``, ``regularizers.get``...) with its
    error re-worded to name the layer and the argument."""
    try:
        return getter(value)
    except (ValueError, TypeError) as e:
        raise error(owner, f"argument `{arg}`: {e}", type(e)) from None


def rnn_cell(owner, cell):
    """Keras' cell contract: an object (not a class) with `state_size` and a `call`/`__call__`."""
    if isinstance(cell, type) or not hasattr(cell, "state_size") or not (callable(getattr(cell, "call", None))
                                                                          or callable(cell)):
        raise not_a_cell(owner, cell)
    return cell


def not_a_cell(owner, cell):
    return error(owner, f"argument `cell` must be an RNN cell (LSTMCell, GRUCell, SimpleRNNCell, a list of cells, "
                        f"or an object with `state_size` and `call(inputs, states)`); received {_short(cell)}.",
                 TypeError)


# ---- memory bound: refuse absurd weights before allocating ---------------------------------------------------
# The most bytes one layer's weights may take; None: the machine's physical memory. A program (or a test)
# may lower it, e.g. ``rnnstate._checks.WEIGHT_MEMORY_LIMIT = 1 << 30``.
WEIGHT_MEMORY_LIMIT = None


def weights_fit(owner, arg: str, value, what: str, n_elements: int, bytes_per=4, available=None):
    """Refuse a weight of `n_elements` that could never be allocated: more bytes than the machine's
    physical memory (or ``WEIGHT_MEMORY_LIMIT``). Checked before allocating (at construction when the
    sizes are known, else at build), so the process never dies in the allocator. `arg`/`value`: the
    argument that set the size."""
    if available is None:
        available = WEIGHT_MEMORY_LIMIT if WEIGHT_MEMORY_LIMIT is not None else physical_memory()
    need = int(n_elements) * bytes_per
    if available is not None and need > available:
        limit = "this machine's memory" if WEIGHT_MEMORY_LIMIT is None else "rnnstate._checks.WEIGHT_MEMORY_LIMIT"
        raise error(owner, f"argument `{arg}`={value!r}: {what} would need {int(n_elements):,} float32 parameters "
                           f"({_bytes(need)}), more than {limit} ({_bytes(available)}); expected a size whose "
                           f"weights fit in memory.")


def physical_memory():
    import os
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40        # unknown: 1 TiB


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# ---- call inputs --------------------------------------------------------------------------------------------
def input_kind(owner, arg: str, kind: str, shape_, expected="real numbers (float, int or bool)"):
    """An input of the wrong kind of values (complex, strings, objects, ragged lists)."""
    what = {"c": "complex numbers (the imaginary part would be lost)", "O": "Python objects (a ragged list?)",
            "U": "strings", "S": "bytes", "V": "raw bytes", "M": "datetimes", "m": "timedeltas"}.get(kind, kind)
    return error(owner, f"argument `{arg}` must hold {expected}; received an array of shape "
                        f"{fmt_shape(shape_)} holding {what}.", TypeError)


def ids_range(owner, input_dim, lo, hi):
    return error(owner, f"argument `inputs`: ids must be integers in [0, {input_dim}) (input_dim={input_dim}); "
                        f"received ids from {lo} to {hi}.")


# ---- merge layers --------------------------------------------------------------------------------------------
def concat_axis(owner, axis, rank, shapes):
    return error(owner, f"argument `axis` must be in [-{rank}, {rank}) for inputs of rank {rank}; received "
                        f"axis={axis} with input shapes {[fmt_shape(s) for s in shapes]}.")


def merge_shapes(owner, shapes):
    return error(owner, f"inputs must have the same shape (or shapes that broadcast: equal, 1 or None on each "
                        f"axis); received shapes {[fmt_shape(s) for s in shapes]}.")


# ---- Bidirectional -------------------------------------------------------------------------------------------
def backward_layer(owner, forward, backward, is_recurrent):
    """Keras' rules for ``Bidirectional(layer, backward_layer=...)``: a recurrent layer, opposite
    `go_backwards`, the same `return_sequences`, `return_state` and `stateful`; for merge modes other
    than concat/None, the same output size."""
    if not is_recurrent:
        raise error(owner, f"argument `backward_layer` must be a recurrent layer (LSTM, GRU, SimpleRNN, RNN); "
                           f"received {_short(backward)}.", TypeError)
    if bool(forward.go_backwards) == bool(backward.go_backwards):
        raise error(owner, f"argument `backward_layer` must have the opposite `go_backwards` of `layer` (usually "
                           f"`go_backwards=True`); received go_backwards={backward.go_backwards} for both layers.")
    for attr in ("return_sequences", "return_state", "stateful"):
        f, b = getattr(forward, attr), getattr(backward, attr)
        if bool(f) != bool(b):
            raise error(owner, f"argument `backward_layer` must have the same `{attr}` as `layer`; expected "
                               f"{attr}={f}, received {attr}={b}.")
    return backward


def merge_sizes(owner, mode, fw, bw):
    return error(owner, f"argument `merge_mode`={mode!r} needs forward and backward outputs of the same size; "
                        f"received layer outputs of {fw} and {bw} units. Use merge_mode='concat' or None, or the "
                        f"same `units`.")


# ---- training arguments --------------------------------------------------------------------------------------
def method_arg(owner, method: str, arg: str, expected: str, value, exc=ValueError):
    """``Model 'm': fit() argument `batch_size` must be a positive integer or None; received 0.``"""
    return error(owner, f"{method}() argument `{arg}` must be {expected}; received {_short(value)}.", exc)


def method_int(owner, method, arg, value, minimum=1, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise method_arg(owner, method, arg, f"{'a positive integer' if minimum == 1 else f'an integer >= {minimum}'}"
                                             f"{' or None' if allow_none else ''}", value,
                         TypeError if not isinstance(value, numbers.Number) else ValueError)
    if value < minimum:
        raise method_arg(owner, method, arg, f"{'a positive integer' if minimum == 1 else f'an integer >= {minimum}'}"
                                             f"{' or None' if allow_none else ''}", value)
    return int(value)


def fit_arguments(model, method, batch_size=None, epochs=1, initial_epoch=0, steps=None, validation_split=0.0,
                  validation_freq=1, class_weight=None, shuffle=True, validation_steps=None,
                  validation_batch_size=None, steps_arg="steps"):
    """Type and range checks of fit / evaluate / predict arguments, before any data is touched."""
    method_int(model, method, "batch_size", batch_size)
    method_int(model, method, steps_arg, steps)
    if method != "fit":
        return
    method_int(model, method, "epochs", epochs, minimum=0, allow_none=False)
    method_int(model, method, "initial_epoch", initial_epoch, minimum=0, allow_none=False)
    method_int(model, method, "validation_steps", validation_steps)
    method_int(model, method, "validation_batch_size", validation_batch_size)
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) or \
            not 0.0 <= float(validation_split) < 1.0:
        raise method_arg(model, method, "validation_split", "a float in [0, 1)", validation_split,
                         ValueError if isinstance(validation_split, numbers.Number) else TypeError)
    freq_ok = (not isinstance(validation_freq, bool) and isinstance(validation_freq, numbers.Integral)
               and validation_freq >= 1) or (
        isinstance(validation_freq, (list, tuple, set, range)) and all(
            not isinstance(e, bool) and isinstance(e, numbers.Integral) and e >= 1 for e in validation_freq))
    if not freq_ok:
        raise method_arg(model, method, "validation_freq", "a positive integer (validate every n epochs) or a "
                                                           "list of epoch numbers >= 1", validation_freq,
                         ValueError if isinstance(validation_freq, (numbers.Number, list, tuple)) else TypeError)
    if class_weight is not None:
        cw_ok = isinstance(class_weight, dict) and all(
            not isinstance(k, bool) and isinstance(k, numbers.Integral) and k >= 0 and
            not isinstance(v, bool) and isinstance(v, numbers.Real) and float(v) == float(v) and
            abs(float(v)) != float("inf") for k, v in class_weight.items())
        if not cw_ok:
            raise method_arg(model, method, "class_weight", "a dict {class index (int >= 0): weight (finite "
                                                            "number)}", class_weight,
                             ValueError if isinstance(class_weight, dict) else TypeError)
    if shuffle not in (True, False, "batch") or not isinstance(shuffle, (bool, str, int)):
        raise method_arg(model, method, "shuffle", "True, False or 'batch'", shuffle)


def loss_weights(model, value):
    """compile(loss_weights=...): None, a number, a list of numbers or a dict {output_name: number}."""
    want = "None, a number, a list of numbers (one per output) or a dict {output_name: number}"

    def is_num(v):
        return v is None or (not isinstance(v, bool) and isinstance(v, numbers.Real) and float(v) == float(v)
                             and abs(float(v)) != float("inf"))
    if value is None or is_num(value):
        return
    if isinstance(value, (list, tuple)):
        entries = list(value)
    elif isinstance(value, dict):
        entries = list(value.values())
    else:
        raise method_arg(model, "compile", "loss_weights", want, value, TypeError)
    if not all(is_num(v) for v in entries):
        raise method_arg(model, "compile", "loss_weights", want + " (finite numbers)", value,
                         TypeError if any(not isinstance(v, numbers.Number) and v is not None for v in entries)
                         else ValueError)


# ---- user callables given as initializers / activations -----------------------------------------------------
def callable_failed(owner, arg, what, e):
    """A callable given as `arg` (an initializer, an activation) raised when rnnstate called it."""
    kind = TypeError if isinstance(e, TypeError) else ValueError
    return error(owner, f"argument `{arg}` failed when {what}: {type(e).__name__}: {str(e)[:300]}", kind)


def callable_result(owner, arg, what, expected_shape, received):
    return error(owner, f"argument `{arg}` must give {what} of shape {fmt_shape(expected_shape)}; received "
                        f"{received}.")


# ---- dtype policies (rnnstate.mixed_precision; Keras 3's wording and exception types) ----------------------
_POLICY_HINT = ("Valid policies include 'mixed_float16', 'mixed_bfloat16', and the name of any float dtype such "
                "as 'float32' (rnnstate: float16, bfloat16, float32, float64)")


def policy_name_type(owner, value):
    return error(owner, f"a dtype policy name must be a string, such as 'mixed_float16'; received {value!r:.60} "
                        f"(of type {type(value).__name__}).", TypeError)


def policy_name(owner, value):
    return error(owner, f"cannot convert {value!r:.60} to a dtype policy. {_POLICY_HINT}.")


def policy_argument(owner, arg, value):
    return error(owner, f"argument `{arg}` must be a policy name (such as 'mixed_bfloat16'), a `DTypePolicy` or "
                        f"a torch floating dtype; received {value!r:.60} (of type {type(value).__name__}).")
