"""Issue 10, "Crashes and raw errors" and "Constructors": every case raises a ValueError/TypeError (or
NotImplementedError for "not supported yet") naming the layer or function, the argument, what was expected
and what was received; accepted inputs are checked against an oracle (numpy, Keras, or the same call with
the canonical input)."""
import math

import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import initializers as I
from rnnstate import layers as L
from rnnstate.training import optimizers as O

B, T, F, U = 2, 3, 4, 5


def _x(seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, F)).astype("float32")


def _model(name=None):
    inp = rnnstate.Input((T, F))
    m = rnnstate.Model(inp, L.Dense(1)(L.LSTM(2)(inp)), name=name)
    m.compile("adam", "mse")
    return m


# ---- constructors: names of initializers / regularizers / activations ------------------------------------------
_NAMED_ARGS = {
    L.Dense: ("activation", "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer"),
    L.Embedding: ("embeddings_initializer", "embeddings_regularizer"),
    L.Activation: ("activation",),
}
_RNN_ARGS = ("activation", "kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
             "recurrent_regularizer", "bias_regularizer")
for _cls in (L.LSTM, L.GRU, L.LSTMCell, L.GRUCell):
    _NAMED_ARGS[_cls] = _RNN_ARGS + ("recurrent_activation",)
for _cls in (L.SimpleRNN, L.SimpleRNNCell):
    _NAMED_ARGS[_cls] = _RNN_ARGS
_CASES = [(c, a) for c, args in _NAMED_ARGS.items() for a in args]


def _make(cls, **kw):
    if cls is L.Embedding:
        return cls(10, 3, **kw)
    if cls is L.Activation:
        return cls(**kw)
    return cls(3, **kw)


@pytest.mark.parametrize("cls,arg", _CASES, ids=[f"{c.__name__}-{a}" for c, a in _CASES])
def test_unknown_names_name_the_layer_and_argument(cls, arg):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}.*: argument `{arg}`: Unknown \w+ 'no_such_thing'\. "
                                         rf"Expected one of: .*"):
        _make(cls, **{arg: "no_such_thing"})
    with pytest.raises((ValueError, TypeError), match=rf"^{cls.__name__}.*: argument `{arg}`.*5"):
        _make(cls, **{arg: 5})


@pytest.mark.parametrize("cls", [L.Dense, L.LSTM, L.GRU, L.SimpleRNN])
def test_none_initializer_is_keras_glorot_uniform(cls):
    """Keras' add_weight(initializer=None) uses glorot_uniform for float weights: so does rnnstate (it used to
    fail at the first call). Oracle: Keras accepts the same config, and the values lie in glorot's bound."""
    keras = pytest.importorskip("keras")
    kcls = getattr(keras.layers, cls.__name__)
    x = _x()
    kw = dict(kernel_initializer=None, bias_initializer=None)
    if cls is L.LSTM:
        kw["unit_forget_bias"] = False        # Keras' unit_forget_bias path calls the None (a TypeError there)
    layer = cls(U, **kw)
    assert isinstance(layer.kernel_initializer, I.GlorotUniform)
    out = layer(x)
    kout = kcls(U, **kw)(x)
    assert tuple(out.shape) == tuple(kout.shape)
    kernel, bias = layer.get_weights()[0], layer.get_weights()[-1]
    fan_in, fan_out = kernel.shape
    assert np.abs(kernel).max() <= math.sqrt(6 / (fan_in + fan_out)) + 1e-6
    assert np.abs(bias).max() > 0        # a glorot bias, as Keras (not zeros)


def test_embedding_none_initializer_and_regularizer():
    e = L.Embedding(10, 3, embeddings_initializer=None, embeddings_regularizer="l2")
    ids = np.array([[1, 2]])
    out = e(ids)
    np.testing.assert_allclose(out.detach().numpy(), e.get_weights()[0][ids], rtol=0)
    w = e.get_weights()[0]
    np.testing.assert_allclose(float(e.losses[0].detach()), 0.01 * (w ** 2).sum(), rtol=1e-5)
    with pytest.raises(NotImplementedError, match=r"Embedding '.*': argument `embeddings_constraint` is not "
                                                  r"supported yet.*received 'non_neg'"):
        L.Embedding(10, 3, embeddings_constraint="non_neg")


# ---- constructors: sizes, cells, names, seeds, shapes ----------------------------------------------------------
def test_absurd_sizes_are_refused_before_allocating():
    with pytest.raises(ValueError, match=r"LSTM: argument `units`=1099511627776: the recurrent kernel "
                                         r"\(1099511627776, 4398046511104\) would need .* parameters .* more than "
                                         r"this machine's memory .*expected a size whose weights fit"):
        L.LSTM(2 ** 40)
    with pytest.raises(ValueError, match=r"GRUCell .*: argument `units`=2000000"):
        L.GRUCell(2_000_000)
    dense = L.Dense(10 ** 7)
    with pytest.raises(ValueError, match=r"Dense '.*': argument `units`=10000000: with 10000000 input features, "
                                         r"the kernel \(10000000, 10000000\) would need"):
        dense(rnnstate.Input((10 ** 7,)))
    with pytest.raises(ValueError, match=r"Embedding '.*': argument `input_dim`=1000000000000"):
        L.Embedding(10 ** 12, 8)
    with pytest.raises(ValueError, match=r"SimpleRNN '.*': argument `units`=10: with 10000000000000 input "
                                         r"features, the kernel \(10000000000000, 10\)"):
        L.SimpleRNN(10)(rnnstate.Input((2, 10 ** 13)))


def test_rnn_needs_a_cell():
    with pytest.raises(TypeError, match=r"RNN '.*': argument `cell` must be an RNN cell .*; received 5\."):
        L.RNN(5)
    with pytest.raises(TypeError, match=r"RNN '.*': argument `cell` must be an RNN cell .*received Dense.*"
                                        r"\(of type Dense\)"):
        L.RNN(L.Dense(3))
    with pytest.raises(TypeError, match=r"argument `cell` must be an RNN cell .*received <class"):
        L.RNN(L.LSTMCell)
    y = L.RNN(L.LSTMCell(U))(_x())                          # a real cell still works
    assert tuple(y.shape) == (B, U)


def test_name_seed_and_input_shape_arguments():
    with pytest.raises(TypeError, match=r"Dense: argument `name` must be a string; received 5\."):
        L.Dense(3, name=5)
    with pytest.raises(ValueError, match=r"LSTM: argument `name` must not contain '/'.*received 'a/b'"):
        L.LSTM(3, name="a/b")
    with pytest.raises(TypeError, match=r"LSTM: argument `seed` must be an integer >= 0 or None; received 'abc'\."):
        L.LSTM(3, seed="abc")
    with pytest.raises(ValueError, match=r"GRU: argument `seed` must be an integer >= 0 or None; received 1.5\."):
        L.GRU(3, seed=1.5)
    assert L.Dense(3, input_shape=5)._batch_input_shape == (None, 5)        # an int n means (n,), as Input does
    with pytest.raises(TypeError, match=r"Dense '.*': argument `input_shape` must be a tuple of positive integers "
                                        r".*; received 'ab'"):
        L.Dense(3, input_shape="ab")
    with pytest.raises(ValueError, match=r"LSTM '.*': argument `input_shape` must be a tuple of positive integers .*"
                                         r"received \(3, -4\) \(entry -4 is not\)"):
        L.LSTM(3, input_shape=(3, -4))
    with pytest.raises(ValueError, match=r"Dense '.*': argument `batch_size` must be a positive integer or None; "
                                         r"received 0"):
        L.Dense(3, input_shape=(4,), batch_size=0)


def test_reshape_target_shape():
    with pytest.raises(ValueError, match=r"Reshape '.*': argument `target_shape` must be a tuple of positive "
                                         r"integers with at most one -1 .*received \(-1, -1\)"):
        L.Reshape((-1, -1))
    with pytest.raises(ValueError, match=r"received \(0, 3\)"):
        L.Reshape((0, 3))
    with pytest.raises(TypeError, match=r"Reshape '.*': argument `target_shape` .*received 6"):
        L.Reshape(6)
    x = np.arange(12, dtype="float32").reshape(2, 6)
    r = L.Reshape((-1, 2))
    np.testing.assert_array_equal(r(x).numpy(), x.reshape(2, 3, 2))
    assert r.compute_output_shape((None, 6)) == (None, 3, 2)        # the -1 is inferred (Keras)
    with pytest.raises(ValueError, match=r"Reshape '.*': argument `target_shape` \(4,\) does not fit an input of "
                                         r"shape \(2, 6\) \(6 values per sample\)"):
        L.Reshape((4,))(x)
    with pytest.raises(ValueError, match=r"argument `target_shape` \(-1, 4\) does not fit an input of shape "
                                         r"\(None, 6\)"):
        L.Reshape((-1, 4))(rnnstate.Input((6,)))


def test_input_shape_and_batch_size():
    with pytest.raises(ValueError, match=r"InputLayer '.*': argument `shape` must be a tuple of positive integers "
                                         r"\(None for a free axis\); received \(0, 3\) \(entry 0 is not\)"):
        rnnstate.Input(shape=(0, 3))
    with pytest.raises(ValueError, match=r"InputLayer '.*': argument `batch_size` must be a positive integer or "
                                         r"None; received -1"):
        rnnstate.Input(shape=(2, 3), batch_size=-1)
    with pytest.raises(ValueError, match=r"argument `batch_shape` .*received \(None, -3, 5\)"):
        rnnstate.Input(batch_shape=(None, -3, 5))
    with pytest.raises(TypeError, match=r"argument `shape` .*received 'abc'"):
        rnnstate.Input(shape="abc")
    assert rnnstate.Input(shape=(None, 3), batch_size=4).shape == (4, None, 3)


def test_merge_layers_check_shapes_at_graph_build():
    a, b = rnnstate.Input((2, 3)), rnnstate.Input((2, 3))
    with pytest.raises(ValueError, match=r"Concatenate '.*': argument `axis` must be in \[-3, 3\) for inputs of "
                                         r"rank 3; received axis=5 with input shapes"):
        L.Concatenate(axis=5)([a, b])
    with pytest.raises(TypeError, match=r"Concatenate '.*': argument `axis` must be an integer; received 'x'"):
        L.Concatenate(axis="x")
    with pytest.raises(ValueError, match=r"Add '.*': inputs must have the same shape .*received shapes "
                                         r"\['\(None, 2, 3\)', '\(None, 2, 4\)'\]"):
        L.Add()([a, rnnstate.Input((2, 4))])
    # broadcasting shapes are fine (Keras): output shape and values as numpy's broadcasting
    assert L.Add()([a, rnnstate.Input((1, 3))]).shape == (None, 2, 3)
    x, y = np.ones((2, 2, 3), "float32"), np.arange(3, dtype="float32").reshape(1, 1, 3)
    np.testing.assert_array_equal(L.Add()([x, y]).numpy(), x + y)
    with pytest.raises(ValueError, match=r"Add '.*': inputs must have the same shape .*\(2, 2, 3\)', '\(2, 2, 4\)"):
        L.Add()([x, np.ones((2, 2, 4), "float32")])
    with pytest.raises(ValueError, match=r"Add '.*': argument `inputs` must be a list of at least 2 tensors; "
                                         r"received 1 input"):
        L.Add()([x])


# ---- Bidirectional(backward_layer=...) follows Keras' rules ------------------------------------------------------
def test_bidirectional_backward_layer_rules():
    with pytest.raises(TypeError, match=r"Bidirectional '.*': argument `backward_layer` must be a recurrent layer "
                                        r".*received Dense"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.Dense(3))
    with pytest.raises(ValueError, match=r"argument `backward_layer` must have the opposite `go_backwards` of "
                                         r"`layer`.*received go_backwards=False for both"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3))
    for attr in ("return_sequences", "return_state"):
        with pytest.raises(ValueError, match=rf"argument `backward_layer` must have the same `{attr}` as `layer`; "
                                             rf"expected {attr}=False, received {attr}=True"):
            L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3, go_backwards=True, **{attr: True}))
    with pytest.raises(ValueError, match=r"argument `merge_mode`='sum' needs forward and backward outputs of the "
                                         r"same size; received layer outputs of 3 and 4 units"):
        L.Bidirectional(L.LSTM(3), merge_mode="sum", backward_layer=L.LSTM(4, go_backwards=True))


def test_bidirectional_backward_layer_of_another_size_matches_keras():
    """Keras accepts a backward layer of another size (concat) or kind (GRU after LSTM): outputs match Keras
    with the same weights."""
    keras = pytest.importorskip("keras")
    x = _x(1)
    ours = L.Bidirectional(L.LSTM(3, return_state=True), backward_layer=L.GRU(4, go_backwards=True,
                                                                               return_state=True))
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(3, return_state=True),
                                        backward_layer=keras.layers.GRU(4, go_backwards=True, return_state=True))
    res = ours(x)
    theirs(x)
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in theirs.get_weights()]
    theirs.set_weights(ws)
    ours.set_weights(ws)
    got, want = ours(x), theirs(x)
    assert len(got) == len(want) == 4              # output, forward h, c, backward h
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.detach().numpy(), np.asarray(w), rtol=1e-4, atol=1e-5)
    assert res.output.shape == (B, 7)
    sym = ours(rnnstate.Input((T, F)))
    assert sym[0].shape == (None, 7)


# ---- initializers: NaN/inf configs ------------------------------------------------------------------------------
@pytest.mark.parametrize("make,arg", [
    (lambda v: I.Constant(v), "value"), (lambda v: I.Constant([1.0, v]), "value"),
    (lambda v: I.RandomUniform(minval=v), "minval"), (lambda v: I.RandomUniform(maxval=v), "maxval"),
    (lambda v: I.RandomNormal(mean=v), "mean"), (lambda v: I.RandomNormal(stddev=v), "stddev"),
    (lambda v: I.TruncatedNormal(stddev=v), "stddev"), (lambda v: I.VarianceScaling(scale=v), "scale"),
    (lambda v: I.Orthogonal(gain=v), "gain"), (lambda v: I.Identity(gain=v), "gain")])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_initializer_configs_with_nan_or_inf_are_refused(make, arg, bad):
    with pytest.raises(ValueError, match=rf"^\w+: argument `{arg}` must be a finite number.*received .*(nan|inf)"):
        make(bad)


def test_initializer_bad_types():
    with pytest.raises(TypeError, match=r"RandomNormal: argument `stddev` must be a finite number in \[0, 1e\+30\]; "
                                        r"received 'x'"):
        I.RandomNormal(stddev="x")
    with pytest.raises(ValueError, match=r"RandomNormal: argument `stddev` must be a finite number in \[0, 1e\+30\]; "
                                         r"received -1"):
        I.RandomNormal(stddev=-1)
    with pytest.raises(TypeError, match=r"Constant: argument `value` must be a finite number or an array of them; "
                                        r"received 'a'"):
        I.Constant("a")
    with pytest.raises(TypeError, match=r"Constant: argument `value` must be a finite number .*received '0'"):
        I.Constant("0")                     # numpy would parse the string: refused, as Keras needs a number
    with pytest.raises(ValueError, match=r"LSTM: argument `kernel_initializer`: .*received nan"):
        L.LSTM(3, kernel_initializer={"class_name": "Constant", "config": {"value": float("nan")}})


# ---- call inputs ------------------------------------------------------------------------------------------------
def test_masks_as_lists_and_numbers_equal_bool_masks():
    x = _x(2)
    layer = L.LSTM(U, return_sequences=True)
    want = layer(x, mask=np.array([[True, True, False], [True, False, False]])).detach().numpy()
    for mask in ([[1, 1, 0], [1, 0, 0]], np.array([[1, 1, 0], [1, 0, 0]]), [[True, True, False], [True, False, False]],
                 np.array([[2.0, 0.5, 0.0], [1.0, 0.0, 0.0]]), torch.tensor([[1, 1, 0], [1, 0, 0]])):
        np.testing.assert_array_equal(layer(x, mask=mask).detach().numpy(), want)
    with pytest.raises(TypeError, match=r"LSTM '.*': argument `mask` must hold booleans \(or 0/1 numbers\); received "
                                        r"an array of shape \(2, 3\) holding strings"):
        layer(x, mask=[["a", "b", "c"]] * 2)
    with pytest.raises(ValueError, match=r"LSTM '.*': argument `mask` must be a \(batch, timesteps\) boolean array .*"
                                         r"received shape \(3,\)"):
        layer(x, mask=[1, 1, 0])


def test_list_of_lists_is_one_tensor():
    x = _x(3)
    for layer in (L.LSTM(U), L.Dense(U), L.GRU(U, return_sequences=True)):
        np.testing.assert_allclose(layer(x.tolist()).detach().numpy(), layer(x).detach().numpy(), rtol=0)
    with pytest.raises(TypeError, match=r"Dense '.*': argument `inputs` must hold real numbers .*holding Python "
                                        r"objects \(a ragged list\?\)"):
        L.Dense(3)([[1.0, 2.0], [3.0]])


def test_complex_inputs_are_refused():
    for x in (np.ones((B, T, F), complex), torch.ones((B, T, F), dtype=torch.complex64)):
        with pytest.raises(TypeError, match=r"LSTM '.*': argument `inputs` must hold real numbers \(float, int or "
                                            r"bool\); received an array of shape \(2, 3, 4\) holding complex numbers "
                                            r"\(the imaginary part would be lost\)"):
            L.LSTM(3)(x)
    m = _model()
    with pytest.raises(TypeError, match=r"complex"):
        m.predict(np.ones((B, T, F), complex), verbose=0)
    with pytest.raises(TypeError, match=r"x: expected real numbers .*complex"):
        m.fit(torch.ones((B, T, F), dtype=torch.complex64), np.zeros((B, 1)), verbose=0)


def test_embedding_ids_of_any_integer_or_bool_dtype():
    """Keras accepts uint64, bool and float ids (cast to int); so does rnnstate. Oracle: numpy row lookup."""
    e = L.Embedding(5, 3)
    w = None
    for ids in (np.array([[1, 4]], "uint64"), np.array([[1, 4]], "uint32"), np.array([[1, 4]], "uint16"),
                np.array([[1, 4]], "int8"), torch.tensor([[1, 4]], dtype=torch.int32)):
        out = e(ids).detach().numpy()
        w = e.get_weights()[0]
        np.testing.assert_array_equal(out, w[[[1, 4]]])
    np.testing.assert_array_equal(e(np.array([[True, False]])).detach().numpy(), w[[[1, 0]]])
    np.testing.assert_array_equal(e(torch.tensor([[True, False]])).detach().numpy(), w[[[1, 0]]])
    with pytest.raises(ValueError, match=r"Embedding '.*': argument `inputs` holds integers above "
                                         r"9223372036854775807; received up to 9223372036854775813"):
        e(np.array([[1, 2 ** 63 + 5]], "uint64"))
    with pytest.raises(ValueError, match=r"Embedding '.*': ids must be in \[0, 5\) .*received ids from 1 to 7"):
        e(np.array([[1, 7]], "uint8"))


# ---- predict / fit / compile arguments -----------------------------------------------------------------------------
@pytest.mark.parametrize("call,arg,received", [
    (lambda m, x, y: m.predict(x, batch_size=-1, verbose=0), "batch_size", "-1"),
    (lambda m, x, y: m.predict(x, batch_size=2.5, verbose=1), "batch_size", "2.5"),
    (lambda m, x, y: m.fit(x, y, batch_size=0, verbose=0), "batch_size", "0"),
    (lambda m, x, y: m.fit(x, y, batch_size=2.5, verbose=0), "batch_size", "2.5"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x, y), validation_freq=0, verbose=0), "validation_freq", "0"),
    (lambda m, x, y: m.fit(x, y, epochs=-1, verbose=0), "epochs", "-1"),
    (lambda m, x, y: m.fit(x, y, validation_split=1.5, verbose=0), "validation_split", "1.5"),
    (lambda m, x, y: m.fit(x, y, steps_per_epoch=0, verbose=0), "steps_per_epoch", "0"),
    (lambda m, x, y: m.fit(x, y, class_weight={0: float("nan")}, verbose=0), "class_weight", r"\{0: nan\}"),
    (lambda m, x, y: m.evaluate(x, y, batch_size=0, verbose=0), "batch_size", "0"),
])
def test_training_arguments_value_errors(call, arg, received):
    m = _model("m")
    x, y = _x(), np.zeros((B, 1), "float32")
    method = "predict" if "predict" in arg or call.__code__.co_names[0] == "predict" else None
    with pytest.raises(ValueError, match=rf"Model 'm': \w+\(\) argument `{arg}` must be .*; received {received}"):
        call(m, x, y)
    del method


@pytest.mark.parametrize("call,arg", [
    (lambda m, x, y: m.fit(x, y, class_weight="abc", verbose=0), "class_weight"),
    (lambda m, x, y: m.fit(x, y, batch_size="8", verbose=0), "batch_size"),
    (lambda m, x, y: m.predict(x, steps="2", verbose=0), "steps"),
    (lambda m, x, y: m.compile("adam", "mse", loss_weights="abc"), "loss_weights"),
    (lambda m, x, y: m.train_on_batch(x, y, class_weight=[1, 2]), "class_weight"),
])
def test_training_arguments_type_errors(call, arg):
    m = _model("m")
    with pytest.raises(TypeError, match=rf"Model 'm': \w+\(\) argument `{arg}` must be .*; received"):
        call(m, _x(), np.zeros((B, 1), "float32"))


def test_compile_loss_weights_checked_at_compile():
    m = _model("m")
    with pytest.raises(ValueError, match=r"compile\(\) argument `loss_weights` must be .*finite numbers.*received "
                                         r"\[nan\]"):
        m.compile("adam", "mse", loss_weights=[float("nan")])
    m.compile("adam", "mse", loss_weights=[0.5])          # valid forms still work
    m.compile("adam", "mse", loss_weights={m.output_names[0]: 2})
    m.fit(_x(), np.zeros((B, 1), "float32"), verbose=0)


def test_optimizer_arguments_checked_at_construction():
    with pytest.raises(TypeError, match=r"Adam 'adam': argument `learning_rate` must be a finite number >= 0, a "
                                        r"LearningRateSchedule or a callable\(step\) -> rate; received 'a'"):
        O.Adam(learning_rate="a")
    with pytest.raises(ValueError, match=r"SGD 'sgd': argument `momentum` must be a finite number in \[0, 1\); "
                                         r"received -1"):
        O.SGD(momentum=-1)
    with pytest.raises(ValueError, match=r"Adam 'adam': argument `beta_1` must be a finite number in \[0, 1\); "
                                         r"received 2"):
        O.Adam(beta_1=2)
    with pytest.raises(ValueError, match=r"RMSprop 'rmsprop': argument `rho` .*received 1.5"):
        O.RMSprop(rho=1.5)
    with pytest.raises(ValueError, match=r"Adam 'adam': argument `clipnorm` must be a finite number > 0 or None; "
                                         r"received -1"):
        O.Adam(clipnorm=-1)
    with pytest.raises(ValueError, match=r"argument `learning_rate` .*received nan"):
        O.Adam(learning_rate=float("nan"))
    opt = O.Adam()
    with pytest.raises(TypeError, match=r"Adam 'adam': argument `learning_rate` .*received 'x'"):
        opt.learning_rate = "x"
    # Keras' accepted values still work: floats, numpy scalars, schedules / callables
    O.SGD(learning_rate=np.float32(0.1), momentum=0.9)
    keras = pytest.importorskip("keras")
    sched = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = O.SGD(learning_rate=sched)
    m = _model()
    m.compile(opt, "mse")
    m.fit(_x(), np.zeros((B, 1), "float32"), epochs=1, batch_size=1, verbose=0)
    assert opt.learning_rate == pytest.approx(0.1 * 0.5, rel=1e-6)       # evaluated before step 1 of 2


def test_initial_state_and_input_containers():
    x = _x(4)
    with pytest.raises(TypeError, match=r"LSTM '.*': argument `initial_state` must hold real numbers .*holding "
                                        r"strings"):
        L.LSTM(3)(x, initial_state=["a", "b"])
    with pytest.raises(TypeError, match=r"GRU '.*': argument `initial_state` must hold real numbers .*complex"):
        L.GRU(3)(x, initial_state=[np.ones((B, 3), complex)])
    with pytest.raises(TypeError, match=r"LSTM '.*': argument `inputs` must be one array or tensor; received a list "
                                        r"of 1 entries.*initial_state="):
        L.LSTM(3)([x])
    with pytest.raises(TypeError, match=r"Dense '.*': argument `inputs` must be one array or tensor; received a "
                                        r"tuple of 2 entries"):
        L.Dense(3)((x, x))
    # a single-input model given one nested list of numbers: the same as the array
    seq = rnnstate.Sequential([L.GRU(2)])
    np.testing.assert_allclose(seq.predict(x.tolist(), verbose=0), seq.predict(x, verbose=0), rtol=0)
