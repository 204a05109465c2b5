"""Model files are untrusted input: crafted HDF5 structures (external storage, virtual datasets, soft and
external links, unknown filters, odd dtypes) are refused before any data is read; a config can't make the
loader allocate more than its file holds (the dry build has no fallback); stale temp files of a target are
removed on its next save. Memory bounds are checked in a subprocess under RLIMIT_AS."""
import io
import json
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import rnnstate
from rnnstate import layers as L
from rnnstate.models import load_model, model_from_json
from rnnstate.saving import FileFormatError, native

from .conftest import F, T, U

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _small():
    m = rnnstate.Sequential([rnnstate.Input((T, F)), L.LSTM(U), L.Dense(2)])
    rng = np.random.default_rng(0)
    m.set_weights([rng.standard_normal(w.shape).astype("float32") for w in m.weights])
    return m


def _keras_parts(tmp_path):
    _small().save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        return zf.read("config.json"), zf.read("model.weights.h5")


def _keras_zip(config, weights):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("model.weights.h5", weights)
    return buf.getvalue()


def _mutated(weights, mutate):
    b = io.BytesIO(weights)
    with h5py.File(b, "a") as f:
        mutate(f)
    return b.getvalue()


def _replace_bias(make):
    """A mutation replacing the Dense bias (shape (2,)) with what `make(f, name)` creates."""
    def mutate(f):
        del f["layers/dense/vars/1"]
        make(f, "layers/dense/vars/1")
    return mutate


def _secret(tmp_path):
    p = tmp_path / "secret.bin"
    p.write_bytes(np.array([1234.5, -99.0], "float32").tobytes())
    return str(p)


def _source_h5(tmp_path):
    p = tmp_path / "source.h5"
    with h5py.File(p, "w") as g:
        g["x"] = np.array([7.0, 8.0], "float32")
    return str(p)


def _crafted(tmp_path):
    """name -> (mutation, text the error must contain)."""
    secret, src = _secret(tmp_path), _source_h5(tmp_path)

    def vds(f, name):
        layout = h5py.VirtualLayout((2,), "float32")
        layout[:] = h5py.VirtualSource(src, "x", shape=(2,))
        f.create_virtual_dataset(name, layout)

    def vds_missing(f, name):        # a virtual source that does not exist: h5py used to crash on such files
        layout = h5py.VirtualLayout((2,), "float32")
        layout[:] = h5py.VirtualSource("/nonexistent/nowhere.h5", "x", shape=(2,))
        f.create_virtual_dataset(name, layout, fillvalue=0)

    def other(f):
        f["other"] = np.array([1.0, 2.0], "float32")
        return f

    return {
        "external": (lambda f, n: f.create_dataset(n, (2,), "float32", external=[(secret, 0, 8)]),
                     "external file"),
        "virtual": (vds, "virtual dataset"),
        "virtual_missing": (vds_missing, "virtual dataset"),
        "external_link": (lambda f, n: f.__setitem__(n, h5py.ExternalLink(src, "x")), "ExternalLink"),
        "soft_link": (lambda f, n: (other(f), f.__setitem__(n, h5py.SoftLink("/other"))), "SoftLink"),
        "filter": (lambda f, n: f.create_dataset(n, data=np.ones(2, "float32"), chunks=(2,), scaleoffset=3),
                   "filter 6"),
        "string_dtype": (lambda f, n: f.create_dataset(n, data=np.array([b"ab", b"cd"])), "dtype"),
        "compound": (lambda f, n: f.create_dataset(n, data=np.zeros(2, [("a", "f4"), ("b", "f4")])), "dtype"),
    }


CRAFTED = ["external", "virtual", "virtual_missing", "external_link", "soft_link", "filter", "string_dtype",
           "compound"]


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_hdf5_weights_are_refused_before_reading(tmp_path, case):
    config, weights = _keras_parts(tmp_path)
    make, text = _crafted(tmp_path)[case]
    bad = _mutated(weights, _replace_bias(make))
    (tmp_path / "bad.keras").write_bytes(_keras_zip(config, bad))
    (tmp_path / "bad.weights.h5").write_bytes(bad)
    with pytest.raises(FileFormatError, match="bad.keras") as e:
        load_model(tmp_path / "bad.keras")
    assert text in str(e.value) and "dense" in str(e.value)
    target = _small()
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(FileFormatError, match=text):
        target.load_weights(tmp_path / "bad.weights.h5")
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_standard_compression_still_loads(tmp_path):
    config, weights = _keras_parts(tmp_path)
    bias = np.array([0.25, -0.5], "float32")
    for i, kw in enumerate([dict(compression="gzip", shuffle=True), dict(fletcher32=True), dict(compression="lzf")]):
        ok = _mutated(weights, _replace_bias(lambda f, n: f.create_dataset(n, data=bias, chunks=(2,), **kw)))
        (tmp_path / f"ok{i}.keras").write_bytes(_keras_zip(config, ok))
        np.testing.assert_array_equal(load_model(tmp_path / f"ok{i}.keras").layers[-1].get_weights()[1], bias)


def test_legacy_h5_with_links_out_of_the_file_is_refused(tmp_path):
    src = _source_h5(tmp_path)
    with h5py.File(tmp_path / "legacy.h5", "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        g = f.create_group("dense")
        g.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        g["dense/kernel:0"] = np.zeros((F, 2), "float32")
        g["dense/bias:0"] = h5py.ExternalLink(src, "x")
    with h5py.File(tmp_path / "legacy_model.h5", "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        f["model_weights"] = h5py.ExternalLink(src, "/")
    model = rnnstate.Sequential([rnnstate.Input((F,)), L.Dense(2)])
    with pytest.raises(FileFormatError, match="ExternalLink"):
        model.load_weights(tmp_path / "legacy.h5")
    with pytest.raises(FileFormatError, match="ExternalLink"):
        load_model(tmp_path / "legacy_model.h5")


# ---- the dry build can't be bypassed ---------------------------------------------------------------------
def _strip_initializers(o):
    if isinstance(o, dict):
        return {k: _strip_initializers(v) for k, v in o.items() if not k.endswith("_initializer")}
    if isinstance(o, list):
        return [_strip_initializers(v) for v in o]
    return o


def test_configs_without_initializer_keys_dry_build_and_load_exactly(tmp_path):
    """Default initializers (seeded at construction) work on the meta device: no fallback is needed."""
    inp = rnnstate.Input((T, F))
    x = L.Bidirectional(L.GRU(3, return_sequences=True))(inp)
    x = L.SimpleRNN(2, return_sequences=True)(x)
    model = rnnstate.Model(inp, L.Dense(2)(L.LSTM(U)(x)))
    rng = np.random.default_rng(1)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.weights])
    spec = _strip_initializers(json.loads(model.to_json()))
    assert "kernel_initializer" not in json.dumps(spec)
    tensors = {p: w.numpy() for p, w in rnnstate.saving._walk.native_entries(model)}
    (tmp_path / "m.safetensors").write_bytes(native.dumps(tensors, {"kind": "model", "config": json.dumps(spec)}))
    x = rng.standard_normal((2, T, F)).astype("float32")
    np.testing.assert_array_equal(load_model(tmp_path / "m.safetensors").predict(x), model.predict(x))
    assert model_from_json(json.dumps(spec), max_params=10_000) is not None


def _huge_dense_file(path, units):
    spec = json.loads(rnnstate.Sequential([rnnstate.Input((4,)), L.Dense(2)]).to_json())
    spec = _strip_initializers(spec)
    for layer in spec["config"]["layers"]:
        if layer["class_name"] == "Dense":
            layer["config"]["units"] = units
    data = native.dumps({}, {"kind": "model", "config": json.dumps(spec)})
    path.write_bytes(data)
    return spec, len(data)


_CAPPED = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from rnnstate.models import load_model, model_from_json
from rnnstate.saving import FileFormatError
for what in ("file", "json"):
    try:
        if what == "file":
            load_model(sys.argv[1])
        else:
            model_from_json(json.dumps(json.loads(open(sys.argv[3]).read())), max_params=10**6)
        print(what, "LOADED")
    except FileFormatError as e:
        print(what, "FileFormatError", str(e).replace("\n", " "))
    except BaseException as e:
        print(what, "OTHER", type(e).__name__, e)
# VmHWM: this process's own peak RSS (ru_maxrss would include the parent's at fork time on Linux)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("peak_kib", peak)
"""


def _run_capped(args, cap_bytes):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               MALLOC_ARENA_MAX="2")            # few malloc arenas: the address-space cap measures data, not arenas
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", _CAPPED, args[0], str(cap_bytes),
                           *args[1:]], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("units", [60_000_000, 10 ** 9])
def test_tiny_file_declaring_a_huge_model_fails_cleanly_under_a_memory_cap(tmp_path, units):
    """The issue's 472-byte file: refused from the config's parameter count, before anything is built,
    in a process whose address space is capped (a real build would die in the allocator)."""
    spec, n = _huge_dense_file(tmp_path / "big.safetensors", units)
    assert n < 1000
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = _run_capped([str(tmp_path / "big.safetensors"), str(tmp_path / "spec.json")], 3 << 30)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = dict(l.split(" ", 1) for l in out.stdout.splitlines() if " " in l)
    assert {"file", "json", "peak_kib"} <= set(lines), out.stdout[-2000:] + out.stderr[-2000:]
    assert lines["file"].startswith("FileFormatError") and f"{units * 5:,} parameters" in lines["file"]
    assert "big.safetensors" in lines["file"]
    assert lines["json"].startswith("FileFormatError") and "max_params" in lines["json"]
    assert int(lines["peak_kib"]) < 1_500_000           # import + meta build; the model would be >= 1.2 GB


def test_a_config_implying_more_parameters_than_its_tensors_is_refused(tmp_path):
    model = rnnstate.Sequential([rnnstate.Input((T, F)), L.LSTM(U), L.Dense(2)])
    model.save(tmp_path / "m.safetensors")
    meta, tensors = native.loads((tmp_path / "m.safetensors").read_bytes(), "m")
    spec = json.loads(meta["config"])
    spec["config"]["layers"][1]["config"]["units"] = 4000            # 4000*4*(4000+4+1): ~64M params
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "sha256")}
    meta["config"] = json.dumps(spec)
    (tmp_path / "bad.safetensors").write_bytes(native.dumps(dict(tensors), meta))
    with pytest.raises(FileFormatError, match=r"bad\.safetensors.*parameters"):
        load_model(tmp_path / "bad.safetensors")


# ---- compile / optimizer state and layer flags are validated as data -------------------------------------
def _compiled_file(tmp_path):
    rnnstate.utils.set_random_seed(0)
    m = rnnstate.Sequential([rnnstate.Input((T, F)), L.GRU(3), L.Dense(1)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    m.fit(rng.standard_normal((8, T, F)).astype("float32"), rng.standard_normal((8, 1)).astype("float32"),
          batch_size=4, epochs=1, verbose=0)
    m.save(tmp_path / "m.safetensors")
    meta, tensors = native.loads((tmp_path / "m.safetensors").read_bytes(), "m")
    return {k: v for k, v in meta.items() if k not in ("format", "format_version", "sha256")}, dict(tensors)


def _write(tmp_path, name, meta, tensors):
    (tmp_path / name).write_bytes(native.dumps(tensors, meta))
    return tmp_path / name


def _edit_entry(meta, fn):
    entry = json.loads(meta["compile_config"])
    fn(entry)
    return {**meta, "compile_config": json.dumps(entry)}


JUNK_COMPILE = {
    "lr_string": (lambda e: e["param_groups"][0].__setitem__("lr", "abc"), "param_groups[0].lr"),
    "lr_negative": (lambda e: e["param_groups"][0].__setitem__("lr", -1.0), "param_groups[0].lr"),
    "group_not_dict": (lambda e: e.__setitem__("param_groups", [5]), "param_groups"),
    "groups_count": (lambda e: e.__setitem__("param_groups", e["param_groups"] * 2), "parameter groups"),
    "group_unknown_key": (lambda e: e["param_groups"][0].__setitem__("evil", 1), "param_groups[0].evil"),
    "betas_short": (lambda e: e["param_groups"][0].__setitem__("betas", [0.9]), "param_groups[0].betas"),
    "opt_lr_string": (lambda e: e["optimizer"]["config"].__setitem__("learning_rate", "abc"),
                      "optimizer.config.learning_rate"),
    "opt_unknown_arg": (lambda e: e["optimizer"]["config"].__setitem__("evil", 1), "optimizer.config"),
    "opt_flag_string": (lambda e: e["optimizer"]["config"].__setitem__("amsgrad", "no"),
                        "optimizer.config.amsgrad"),
    "opt_class": (lambda e: e["optimizer"].__setitem__("class_name", "os.system"), "optimizer.class_name"),
    "iterations": (lambda e: e.__setitem__("iterations", -3), "iterations"),
    "loss_object": (lambda e: e.__setitem__("loss", {"class_name": 5}), "loss"),
    "loss_weights": (lambda e: e.__setitem__("loss_weights", "abc"), "loss_weights"),
}


@pytest.mark.parametrize("case", sorted(JUNK_COMPILE))
def test_junk_compile_config_is_refused_at_load(tmp_path, case):
    meta, tensors = _compiled_file(tmp_path)
    edit, part = JUNK_COMPILE[case]
    p = _write(tmp_path, "bad.safetensors", _edit_entry(meta, edit), tensors)
    with pytest.raises(FileFormatError, match="bad.safetensors") as e:
        load_model(p)
    assert part in str(e.value)
    assert not getattr(load_model(p, compile=False), "compiled", False)     # the weights themselves are fine


@pytest.mark.parametrize("mutate, text", [
    (lambda a: np.zeros(1000, np.float32), "expected a scalar"),
    (lambda a: np.full_like(a, np.nan), "finite"),
    (lambda a: a - 10.5, ">= 0"),
])
def test_junk_optimizer_tensors_are_refused_at_load(tmp_path, mutate, text):
    meta, tensors = _compiled_file(tmp_path)
    name = next(k for k in tensors if k.endswith("/step"))
    tensors[name] = mutate(np.asarray(tensors[name]))
    with pytest.raises(FileFormatError, match=text) as e:
        load_model(_write(tmp_path, "bad.safetensors", meta, tensors))
    assert name in str(e.value)


def test_unknown_optimizer_state_name_is_refused(tmp_path):
    meta, tensors = _compiled_file(tmp_path)
    name = next(k for k in tensors if k.endswith("/exp_avg"))
    tensors[name.replace("exp_avg", "evil")] = tensors.pop(name)
    with pytest.raises(FileFormatError, match="state names"):
        load_model(_write(tmp_path, "bad.safetensors", meta, tensors))


def _native_with_config(tmp_path, model, edit):
    meta_tensors = {p: w.numpy() for p, w in rnnstate.saving._walk.native_entries(model)}
    spec = json.loads(model.to_json())
    edit(spec["config"]["layers"])
    return _write(tmp_path, "bad.safetensors", {"kind": "model", "config": json.dumps(spec)}, meta_tensors)


@pytest.mark.parametrize("edit, text", [
    (lambda ls: ls[1]["config"].__setitem__("stateful", "no"), "`stateful` must be true or false"),
    (lambda ls: ls[1]["config"].__setitem__("return_sequences", 1), "`return_sequences` must be true or false"),
    (lambda ls: ls[0]["config"].__setitem__("batch_shape", [None, -3, 5]), "`batch_shape` must be a list of positive"),
    (lambda ls: ls[0]["config"].__setitem__("batch_shape", [None, 0, F]), "`batch_shape` must be a list of positive"),
])
def test_wrongly_typed_layer_config_values_are_refused(tmp_path, edit, text):
    model = rnnstate.Sequential([rnnstate.Input((T, F)), L.LSTM(U), L.Dense(2)])
    p = _native_with_config(tmp_path, model, edit)
    with pytest.raises(FileFormatError, match=text) as e:
        load_model(p)
    assert "bad.safetensors" in str(e.value) and "layer" in str(e.value)
    spec = json.loads(model.to_json())
    edit(spec["config"]["layers"])
    with pytest.raises(FileFormatError, match=text):
        model_from_json(json.dumps(spec))


def test_stateful_batch_mismatch_is_refused_before_any_weight_is_assigned(tmp_path):
    def make(batch):
        return rnnstate.Sequential([rnnstate.Input((T, F), batch_size=batch), L.LSTM(U, stateful=True),
                                    L.Dense(2)])
    src = make(3)
    rng = np.random.default_rng(0)
    src.set_weights([rng.standard_normal(w.shape).astype("float32") for w in src.weights])
    src.predict(rng.standard_normal((3, T, F)).astype("float32"), batch_size=3)
    src.save(tmp_path / "s.safetensors", include_states=True)
    dst = make(2)
    before = [w.copy() for w in dst.get_weights()]
    with pytest.raises(FileFormatError, match="batch size 3.*batch size 2"):
        dst.load_weights(tmp_path / "s.safetensors")
    for a, b in zip(before, dst.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert load_model(tmp_path / "s.safetensors").layers[0]._states[0].shape == (3, U)
