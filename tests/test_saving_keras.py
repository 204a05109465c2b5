"""Keras 3 (JAX backend) makes and reads the files: rnnstate <-> Keras `.keras`, `.weights.h5`, Keras 3's
legacy `.h5`, a Keras 2-layout `.h5`, and a real Keras `Lambda` file refused."""
import json

import h5py
import keras
import numpy as np
import pytest

import rnnstate
from rnnstate.models import load_model

from .conftest import B, F, T, U


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.standard_normal(np.shape(w)) * 0.5).astype("float32") for w in model.get_weights()])
    return model


def _close(got, want):
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=2e-5, rtol=1e-5)


def _functional(lib):
    """An encoder-decoder (initial_state from the encoder and a Dense) plus every recurrent kind."""
    enc_in = lib.Input((T, F), name="enc_in")
    dec_in = lib.Input((T, 2), name="dec_in")
    seq, h, c = lib.layers.LSTM(U, return_sequences=True, return_state=True, name="encoder")(enc_in)
    c2 = lib.layers.Dense(U, activation="tanh", name="c_proj")(c)
    y = lib.layers.LSTM(U, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c2])
    g1 = lib.layers.GRU(3, return_sequences=True, reset_after=True)(seq)
    g2 = lib.layers.GRU(3, return_sequences=True, reset_after=False, go_backwards=True)(seq)
    s = lib.layers.SimpleRNN(3, return_sequences=True)(y)
    x = lib.layers.Concatenate()([g1, g2, s])
    x = lib.layers.Bidirectional(lib.layers.LSTM(2, return_sequences=True))(x)
    x = lib.layers.TimeDistributed(lib.layers.Dense(2))(x)
    z = lib.layers.Bidirectional(lib.layers.GRU(2), merge_mode="sum")(x)
    return lib.Model([enc_in, dec_in], [lib.layers.Dense(1, activation="sigmoid")(z), x, h])


def _sequential(lib):
    return lib.Sequential([lib.Input((T,), dtype="int32"), lib.layers.Embedding(10, F),
                           lib.layers.LSTM(U, return_sequences=True),
                           lib.layers.RNN([lib.layers.LSTMCell(3), lib.layers.GRUCell(2)], return_sequences=True),
                           lib.layers.GRU(3),
                           lib.layers.Dense(2, activation="softmax")])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {"f": [rng.standard_normal((B, T, F)).astype("float32"), rng.standard_normal((B, T, 2)).astype("float32")],
            "s": rng.integers(0, 10, (B, T))}


@pytest.fixture(scope="module")
def keras_models(data, tmp_path_factory):
    """Keras-made models (compiled for predict once), their predictions and their files."""
    d = tmp_path_factory.mktemp("keras")
    out = {}
    for kind, make in (("f", _functional), ("s", _sequential)):
        km = _randomize(make(keras))
        want = km.predict(data[kind], verbose=0)
        km.save(d / f"{kind}.keras")
        km.save_weights(d / f"{kind}.weights.h5")
        out[kind] = (km, want, d)
    out["f"][0].save(d / "f.h5")
    return out


@pytest.mark.parametrize("kind", ["f", "s"])
def test_rnnstate_keras_file_loads_in_keras(tmp_path, kind, data):
    model = _randomize(_functional(rnnstate) if kind == "f" else _sequential(rnnstate))
    if kind == "f":
        model.get_layer("decoder").path = "loop"       # an rnnstate-only option Keras must tolerate
    model.save(tmp_path / "m.keras")
    km = keras.models.load_model(tmp_path / "m.keras")
    _close(km.predict(data[kind], verbose=0), model.predict(data[kind]))
    back = load_model(tmp_path / "m.keras")
    if kind == "f":
        assert back.get_layer("decoder").path == "loop"
    _close(back.predict(data[kind]), model.predict(data[kind]))
    if kind == "s":                                    # to_json is Keras' JSON too
        kj = keras.models.model_from_json(model.to_json())
        assert [type(l).__name__ for l in kj.layers] == [type(l).__name__ for l in km.layers]
        assert [w.shape for w in kj.get_weights()] == [w.shape for w in km.get_weights()]


@pytest.mark.parametrize("kind", ["f", "s"])
def test_keras_file_loads_in_rnnstate(kind, data, keras_models):
    km, want, d = keras_models[kind]
    model = load_model(d / f"{kind}.keras")
    assert sorted(l.name for l in model.layers) == sorted(l.name for l in km.layers)
    _close(model.predict(data[kind]), want)
    from_json = rnnstate.models.model_from_json(km.to_json())
    from_json.set_weights(km.get_weights())
    _close(from_json.predict(data[kind]), want)
    # weights-only files, both ways
    other = _randomize(load_model(d / f"{kind}.keras"), seed=3)
    other.load_weights(d / f"{kind}.weights.h5")
    _close(other.predict(data[kind]), want)
    _randomize(other, seed=4).save_weights(d / f"{kind}.r.weights.h5")
    km.load_weights(d / f"{kind}.r.weights.h5")
    _close(km.predict(data[kind], verbose=0), other.predict(data[kind]))


def test_keras3_legacy_h5_loads(data, keras_models):
    _, want, d = keras_models["f"]
    _close(load_model(d / "f.h5").predict(data["f"]), want)


def test_keras_layer_order_matches_keras():
    """Weight files name layers by Keras' order; rnnstate computes it from the graph like Keras does."""
    from rnnstate.saving._walk import keras_layer_order

    def graphs(lib):
        a, b = lib.Input((T, F), name="a"), lib.Input((T, 2), name="b")
        y = lib.layers.Dense(3, name="d2")(a)
        z = lib.layers.Add(name="add")([lib.layers.Dense(3, name="d1")(b), lib.layers.Dense(3, name="d3")(y)])
        i, unused = lib.Input((4,), name="i"), lib.Input((3,), name="unused")
        s = lib.layers.Dense(4, name="s")
        h = s(s(i))
        return [lib.Model([a, b], [z, y]), lib.Model(i, [lib.layers.Dense(2, name="k")(i), h]),
                lib.Model([i, unused], h), _functional(lib)]

    def sig(layers):     # auto-generated names differ between the libraries: compare types and shapes
        return [(type(l).__name__.replace("Functional", "Model"), [tuple(np.shape(w)) for w in l.get_weights()])
                for l in layers]

    for i, (km, rm) in enumerate(zip(graphs(keras), graphs(rnnstate))):
        assert sig(keras_layer_order(rm)) == sig(km.layers)
        if i < 3:                                        # every layer named explicitly
            assert [l.name for l in keras_layer_order(rm)] == [l.name for l in km.layers]


def _init(name, **cfg):
    return {"class_name": name, "config": {"seed": None, **cfg}}


def _k2_rnn(kind, name, units, **extra):
    cfg = {"name": name, "trainable": True, "dtype": "float32", "return_sequences": False, "return_state": False,
           "go_backwards": False, "stateful": False, "unroll": False, "time_major": False, "units": units,
           "activation": "tanh", "use_bias": True, "kernel_initializer": _init("GlorotUniform"),
           "recurrent_initializer": _init("Orthogonal", gain=1.0), "bias_initializer": {"class_name": "Zeros",
                                                                                       "config": {}},
           "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
           "activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
           "bias_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0}
    if kind != "SimpleRNN":
        cfg.update(recurrent_activation="sigmoid", implementation=2)
    if kind == "LSTM":
        cfg["unit_forget_bias"] = True
    cfg.update(extra)
    return {"class_name": kind, "config": cfg}


def _k2_dense(name, units, activation="linear"):
    return {"class_name": "Dense", "config": {"name": name, "trainable": True, "dtype": "float32", "units": units,
                                              "activation": activation, "use_bias": True,
                                              "kernel_initializer": _init("GlorotUniform"),
                                              "bias_initializer": {"class_name": "Zeros", "config": {}},
                                              "kernel_regularizer": None, "bias_regularizer": None,
                                              "activity_regularizer": None, "kernel_constraint": None,
                                              "bias_constraint": None}}


def _node(*refs):
    return [[[n, i, t, {}] for n, i, t in refs]]


def test_keras2_legacy_h5_loads(tmp_path, data):
    """A file in Keras 2's layout (config with list-style nodes, initial states as extra node inputs,
    `:0` weight names, byte-string attributes), holding the weights of an equivalent Keras 3 model."""
    enc_in = keras.Input((T, F), name="input_1")
    dec_in = keras.Input((T, 2), name="input_2")
    seq, h, c = keras.layers.LSTM(U, return_sequences=True, return_state=True, name="lstm")(enc_in)
    c2 = keras.layers.Dense(U, activation="tanh", name="dense")(c)
    y = keras.layers.LSTM(U, return_sequences=True, name="lstm_1")(dec_in, initial_state=[h, c2])
    b = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True, name="gru"),
                                   name="bidirectional")(y)
    t = keras.layers.TimeDistributed(keras.layers.Dense(2, name="dense_1"), name="time_distributed")(b)
    km = _randomize(keras.Model([enc_in, dec_in], [t, h]))

    def with_input(cfg, node):
        cfg["name"] = cfg["config"]["name"]
        cfg["inbound_nodes"] = node
        return cfg

    bi = {"class_name": "Bidirectional", "config": {
        "name": "bidirectional", "trainable": True, "dtype": "float32", "merge_mode": "concat",
        "layer": _k2_rnn("GRU", "gru", 3, return_sequences=True, reset_after=True)}}
    td = {"class_name": "TimeDistributed", "config": {"name": "time_distributed", "trainable": True,
                                                      "dtype": "float32", "layer": _k2_dense("dense_1", 2)}}
    config = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, T, F], "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "input_1"},
         "name": "input_1", "inbound_nodes": []},
        with_input(_k2_rnn("LSTM", "lstm", U, return_sequences=True, return_state=True), _node(("input_1", 0, 0))),
        with_input(_k2_dense("dense", U, "tanh"), _node(("lstm", 0, 2))),
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, T, 2], "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "input_2"},
         "name": "input_2", "inbound_nodes": []},
        with_input(_k2_rnn("LSTM", "lstm_1", U, return_sequences=True),
                   _node(("input_2", 0, 0), ("lstm", 0, 1), ("dense", 0, 0))),
        with_input(bi, _node(("lstm_1", 0, 0))),
        with_input(td, _node(("bidirectional", 0, 0))),
    ], "input_layers": [["input_1", 0, 0], ["input_2", 0, 0]],
        "output_layers": [["time_distributed", 0, 0], ["lstm", 0, 1]]}}
    weight_names = {
        "lstm": ["lstm/lstm_cell/kernel:0", "lstm/lstm_cell/recurrent_kernel:0", "lstm/lstm_cell/bias:0"],
        "dense": ["dense/kernel:0", "dense/bias:0"],
        "lstm_1": ["lstm_1/lstm_cell_1/kernel:0", "lstm_1/lstm_cell_1/recurrent_kernel:0",
                   "lstm_1/lstm_cell_1/bias:0"],
        "bidirectional": [f"bidirectional/{d}_gru/gru_cell_{i}/{w}:0" for d, i in (("forward", 1), ("backward", 2))
                          for w in ("kernel", "recurrent_kernel", "bias")],
        "time_distributed": ["time_distributed/dense_1/kernel:0", "time_distributed/dense_1/bias:0"],
    }
    order = ["input_1", "lstm", "dense", "input_2", "lstm_1", "bidirectional", "time_distributed"]
    with h5py.File(tmp_path / "k2.h5", "w") as f:
        f.attrs["keras_version"] = b"2.13.1"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([n.encode() for n in order])
        for name in order:
            lg = g.create_group(name)
            names = weight_names.get(name, [])
            lg.attrs["weight_names"] = np.array([n.encode() for n in names])
            for n, w in zip(names, km.get_layer(name).get_weights()):
                lg[n] = w
    model = load_model(tmp_path / "k2.h5")
    _close(model.predict(data["f"]), km.predict(data["f"], verbose=0))
    other = _randomize(load_model(tmp_path / "k2.h5"), seed=9)
    other.load_weights(tmp_path / "k2.h5")
    _close(other.predict(data["f"]), km.predict(data["f"], verbose=0))


def test_real_keras_lambda_file_is_refused(tmp_path):
    inp = keras.Input((3,))
    km = keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(keras.layers.Dense(2)(inp)))
    km.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="Lambda"):
        load_model(tmp_path / "lambda.keras")


def test_keras_masking_loads_without_warning_and_masks(tmp_path):
    """(Mask propagation itself is checked against Keras in test_masking.py.)"""
    import warnings
    km = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(10, F, mask_zero=True),
                           keras.layers.LSTM(2)])
    km.save(tmp_path / "mask.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = load_model(tmp_path / "mask.keras")
    ids = np.array([[1, 2, 0, 0, 0, 0, 0][:T], [3, 0, 0, 0, 0, 0, 0][:T]])
    np.testing.assert_allclose(m.predict(ids, verbose=0), km.predict(ids, verbose=0), atol=1e-5)
