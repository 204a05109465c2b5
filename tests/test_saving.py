"""Saving and loading inside rnnstate: configs of every layer, native and .keras round trips with
identical predictions, weights-only files, carried states, refusal of code, corrupt / truncated /
crafted files, and atomic saves under SIGKILL."""
import io
import json
import os
import signal
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import rnnstate
from rnnstate import layers as L
from rnnstate import serialization
from rnnstate.models import load_model, model_from_json
from rnnstate.saving import FileFormatError, model_from_config

from .conftest import B, F, T, U

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype("float32") for w in model.weights])
    return model


def _same(a, b):
    a = a if isinstance(a, list) else [a]
    b = b if isinstance(b, list) else [b]
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _functional():
    """Every recurrent kind, both GRU variants, wrappers, Embedding, Dense; two inputs."""
    ids = rnnstate.Input((T,), dtype="int32", name="ids")
    seq = rnnstate.Input((T, F), name="seq")
    e = L.Embedding(10, F)(ids)
    a = L.LSTM(U, return_sequences=True)(e)
    b = L.GRU(U, return_sequences=True, reset_after=True)(seq)
    c = L.GRU(U, return_sequences=True, reset_after=False, go_backwards=True)(seq)
    d = L.SimpleRNN(U, return_sequences=True, path="loop")(seq)
    x = L.Concatenate()([a, b, c, d])
    x = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum")(x)
    x = L.TimeDistributed(L.Dense(2, activation="tanh"))(x)
    y = L.Bidirectional(L.GRU(2))(x)
    y = L.Dense(1, activation="sigmoid")(y)
    return _randomize(rnnstate.Model([ids, seq], [y, x], name="kitchen_sink"))


def _inputs(rng, n=B):
    return [rng.integers(0, 10, (n, T)), rng.standard_normal((n, T, F)).astype("float32")]


def _sequential():
    return _randomize(rnnstate.Sequential([
        L.Embedding(10, F, input_shape=(T,)), L.GRU(U, return_sequences=True, reset_after=False),
        L.Dropout(0.2), L.SimpleRNN(U, return_sequences=True), L.Flatten(), L.Dense(6, activation="relu"),
        L.Reshape((2, 3)), L.RNN(L.LSTMCell(3)), L.Activation("sigmoid"), L.RepeatVector(2),
        L.Bidirectional(L.LSTM(2), merge_mode="ave"), L.Dense(1)], name="seq"), seed=1)


def _encoder_decoder():
    """Training model + inference decoder cut from it (the decoder layer's nodes span two models)."""
    enc_in = rnnstate.Input((T, F), name="enc_in")
    dec_in = rnnstate.Input((None, 2), name="dec_in")
    _, h, c = L.LSTM(U, return_state=True, name="encoder")(enc_in)
    c2 = L.Dense(U, activation="tanh", name="c_proj")(c)
    dec = L.LSTM(U, return_sequences=True, return_state=True, name="decoder")
    y, _, _ = dec(dec_in, initial_state=[h, c2])
    head = L.TimeDistributed(L.Dense(3), name="head")
    train = _randomize(rnnstate.Model([enc_in, dec_in], head(y), name="train"), seed=2)
    h_in, c_in = rnnstate.Input((U,), name="h_in"), rnnstate.Input((U,), name="c_in")
    y2, h2, c2b = dec(dec_in, initial_state=[h_in, c_in])
    infer = rnnstate.Model([dec_in, h_in, c_in], [head(y2), h2, c2b], name="infer")
    return train, infer


# ---- configs -----------------------------------------------------------------------------------------
LAYER_CASES = [
    lambda: L.Dense(3, activation="relu"), lambda: L.Embedding(10, 4, mask_zero=True), lambda: L.RepeatVector(3),
    lambda: L.Masking(mask_value=-1.0),
    lambda: L.Activation("tanh"), lambda: L.Dropout(0.2, noise_shape=(None, 1, 3), seed=3), lambda: L.Flatten(),
    lambda: L.Reshape((2, -1)), lambda: L.Concatenate(axis=1), lambda: L.Add(),
    lambda: L.LSTM(3, return_sequences=True, return_cell_sequence=True, return_gate_sequences=True, path="loop",
                   dropout=0.1, seed=4, unit_forget_bias=False),
    lambda: L.GRU(3, reset_after=False, go_backwards=True, stateful=True),
    lambda: L.SimpleRNN(2, activation="relu", use_bias=False, kernel_initializer="he_normal"),
    lambda: L.RNN(L.LSTMCell(3)), lambda: L.RNN(L.GRUCell(2, reset_after=False), return_state=True),
    lambda: L.LSTMCell(3), lambda: L.GRUCell(2), lambda: L.SimpleRNNCell(2),
    lambda: L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum"),
    lambda: L.Bidirectional(L.GRU(2), backward_layer=L.GRU(2, go_backwards=True), merge_mode=None),
    lambda: L.TimeDistributed(L.Dense(2)), lambda: L.InputLayer(shape=(3, 2)), lambda: L.Dense(2, input_shape=(3,)),
    lambda: L.Conv1D(4, 3, strides=2, padding="causal", groups=1, dilation_rate=1, activation="relu"),
    lambda: L.MaxPooling1D(3, 2, "same"), lambda: L.AveragePooling1D(2), lambda: L.GlobalAveragePooling1D(keepdims=True),
    lambda: L.GlobalMaxPooling1D(data_format="channels_first"), lambda: L.LayerNormalization(axis=[1, 2], epsilon=0.1),
    lambda: L.BatchNormalization(momentum=0.9, center=False), lambda: L.Subtract(), lambda: L.Multiply(),
    lambda: L.Average(), lambda: L.Maximum(), lambda: L.Minimum(), lambda: L.Dot((1, 2), normalize=True),
    lambda: L.Permute((2, 1)), lambda: L.SpatialDropout1D(0.3, seed=1), lambda: L.GaussianNoise(0.2),
    lambda: L.Attention(use_scale=True, score_mode="concat", dropout=0.1), lambda: L.AdditiveAttention(use_scale=False),
    lambda: L.MultiHeadAttention(2, 3, value_dim=4, output_shape=5, dropout=0.1),
    lambda: L.ops.NotEqual(), lambda: L.ops.Equal(), lambda: L.ops.LogicalAnd(), lambda: L.ops.LogicalOr(),
    lambda: L.ops.LogicalNot(), lambda: L.ops.Any(axis=-1), lambda: L.ops.All(axis=1, keepdims=True),
    lambda: L.ops.Cast(dtype="bool"),
    lambda: L.ConvLSTM1D(2, 3, strides=2, padding="same", return_state=True, recurrent_dropout=0.1, seed=2),
    lambda: L.ConvLSTM2D(3, (2, 3), dilation_rate=(1, 2), data_format="channels_first", go_backwards=True,
                         stateful=True, kernel_regularizer="l2", unit_forget_bias=False, activation="relu"),
    lambda: L.ConvLSTM3D(2, 2, use_bias=False, return_sequences=True, path="loop"),
]


@pytest.mark.parametrize("make", LAYER_CASES, ids=[f"case{i}" for i in range(len(LAYER_CASES))])
def test_layer_config_roundtrip_through_json(make):
    layer = make()
    spec = json.loads(json.dumps(serialization.serialize_layer(layer)))
    again = serialization.deserialize_layer(spec)
    assert type(again) is type(layer)
    assert again.get_config() == layer.get_config()
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_every_registered_class_has_a_config_case():
    covered = {type(make()).__name__ for make in LAYER_CASES} | {"Model", "Functional", "Sequential"}
    covered.add("Lambda")         # code-carrying: its config round trips are in test_layers_lambda.py
    assert {n for n, cls in serialization.registry().items() if cls.__name__ not in covered} == set()


def test_rnnstate_only_options_written_only_when_set(tmp_path):
    cfg = L.LSTM(3).get_config()
    assert not {"path", "return_cell_sequence", "return_gate_sequences"} & set(cfg)
    cfg = L.LSTM(3, path="loop", return_cell_sequence=True).get_config()
    assert cfg["path"] == "loop" and cfg["return_cell_sequence"] is True
    inp = rnnstate.Input((T, F))
    model = rnnstate.Model(inp, L.LSTM(3, path="loop", return_cell_sequence=True)(inp))
    spec = json.loads(model.to_json())["config"]["layers"][1]     # Keras-readable: options beside the config
    assert spec["rnnstate_options"] == {"path": "loop", "return_cell_sequence": True}
    assert "path" not in spec["config"]
    again = model_from_json(model.to_json())
    assert again.layers[1].path == "loop" and again.layers[1].return_cell_sequence
    with pytest.raises(ValueError, match="safetensors"):
        model.save(tmp_path / "m.keras")


# ---- native / .keras round trips ------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".safetensors", ".keras"])
def test_functional_roundtrip_identical(tmp_path, ext, rng):
    model = _functional()
    x = _inputs(rng)
    path = tmp_path / f"m{ext}"
    model.save(path)
    loaded = load_model(path)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    _same(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()


@pytest.mark.parametrize("ext", [".safetensors", ".keras"])
def test_sequential_roundtrip_identical(tmp_path, ext, rng):
    model = _sequential()
    x = rng.integers(0, 10, (4, T))
    model.save(tmp_path / f"s{ext}")
    loaded = load_model(tmp_path / f"s{ext}")
    assert isinstance(loaded, rnnstate.Sequential) and len(loaded.layers) == len(model.layers)
    _same(loaded.predict(x), model.predict(x))


def test_encoder_decoder_initial_state_kwargs_roundtrip(tmp_path, rng):
    train, infer = _encoder_decoder()
    node = [n for n in train.get_config()["layers"] if n["name"] == "decoder"][0]["inbound_nodes"]
    assert len(node) == 1 and len(node[0]["kwargs"]["initial_state"]) == 2
    xe, xd = rng.standard_normal((2, T, F)), rng.standard_normal((2, 4, 2))
    hs = [rng.standard_normal((2, U)).astype("float32") for _ in range(2)]
    for model, args in ((train, [xe, xd]), (infer, [xd] + hs)):
        for ext in (".safetensors", ".keras"):
            model.save(tmp_path / f"{model.name}{ext}")
            _same(load_model(tmp_path / f"{model.name}{ext}").predict(args), model.predict(args))
        again = model_from_json(model.to_json())
        again.set_weights(model.get_weights())
        _same(again.predict(args), model.predict(args))


def test_shared_layer_and_nested_model(tmp_path, rng):
    inner_in = rnnstate.Input((4,))
    inner = rnnstate.Model(inner_in, L.Dense(3)(inner_in), name="inner")
    a = rnnstate.Input((4,))
    shared = L.Dense(4, activation="tanh", name="shared")
    outer = _randomize(rnnstate.Model(a, inner(shared(shared(a))), name="outer"))
    x = rng.standard_normal((2, 4)).astype("float32")
    outer.save(tmp_path / "o.safetensors")
    loaded = load_model(tmp_path / "o.safetensors")
    assert len(loaded.get_config()["layers"][1]["inbound_nodes"]) == 2
    _same(loaded.predict(x), outer.predict(x))
    cfg = model_from_config(outer.get_config())
    assert cfg.get_config() == outer.get_config()


def test_weights_only_files(tmp_path, rng):
    model = _functional()
    x = _inputs(rng)
    for name in ("w.safetensors", "w.weights.h5"):
        model.save_weights(tmp_path / name)
        fresh = _randomize(_functional(), seed=5)       # same architecture, other layer names
        assert {l.name for l in fresh.layers} != {l.name for l in model.layers}
        fresh.load_weights(tmp_path / name)
        _same(fresh.predict(x), model.predict(x))
    model.save(tmp_path / "full.safetensors")
    fresh = model_from_json(model.to_json())
    fresh.load_weights(tmp_path / "full.safetensors")
    _same(fresh.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="weights only"):
        load_model(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(tmp_path / "w.bin")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "full.safetensors", overwrite=False)


def test_load_weights_mismatch_assigns_nothing(tmp_path):
    small = rnnstate.Sequential([rnnstate.Input((T, F)), L.LSTM(U), L.Dense(2)])
    other = _randomize(rnnstate.Sequential([rnnstate.Input((T, F)), L.LSTM(U), L.Dense(3)]))
    other.save_weights(tmp_path / "o.safetensors")
    other.save_weights(tmp_path / "o.weights.h5")
    before = small.get_weights()
    for name in ("o.safetensors", "o.weights.h5"):
        with pytest.raises(ValueError, match="shape"):
            small.load_weights(tmp_path / name)
        for a, b in zip(small.get_weights(), before):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ext", [".safetensors", ".keras"])
def test_include_states(tmp_path, ext, rng):
    inp = rnnstate.Input(batch_shape=(2, 3, F))
    x = L.LSTM(U, stateful=True, return_sequences=True)(inp)
    y = L.Bidirectional(L.GRU(2, stateful=True))(x)
    model = _randomize(rnnstate.Model(inp, y))
    xs = rng.standard_normal((2, 3, F)).astype("float32")
    model.predict(xs)
    model.save(tmp_path / f"st{ext}", include_states=True)
    model.save(tmp_path / f"nost{ext}")
    loaded = load_model(tmp_path / f"st{ext}")
    lstm = loaded.layers[1]
    np.testing.assert_array_equal(lstm.states.c.numpy(), model.layers[1].states.c.numpy())
    _same(loaded.predict(xs), model.predict(xs))          # both continue from the same states
    assert load_model(tmp_path / f"nost{ext}").layers[1].states is None


# ---- code is never loaded ------------------------------------------------------------------------------
def _keras_zip(config, weights=b""):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights)
    return buf.getvalue()


@pytest.mark.parametrize("bad", [
    {"module": "keras.layers", "class_name": "Lambda",
     "config": {"name": "l", "function": {"class_name": "__lambda__", "config": {"code": "print('pwned')"}}}},
    {"module": "os", "class_name": "system", "config": {"name": "x"}},
    {"module": "keras.layers", "class_name": "Dense",
     "config": {"name": "d", "units": 2, "activation": {"class_name": "__lambda__", "config": {"code": "x"}}}},
], ids=["lambda", "unknown", "lambda-activation"])
def test_code_is_refused(tmp_path, bad):
    model = rnnstate.Sequential([rnnstate.Input((3,)), L.Dense(2)])
    model.save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as zf:
        cfg, weights = json.loads(zf.read("config.json")), zf.read("model.weights.h5")
    cfg["config"]["layers"][1] = bad
    (tmp_path / "bad.keras").write_bytes(_keras_zip(cfg, weights))
    with pytest.raises(ValueError, match="bad.keras") as e:
        load_model(tmp_path / "bad.keras")
    assert "Lambda" in str(e.value) or "unknown" in str(e.value).lower()
    with pytest.raises(ValueError):
        model_from_json(json.dumps(cfg))
    with pytest.raises(ValueError, match="custom_objects"):
        load_model(tmp_path / "good.keras", custom_objects={"Lambda": object})


# ---- corrupt, truncated, crafted -----------------------------------------------------------------------
def _small():
    return _randomize(rnnstate.Sequential([rnnstate.Input((T, F)), L.LSTM(U), L.Dense(2)]))


@pytest.mark.parametrize("ext", [".safetensors", ".keras", ".weights.h5"])
def test_truncated_files_give_clear_errors(tmp_path, ext):
    model = _small()
    path = tmp_path / f"m{ext}"
    (model.save_weights if ext == ".weights.h5" else model.save)(path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    cuts = sorted({0, 1, 7, 8, 9, len(data) // 2, len(data) - 1} | set(rng.integers(1, len(data), 12).tolist()))
    for cut in cuts:
        p = tmp_path / f"cut{cut}{ext}"
        p.write_bytes(data[:cut])
        with pytest.raises(FileFormatError, match=f"cut{cut}"):       # a ValueError naming the file
            if ext == ".weights.h5":
                _small().load_weights(p)
            else:
                load_model(p)


@pytest.mark.parametrize("ext", [".safetensors", ".keras", ".weights.h5"])
def test_flipped_bytes_error_or_identical(tmp_path, ext, rng):
    """A flipped byte anywhere is caught (sha256 digest / zip CRC / HDF5 fletcher32), or is harmless:
    never a silently changed model."""
    model = _small()
    x = rng.standard_normal((2, T, F)).astype("float32")
    want = model.predict(x)
    path = tmp_path / f"m{ext}"
    (model.save_weights if ext == ".weights.h5" else model.save)(path)
    data = bytearray(path.read_bytes())
    errors = 0
    for i, pos in enumerate(np.random.default_rng(1).integers(0, len(data), 40)):
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        p = tmp_path / f"flip{i}{ext}"
        p.write_bytes(bytes(bad))
        try:
            if ext == ".weights.h5":
                loaded = model_from_json(model.to_json())
                loaded.load_weights(p)
            else:
                loaded = load_model(p)
        except ValueError:
            errors += 1
            continue
        np.testing.assert_array_equal(loaded.predict(x), want)
    assert errors >= (1 if ext == ".weights.h5" else 20)      # h5 files are mostly padding


def test_crafted_safetensors_headers(tmp_path):
    def write(name, header, body=b""):
        h = json.dumps(header).encode()
        (tmp_path / name).write_bytes(len(h).to_bytes(8, "little") + h + body)
        return tmp_path / name

    meta = {"format": "rnnstate", "format_version": "1", "kind": "weights"}
    (tmp_path / "huge.safetensors").write_bytes((1 << 60).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header declares"):
        load_model(tmp_path / "huge.safetensors")
    p = write("shape.safetensors", {"__metadata__": meta, "w": {"dtype": "F32", "shape": [1 << 40, 1 << 20],
                                                               "data_offsets": [0, 16]}}, b"\0" * 16)
    with pytest.raises(ValueError, match="declares shape"):
        _small().load_weights(p)
    p = write("offs.safetensors", {"__metadata__": meta, "w": {"dtype": "F32", "shape": [4],
                                                              "data_offsets": [0, 1 << 50]}}, b"\0" * 16)
    with pytest.raises(ValueError, match="data section"):
        _small().load_weights(p)
    p = write("alien.safetensors", {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    with pytest.raises(ValueError, match="not a file written by rnnstate"):
        load_model(p)


def test_crafted_config_declaring_huge_layers_is_refused_without_allocating(tmp_path):
    model = _small()
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        cfg, weights = json.loads(zf.read("config.json")), zf.read("model.weights.h5")
    cfg["config"]["layers"][1]["config"]["units"] = 1 << 20        # a (2^20, 2^22) recurrent kernel: 16 TiB
    (tmp_path / "big.keras").write_bytes(_keras_zip(cfg, weights))
    with pytest.raises(ValueError, match="parameters|shape|more than this machine's memory"):
        load_model(tmp_path / "big.keras")
    with pytest.raises(ValueError, match="max_params|more than this machine's memory"):
        model_from_json(json.dumps(cfg))


def test_crafted_keras_archives(tmp_path):
    model = _small()
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        cfg, weights = json.loads(zf.read("config.json")), zf.read("model.weights.h5")
    # a decompression bomb as config.json
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", b" " * (65 << 20))
        zf.writestr("model.weights.h5", weights)
    (tmp_path / "bomb.keras").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="limit"):
        load_model(tmp_path / "bomb.keras")
    # a weight of the wrong shape, and a missing weight
    h5 = io.BytesIO(weights)
    with h5py.File(h5, "a") as f:
        del f["layers/dense/vars/1"]
    (tmp_path / "missing.keras").write_bytes(_keras_zip(cfg, h5.getvalue()))
    with pytest.raises(ValueError, match="1 at"):
        load_model(tmp_path / "missing.keras")
    h5 = io.BytesIO(weights)
    with h5py.File(h5, "a") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = np.zeros(7, "float32")
    (tmp_path / "shape.keras").write_bytes(_keras_zip(cfg, h5.getvalue()))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        load_model(tmp_path / "shape.keras")
    # a graph whose node refers to a layer that does not exist
    inp = rnnstate.Input((T, F))
    rnnstate.Model(inp, L.Dense(2)(L.LSTM(U)(inp))).save(tmp_path / "f.keras")
    with zipfile.ZipFile(tmp_path / "f.keras") as zf:
        cfg, weights = json.loads(zf.read("config.json")), zf.read("model.weights.h5")
    cfg["config"]["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"][0] = "ghost"
    (tmp_path / "ghost.keras").write_bytes(_keras_zip(cfg, weights))
    with pytest.raises(ValueError, match="ghost"):
        load_model(tmp_path / "ghost.keras")
    cfg["config"]["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = [cfg["config"]["layers"][2]["name"], 0, 0]
    (tmp_path / "cycle.keras").write_bytes(_keras_zip(cfg, weights))
    with pytest.raises(ValueError, match="never created"):
        load_model(tmp_path / "cycle.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="unrecognised format"):
        load_model(tmp_path / "junk.keras")


def test_unknown_extension_and_legacy_writing_refused(tmp_path):
    model = _small()
    for name in ("m.pt", "m.h5"):
        with pytest.raises(ValueError, match=r"\.keras"):
            model.save(tmp_path / name)
    assert not list(tmp_path.iterdir())


# ---- atomic save ---------------------------------------------------------------------------------------
_CHILD = r"""
import sys, numpy as np, torch
torch.set_num_threads(1)
import rnnstate
from rnnstate import layers as L
model = rnnstate.Sequential([rnnstate.Input((3, 8)), L.LSTM(192), L.Dense(4)])
def version(k):
    model.set_weights([np.full(w.shape, k * 1e-3, "float32") for w in model.weights])
    for p in sys.argv[1:]:
        model.save(p)
version(0)
print("ready", flush=True)
k = 0
while True:
    k += 1
    version(k)
"""


def test_save_is_atomic_under_sigkill(tmp_path):
    rng = np.random.default_rng(0)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = []
    for i in range(3):
        paths = [str(tmp_path / f"p{i}.safetensors"), str(tmp_path / f"p{i}.keras")]
        procs.append((subprocess.Popen([sys.executable, "-c", _CHILD, *paths], stdout=subprocess.PIPE, env=env),
                      paths))
    try:
        for proc, _ in procs:
            assert proc.stdout.readline().strip() == b"ready"
        import time
        for proc, _ in procs:
            time.sleep(float(rng.uniform(0.05, 0.5)))
            proc.send_signal(signal.SIGKILL)
    finally:
        for proc, _ in procs:
            proc.kill()
            proc.wait()
    x = np.ones((1, 3, 8), "float32")
    for _, paths in procs:
        for p in paths:
            model = load_model(p)
            ws = model.get_weights()
            v = ws[0].flat[0]
            assert all(np.all(w == v) for w in ws), f"{p} mixes two saves"
            ref = rnnstate.Sequential([rnnstate.Input((3, 8)), L.LSTM(192), L.Dense(4)])
            ref.set_weights([np.full(w.shape, v, "float32") for w in ref.weights])
            _same(model.predict(x), ref.predict(x))


def test_a_config_that_cannot_dry_build_is_refused_before_any_real_build(tmp_path, monkeypatch):
    """No fallback to a real build: value-dependent code on the meta device is a refusal, not a bypass."""
    from rnnstate.saving import config as saving_config

    def no_meta(spec):
        raise RuntimeError("Tensor.item() cannot be called on meta tensors")

    def never(*a, **k):
        raise AssertionError("the real model was built")

    model = _small()
    model.save(tmp_path / "m.safetensors")
    monkeypatch.setattr(saving_config, "build_dry", no_meta)
    monkeypatch.setattr(serialization, "deserialize_layer", never)
    with pytest.raises(FileFormatError, match=r"m\.safetensors.*meta"):
        load_model(tmp_path / "m.safetensors")
    with pytest.raises(FileFormatError, match="meta"):
        model_from_json(model.to_json())
