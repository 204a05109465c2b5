"""Property tests (hypothesis) over what a careless user can pass: constructor arguments of every layer,
initializer and optimizer, call inputs (shapes, dtypes, ranks, lists, masks) and fit / predict / compile
arguments.

The property: a call either works or raises one of the documented kinds -- ValueError, TypeError, or
NotImplementedError for "not supported yet" -- whose message names the layer (or function) and the argument.
Never a raw torch/Python error (IndexError, RuntimeError, ZeroDivisionError, AttributeError...), never a
crash. Weights are capped at 64 MiB per layer here (``rnnstate._checks.WEIGHT_MEMORY_LIMIT``), so no example
allocates more. Profiles (tests/conftest.py): ``ci`` by default, ``fuzz`` via ``make fuzz``."""
import math

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

import rnnstate  # noqa: E402
from rnnstate import _checks, initializers as I, layers as L  # noqa: E402
from rnnstate.training import optimizers as O  # noqa: E402

ALLOWED = (ValueError, TypeError, NotImplementedError)
B, T, F = 2, 3, 4


@pytest.fixture(autouse=True, scope="module")
def _small_weights():
    old = _checks.WEIGHT_MEMORY_LIMIT
    _checks.WEIGHT_MEMORY_LIMIT = 64 << 20
    yield
    _checks.WEIGHT_MEMORY_LIMIT = old


class _Thing:
    """An arbitrary object a user might pass by mistake."""

    def __repr__(self):
        return "<thing>"


# values of many types: what a careless user (or a bad config) passes
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 12), st.sampled_from([2 ** 31, 2 ** 40, 2 ** 63, -2 ** 63]),
    st.floats(allow_nan=True, allow_infinity=True, width=64), st.text(max_size=4),
    st.sampled_from(["tanh", "relu", "zeros", "glorot_uniform", "l2", "concat", "sum", "auto", "loop", "fused",
                     "orthogonal", "uniform", "batch", "adam", "mse", 1j]),
    st.just(_Thing()), st.just(np.float32(0.5)), st.just(np.int64(2)), st.just(torch.tensor(1.5)))
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3), st.tuples(_scalars, _scalars),
                    st.dictionaries(st.sampled_from(["class_name", "config", "l2", "value"]), _scalars, max_size=2))


def _message_names(exc, *names):
    msg = str(exc)
    assert any(n in msg for n in names), f"message does not name any of {names}: {msg!r}"


def _check_raised(exc, who, arg):
    assert isinstance(exc, ALLOWED), f"raw {type(exc).__name__}: {exc}"
    _message_names(exc, who)
    _message_names(exc, f"`{arg}`", arg)


# ---- constructors --------------------------------------------------------------------------------------------
_RNN_ARGS = ["units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer", "bias_initializer",
             "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "dropout", "recurrent_dropout",
             "seed", "return_sequences", "return_state", "go_backwards", "stateful", "unroll", "name",
             "input_shape", "batch_size", "path"]
_LAYERS = {
    # class: (required args, input for a call, fuzzed arguments)
    L.Dense: ({"units": 3}, lambda: np.ones((B, F), "float32"),
              ["units", "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
               "bias_regularizer", "name", "input_shape", "batch_size", "input_dim", "activity_regularizer"]),
    L.Embedding: ({"input_dim": 6, "output_dim": 3}, lambda: np.ones((B, T), "int64"),
                  ["input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer", "mask_zero",
                   "input_length", "name"]),
    L.LSTM: ({"units": 3}, lambda: np.ones((B, T, F), "float32"),
             _RNN_ARGS + ["recurrent_activation", "unit_forget_bias", "use_cudnn", "return_cell_sequence",
                          "return_gate_sequences"]),
    L.GRU: ({"units": 3}, lambda: np.ones((B, T, F), "float32"),
            _RNN_ARGS + ["recurrent_activation", "reset_after", "use_cudnn", "return_gate_sequences"]),
    L.SimpleRNN: ({"units": 3}, lambda: np.ones((B, T, F), "float32"), _RNN_ARGS),
    L.RNN: ({"cell": None}, lambda: np.ones((B, T, F), "float32"),
            ["cell", "return_sequences", "return_state", "go_backwards", "stateful", "path"]),
    L.Bidirectional: ({"layer": None}, lambda: np.ones((B, T, F), "float32"),
                      ["layer", "merge_mode", "backward_layer", "name"]),
    L.TimeDistributed: ({"layer": None}, lambda: np.ones((B, T, F), "float32"), ["layer"]),
    L.Dropout: ({"rate": 0.5}, lambda: np.ones((B, F), "float32"), ["rate", "noise_shape", "seed"]),
    L.RepeatVector: ({"n": 2}, lambda: np.ones((B, F), "float32"), ["n"]),
    L.Reshape: ({"target_shape": (2, 2)}, lambda: np.ones((B, F), "float32"), ["target_shape"]),
    L.Masking: ({"mask_value": 0.0}, lambda: np.ones((B, T, F), "float32"), ["mask_value"]),
    L.Activation: ({"activation": "tanh"}, lambda: np.ones((B, F), "float32"), ["activation"]),
    L.Concatenate: ({"axis": -1}, lambda: [np.ones((B, F), "float32"), np.ones((B, F), "float32")], ["axis"]),
    L.LSTMCell: ({"units": 3}, None, ["units", "activation", "recurrent_activation", "kernel_initializer",
                                      "dropout", "seed", "unit_forget_bias"]),
}
# ConvLSTM1D / ConvLSTM2D (Keras' recurrent convolutions)
_CONV_RNN_ARGS = ["filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation",
                  "recurrent_activation", "use_bias", "kernel_initializer", "recurrent_initializer",
                  "unit_forget_bias", "kernel_regularizer", "dropout", "recurrent_dropout", "seed",
                  "return_sequences", "return_state", "go_backwards", "stateful", "name", "path"]
_LAYERS[L.ConvLSTM1D] = ({"filters": 2, "kernel_size": 2}, lambda: np.ones((B, T, 5, F), "float32"), _CONV_RNN_ARGS)
_LAYERS[L.ConvLSTM2D] = ({"filters": 2, "kernel_size": 2}, lambda: np.ones((B, T, 4, 3, F), "float32"),
                         _CONV_RNN_ARGS)
# extra values that are meaningful for some arguments (so the fuzzer also reaches valid and near-valid ones)
# (made per example, not at import: layers can be used once, and import-time layers would shift auto names)
_SPECIAL = st.sampled_from([
    lambda: L.LSTM(2), lambda: L.LSTM(2, go_backwards=True),
    lambda: L.GRU(3, go_backwards=True, return_sequences=True), lambda: L.Dense(2), lambda: L.LSTMCell(2),
    lambda: [L.GRUCell(2), L.LSTMCell(3)], lambda: {"class_name": "L2", "config": {"l2": -1.0}},
    lambda: {"class_name": "Constant", "config": {"value": float("nan")}}, lambda: (2, -1), lambda: (-1, -1),
    lambda: (0, 4), lambda: (None, 4), lambda: (4,)]).map(lambda make: make())


def _defaults(cls, required):
    kw = dict(required)
    if cls is L.RNN:
        kw["cell"] = L.LSTMCell(3)
    elif cls is L.Bidirectional:
        kw["layer"] = L.LSTM(3)
    elif cls is L.TimeDistributed:
        kw["layer"] = L.Dense(2)
    return kw


@given(data=st.data())
def test_fuzz_layer_constructors(data):
    cls = data.draw(st.sampled_from(list(_LAYERS)), label="class")
    required, make_input, args = _LAYERS[cls]
    arg = data.draw(st.sampled_from(args), label="argument")
    value = data.draw(st.one_of(_values, _SPECIAL), label="value")
    kw = _defaults(cls, required)
    kw[arg] = value
    try:
        layer = cls(**kw)
    except Exception as e:                               # noqa: BLE001 -- the property is about the kind
        _check_raised(e, cls.__name__, arg)
        return
    if make_input is None:
        return
    x = make_input()
    try:
        with torch.no_grad():
            layer(x)
            layer(x, training=True) if cls not in (L.Concatenate,) else None
    except Exception as e:                               # noqa: BLE001
        # accepted at construction, refused at the call: still a clear error naming the layer
        assert isinstance(e, ALLOWED), f"{cls.__name__}({arg}={value!r}) accepted, then raw {type(e).__name__}: {e}"
        inner = [_checks.who(v) for v in (value if isinstance(value, list) else [value])
                 if isinstance(v, rnnstate.layers.Layer)]          # e.g. TimeDistributed(LSTM): the LSTM speaks
        _message_names(e, cls.__name__, _checks.who(layer), *inner)


# ---- the Keras layers around the recurrent ones (conv, pooling, normalization, attention, merge, noise) -------
class _Args(tuple):
    """Positional call arguments (MultiHeadAttention(query, value)) rather than one input."""


_x3 = lambda: np.arange(B * T * F, dtype="float32").reshape(B, T, F) % 5 / 4      # noqa: E731  (values vary)
_pair2 = lambda: [np.ones((B, F), "float32"), np.full((B, F), 2.0, "float32")]                 # noqa: E731
_MERGE_ARGS = ["name", "dtype", "trainable"]
_KERAS_LAYERS = {
    L.Conv1D: ({"filters": 2, "kernel_size": 2}, _x3,
               ["filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                "bias_regularizer", "activity_regularizer", "kernel_constraint", "name"]),
    L.MaxPooling1D: ({}, _x3, ["pool_size", "strides", "padding", "data_format"]),
    L.AveragePooling1D: ({"pool_size": 2}, _x3, ["pool_size", "strides", "padding", "data_format"]),
    L.GlobalAveragePooling1D: ({}, _x3, ["data_format", "keepdims"]),
    L.GlobalMaxPooling1D: ({}, _x3, ["data_format", "keepdims"]),
    L.LayerNormalization: ({}, _x3, ["axis", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                                     "beta_regularizer", "gamma_regularizer", "rms_scaling"]),
    L.BatchNormalization: ({}, _x3, ["axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                                     "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                                     "beta_regularizer", "renorm", "synchronized"]),
    L.Attention: ({}, lambda: [_x3(), _x3()], ["use_scale", "score_mode", "dropout", "seed"]),
    L.AdditiveAttention: ({}, lambda: [_x3(), _x3()], ["use_scale", "dropout", "seed"]),
    L.MultiHeadAttention: ({"num_heads": 2, "key_dim": 2}, lambda: _Args([_x3(), _x3()]),
                           ["num_heads", "key_dim", "value_dim", "dropout", "use_bias", "output_shape",
                            "attention_axes", "flash_attention", "sliding_window", "kernel_initializer",
                            "bias_initializer", "kernel_regularizer", "use_gate", "seed"]),
    L.Add: ({}, _pair2, _MERGE_ARGS), L.Subtract: ({}, _pair2, _MERGE_ARGS),
    L.Multiply: ({}, _pair2, _MERGE_ARGS), L.Average: ({}, _pair2, _MERGE_ARGS),
    L.Maximum: ({}, _pair2, _MERGE_ARGS), L.Minimum: ({}, _pair2, _MERGE_ARGS),
    L.Dot: ({"axes": -1}, _pair2, ["axes", "normalize"]),
    L.Concatenate: ({"axis": -1}, _pair2, ["axis", "name"]),
    L.Permute: ({"dims": (2, 1)}, _x3, ["dims"]),
    L.SpatialDropout1D: ({"rate": 0.5}, _x3, ["rate", "seed"]),
    L.GaussianNoise: ({"stddev": 0.1}, _x3, ["stddev", "seed"]),
}
_KERAS_SPECIAL = st.sampled_from([0, 1, 2, 3, -1, -2, -3, 0.0, 1.0, 1e-3, 1.5, (1,), (2,), (3, 1), (1, 2), [-1],
                                  (0,), (2, 1, 1), "same", "valid", "causal", "channels_first", "channels_last",
                                  "relu", "dot", "concat"])


def _call(layer, x, **kw):
    return layer(*x, **kw) if isinstance(x, _Args) else layer(x, **kw)


def _check_output(cls, arg, value, out):
    """An accepted configuration gives finite float outputs (no silent NaN from a bad epsilon or initializer),
    unless the value itself is near float32's range (GaussianNoise(stddev=1e38) overflows honestly, as in Keras)."""
    huge = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > 1e30
    for o in out if isinstance(out, (list, tuple)) else [out]:
        assert isinstance(o, torch.Tensor) and o.is_floating_point(), f"{cls.__name__}({arg}={value!r}) -> {o!r:.80}"
        assert huge or torch.isfinite(o).all(), f"{cls.__name__}({arg}={value!r}) gave non-finite outputs"


@given(data=st.data())
def test_fuzz_keras_layer_constructors(data):
    """Every argument of the Keras layers above, one at a time, with arbitrary values: refused at construction
    naming the layer and the argument, or refused at the call naming the layer, or a finite result in both
    inference and training mode."""
    cls = data.draw(st.sampled_from(list(_KERAS_LAYERS)), label="class")
    required, make_input, args = _KERAS_LAYERS[cls]
    arg = data.draw(st.sampled_from(args), label="argument")
    value = data.draw(st.one_of(_values, _KERAS_SPECIAL), label="value")
    kw = dict(required)
    kw[arg] = value
    try:
        layer = cls(**kw)
    except Exception as e:                               # noqa: BLE001 -- the property is about the kind
        _check_raised(e, cls.__name__, arg)
        return
    try:
        with torch.no_grad():
            outs = [_call(layer, make_input()), _call(layer, make_input(), training=True)]
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"{cls.__name__}({arg}={value!r}) accepted, then raw {type(e).__name__}: {e}"
        _message_names(e, cls.__name__, _checks.who(layer))
        return
    for out in outs:
        _check_output(cls, arg, value, out)


_INITIALIZERS = {
    I.Constant: ["value"], I.RandomNormal: ["mean", "stddev", "seed"], I.RandomUniform: ["minval", "maxval", "seed"],
    I.TruncatedNormal: ["mean", "stddev", "seed"], I.VarianceScaling: ["scale", "mode", "distribution", "seed"],
    I.Orthogonal: ["gain", "seed"], I.Identity: ["gain"], I.GlorotUniform: ["seed"], I.HeNormal: ["seed"],
}


@given(data=st.data())
def test_fuzz_initializers(data):
    cls = data.draw(st.sampled_from(list(_INITIALIZERS)), label="class")
    arg = data.draw(st.sampled_from(_INITIALIZERS[cls]), label="argument")
    value = data.draw(_values, label="value")
    try:
        init = cls(**{arg: value})
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__}: {e}"
        _message_names(e, f"`{arg}`", arg)
        return
    try:
        w = init((3, 4))
    except ALLOWED as e:                                 # e.g. a Constant array that doesn't broadcast
        _message_names(e, f"`{arg}`")
        return
    assert torch.isfinite(torch.as_tensor(w)).all(), f"{cls.__name__}({arg}={value!r}) gave non-finite weights"


_OPTIMIZERS = {
    O.SGD: ["learning_rate", "momentum", "nesterov", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm"],
    O.Adam: ["learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm", "name"],
    O.RMSprop: ["learning_rate", "rho", "momentum", "epsilon", "centered"],
    O.Adagrad: ["learning_rate", "initial_accumulator_value", "epsilon"],
    O.Adadelta: ["learning_rate", "rho", "epsilon"], O.Adamax: ["learning_rate", "beta_1", "beta_2"],
    O.Nadam: ["learning_rate", "beta_1", "beta_2", "epsilon"], O.AdamW: ["learning_rate", "weight_decay"],
}


def _tiny_model():
    inp = rnnstate.Input((T, F))
    return rnnstate.Model(inp, L.Dense(1)(L.GRU(2)(inp)))


_X = np.random.default_rng(0).standard_normal((B, T, F)).astype("float32")
_Y = np.zeros((B, 1), "float32")


@given(data=st.data())
def test_fuzz_optimizers_fail_at_construction_not_in_fit(data):
    cls = data.draw(st.sampled_from(list(_OPTIMIZERS)), label="class")
    arg = data.draw(st.sampled_from(_OPTIMIZERS[cls]), label="argument")
    value = data.draw(_values, label="value")
    try:
        opt = cls(**{arg: value})
    except Exception as e:                               # noqa: BLE001
        _check_raised(e, cls.__name__, arg)
        return
    m = _tiny_model()
    m.compile(opt, "mse")
    m.fit(_X, _Y, batch_size=B, verbose=0)               # accepted: training must run


# ---- call inputs ---------------------------------------------------------------------------------------------
_DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool", "complex64",
           "object", "U2"]


@st.composite
def _arrays(draw, ranks=(1, 2, 3, 4), kinds=("numpy", "torch", "list")):
    rank = draw(st.sampled_from(ranks))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    dtype = draw(st.sampled_from(_DTYPES))
    kind = draw(st.sampled_from(kinds))
    a = np.arange(math.prod(shape)).reshape(shape) % 3
    if dtype == "object":
        a = a.astype(object)
    elif dtype == "U2":
        a = a.astype("U2")
    else:
        a = a.astype(dtype)
    if kind == "torch" and dtype not in ("object", "U2", "uint64", "float16", "float64"):
        # (torch tensors of another float dtype than the layer's belong to the dtype checks, not here)
        return torch.from_numpy(np.ascontiguousarray(a))
    if kind == "list":
        return a.tolist()
    return a


def _layer_for_call(name):
    return {"LSTM": lambda: L.LSTM(3), "GRU": lambda: L.GRU(3, return_sequences=True),
            "SimpleRNN": lambda: L.SimpleRNN(3, return_state=True), "Dense": lambda: L.Dense(2),
            "Embedding": lambda: L.Embedding(4, 2, mask_zero=True),
            "Bidirectional": lambda: L.Bidirectional(L.LSTM(2, return_sequences=True)),
            "TimeDistributed": lambda: L.TimeDistributed(L.Dense(2)), "Masking": lambda: L.Masking(),
            "RepeatVector": lambda: L.RepeatVector(2), "Reshape": lambda: L.Reshape((-1,)),
            "Concatenate": lambda: L.Concatenate(), "Add": lambda: L.Add(),
            "Conv1D": lambda: L.Conv1D(2, 2, padding="causal"), "MaxPooling1D": lambda: L.MaxPooling1D(2),
            "AveragePooling1D": lambda: L.AveragePooling1D(2, padding="same"),
            "GlobalAveragePooling1D": lambda: L.GlobalAveragePooling1D(),
            "GlobalMaxPooling1D": lambda: L.GlobalMaxPooling1D(keepdims=True),
            "LayerNormalization": lambda: L.LayerNormalization(), "BatchNormalization": lambda: L.BatchNormalization(),
            "Permute": lambda: L.Permute((2, 1)), "SpatialDropout1D": lambda: L.SpatialDropout1D(0.5),
            "GaussianNoise": lambda: L.GaussianNoise(0.1), "Subtract": lambda: L.Subtract(),
            "Multiply": lambda: L.Multiply(), "Average": lambda: L.Average(), "Maximum": lambda: L.Maximum(),
            "Minimum": lambda: L.Minimum(), "Dot": lambda: L.Dot(axes=-1), "Attention": lambda: L.Attention(),
            "AdditiveAttention": lambda: L.AdditiveAttention(),
            "MultiHeadAttention": lambda: L.MultiHeadAttention(2, 2)}[name]()


@given(name=st.sampled_from(["LSTM", "GRU", "SimpleRNN", "Dense", "Embedding", "Bidirectional", "TimeDistributed",
                             "Masking", "RepeatVector", "Reshape"]),
       x=_arrays(), mask=st.one_of(st.none(), _arrays(ranks=(1, 2, 3))))
def test_fuzz_call_inputs(name, x, mask):
    layer = _layer_for_call(name)
    kwargs = {"mask": mask} if mask is not None and layer._consumes_mask else {}
    try:
        with torch.no_grad():
            layer(x, **kwargs)
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__} from {name}: {e}"
        _message_names(e, _checks.who(layer))


@given(name=st.sampled_from(["Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
                             "GlobalMaxPooling1D", "LayerNormalization", "BatchNormalization", "Permute",
                             "SpatialDropout1D", "GaussianNoise"]),
       x=_arrays(), mask=st.one_of(st.none(), _arrays(ranks=(1, 2, 3))), training=st.booleans())
def test_fuzz_keras_layer_call_inputs(name, x, mask, training):
    layer = _layer_for_call(name)
    kwargs = {"mask": mask} if mask is not None and layer._consumes_mask else {}
    try:
        with torch.no_grad():
            layer(x, training=training, **kwargs)
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__} from {name}: {e}"
        _message_names(e, _checks.who(layer))


@given(name=st.sampled_from(["Attention", "AdditiveAttention", "MultiHeadAttention"]),
       xs=st.lists(_arrays(ranks=(2, 3, 4)), min_size=0, max_size=4),
       mask=st.one_of(st.none(), st.lists(st.one_of(st.none(), _arrays(ranks=(1, 2, 3))), max_size=3),
                      _arrays(ranks=(2,))),
       scores=st.booleans(), causal=st.booleans())
def test_fuzz_attention_inputs(name, xs, mask, scores, causal):
    """[query, value(, key)] of any shapes, dtypes and kinds, masks of any shape: a result (float, with weights
    rows summing to 1 where a query sees any value) or a clear error naming the layer."""
    layer = _layer_for_call(name)
    try:
        with torch.no_grad():
            if name == "MultiHeadAttention":
                kw = {} if mask is None else {"attention_mask": mask}
                out = layer(*xs[:3], return_attention_scores=scores, use_causal_mask=causal, **kw)
            else:
                out = layer(xs, mask=mask, return_attention_scores=scores, use_causal_mask=causal)
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__} from {name}: {e}"
        _message_names(e, _checks.who(layer), f"{name}.__call__()")    # (Python's own: no query at all)
        return
    out, weights = out if scores else (out, None)
    assert torch.isfinite(out).all()
    if weights is not None and mask is None and not causal:
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))


@given(name=st.sampled_from(["LSTM", "GRU", "SimpleRNN", "Bidirectional"]),
       # (torch tensors of another dtype than the layer's, as states too, belong to the dtype checks)
       state=st.one_of(_values, _arrays(ranks=(1, 2, 3), kinds=("numpy", "list")),
                       st.lists(_arrays(ranks=(1, 2), kinds=("numpy", "list")), max_size=5)),
       training=st.one_of(st.none(), st.booleans()))
def test_fuzz_initial_state(name, state, training):
    layer = _layer_for_call(name)
    try:
        with torch.no_grad():
            layer(np.ones((B, T, F), "float32"), initial_state=state, training=training)
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__} from {name}: {e}"
        _message_names(e, "initial_state")


@given(name=st.sampled_from(["Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot"]),
       xs=st.lists(_arrays(ranks=(2, 3)), min_size=0, max_size=3))
def test_fuzz_merge_inputs(name, xs):
    layer = _layer_for_call(name)
    try:
        with torch.no_grad():
            layer(xs)
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__} from {name}: {e}"
        _message_names(e, _checks.who(layer))


@given(shapes=st.lists(st.tuples(st.integers(1, 3), st.one_of(st.none(), st.integers(1, 4))), min_size=1,
                       max_size=3),
       axis=st.integers(-4, 4), name=st.sampled_from(["Concatenate", "Add"]))
def test_fuzz_merge_graph_build(shapes, axis, name):
    ins = [rnnstate.Input(s) for s in shapes]
    layer = L.Concatenate(axis=axis) if name == "Concatenate" else L.Add()
    try:
        out = layer(ins)
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__}: {e}"
        _message_names(e, _checks.who(layer))
        return
    xs = [np.ones((2,) + tuple(d or 2 for d in s), "float32") for s in shapes]
    try:
        y = layer(xs)
    except ALLOWED:
        return              # None axes filled with 2 may not fit together: refused, clearly
    assert all(o is None or o == g for o, g in zip(out.shape[1:], y.shape[1:]))


# ---- fit / predict / compile arguments ----------------------------------------------------------------------------
_FIT_ARGS = ["batch_size", "epochs", "validation_freq", "class_weight", "validation_split", "steps_per_epoch",
             "shuffle", "initial_epoch", "validation_batch_size", "validation_steps", "verbose", "sample_weight"]


@given(arg=st.sampled_from(_FIT_ARGS), value=_values)
def test_fuzz_fit_arguments(arg, value):
    m = _tiny_model()
    m.compile("sgd", "mse")
    kw = {arg: value}
    if arg in ("validation_freq", "validation_batch_size", "validation_steps"):
        kw["validation_data"] = (_X, _Y)
    if arg == "epochs" and isinstance(value, int) and value > 3:
        return                                            # valid, just long
    try:
        m.fit(_X, _Y, **{"verbose": 0, **kw})
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__} for fit({arg}={value!r}): {e}"
        _message_names(e, arg)


@given(method=st.sampled_from(["predict", "evaluate", "predict_on_batch", "train_on_batch"]),
       arg=st.sampled_from(["batch_size", "steps", "verbose", "x", "y", "sample_weight", "class_weight"]),
       value=st.one_of(_values, _arrays()))
def test_fuzz_predict_evaluate_arguments(method, arg, value):
    m = _tiny_model()
    m.compile("sgd", "mse")
    fn = getattr(m, method)
    import inspect
    params = inspect.signature(fn).parameters
    if arg not in params:
        return
    kw = {"x": _X}
    if "y" in params:
        kw["y"] = _Y
    if "verbose" in params:
        kw["verbose"] = 0
    kw[arg] = value
    try:
        fn(**kw)
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__} for {method}({arg}={value!r:.80}): {e}"
        if arg not in ("x", "y", "sample_weight"):
            _message_names(e, arg)


@given(arg=st.sampled_from(["optimizer", "loss", "loss_weights", "metrics"]), value=_values)
def test_fuzz_compile_arguments(arg, value):
    m = _tiny_model()
    kw = {"optimizer": "sgd", "loss": "mse", arg: value}
    try:
        m.compile(**kw)
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"raw {type(e).__name__} for compile({arg}={value!r}): {e}"
        return
    try:
        m.fit(_X, _Y, verbose=0)                        # accepted at compile: fit must run or fail clearly
    except Exception as e:                               # noqa: BLE001
        assert isinstance(e, ALLOWED), f"compile({arg}={value!r}) accepted, then raw {type(e).__name__}: {e}"
