"""Fuzzing model files, configs and state-store files/operations (hypothesis; profiles in conftest.py:
"ci" by default, `make fuzz` for many more examples).

Every case asserts that a load either succeeds or raises FileFormatError naming the file ("cannot load
'<path>'"), never another exception, never a crash; that a failed load changes nothing; and, for the cases
that run h5py's C parser or build models from crafted configs, that they run in a child process whose
address space is capped (RLIMIT_AS) and whose peak memory over the whole run stays within a stated bound.
"""
import functools
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

import rnnstate
from rnnstate import layers as L
from rnnstate.models import load_model, model_from_json
from rnnstate.saving import FileFormatError, native
from rnnstate.states import StateStore

F, T, U = 3, 4, 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD_CAP_BYTES = 3 << 30          # address-space cap of the child process (torch itself maps ~1-2 GiB)
CHILD_PEAK_GROWTH_KIB = 300_000    # peak RSS may grow at most this much over the whole fuzz run


def _examples(scale=1.0):
    return max(3, int(settings().max_examples * scale))


def _model():
    inp = rnnstate.Input((T, F), name="x")
    h = L.LSTM(U, return_sequences=True)(inp)
    y = L.Dense(2)(L.GRU(3)(h))
    m = rnnstate.Model(inp, y)
    rng = np.random.default_rng(0)
    m.set_weights([rng.standard_normal(w.shape).astype("float32") for w in m.weights])
    return m


def _assert_clean(e, path):
    assert isinstance(e, FileFormatError), f"{type(e).__name__}: {e}"
    assert str(e).startswith(f"cannot load '{os.fspath(path)}'"), str(e)


# ---- mutations of JSON ---------------------------------------------------------------------------------
_INTERESTING = [0, -1, -3, 1, 2, 1 << 31, 10 ** 9, 2 ** 40, 2 ** 63, -(2 ** 63), 1e308, 0.5, True, False, None,
                "", "zeros", "glorot_uniform", "orthogonal", "relu", "Lambda", "LSTM", "Dense", "__keras_tensor__",
                "no", [], {}, [None, -3, 5], [None, 0], {"class_name": "Lambda", "config": {}}]

_json_leaf = (st.none() | st.booleans() | st.integers(-(2 ** 64), 2 ** 64) | st.floats(allow_nan=True)
              | st.text(max_size=6) | st.sampled_from(_INTERESTING))
_json_value = st.recursive(_json_leaf, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)


def _slots(o, out):
    if isinstance(o, dict):
        for k in list(o):
            out.append((o, k))
            _slots(o[k], out)
    elif isinstance(o, list):
        for i in range(len(o)):
            out.append((o, i))
            _slots(o[i], out)
    return out


@st.composite
def mutated_json(draw, base):
    """`base` (a JSON-able structure) with 1-3 random edits: replace a value, delete a key, or duplicate an
    entry somewhere in the tree."""
    obj = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(obj, [])
        if not slots:
            break
        parent, key = slots[draw(st.integers(0, len(slots) - 1))]
        op = draw(st.sampled_from(["replace", "replace", "delete", "dup"]))
        if op == "delete":
            del parent[key]
        elif op == "dup" and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        else:                           # a copy: drawn values may be shared objects (_INTERESTING's lists)
            parent[key] = json.loads(json.dumps(draw(_json_value)))
    return obj


def _spec():
    return json.loads(_model().to_json())


SPEC = _spec()


# ---- native .safetensors (pure Python parsing: in-process) ---------------------------------------------
@functools.lru_cache(maxsize=None)
def _native_bytes():
    m = _model()
    tensors = {p: w.numpy() for p, w in rnnstate.saving._walk.native_entries(m)}
    return native.dumps(tensors, {"kind": "model", "config": m.to_json()})


@given(data=st.data())
@settings(max_examples=_examples())
def test_fuzz_native_bytes(tmp_path_factory, data):
    """Random byte flips, truncations and insertions anywhere in a native file."""
    good = bytearray(_native_bytes())
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "header"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(good) - 1))
            good[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        good = good[:data.draw(st.integers(0, len(good) - 1))]
    elif kind == "insert":
        i = data.draw(st.integers(0, len(good)))
        good[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    else:                                       # a flip inside the JSON header, where the structure is
        n = int.from_bytes(good[:8], "little")
        i = data.draw(st.integers(8, 8 + n - 1))
        good[i] = data.draw(st.sampled_from(b'{}[]":,0123456789-eE.tfn '))
    path = tmp_path_factory.mktemp("n") / "m.safetensors"
    path.write_bytes(bytes(good))
    try:
        load_model(path)
    except Exception as e:              # noqa: BLE001 - the assertion is about the kind
        _assert_clean(e, path)



_header_entry = st.fixed_dictionaries({}, optional={
    "dtype": st.sampled_from(["F32", "F16", "F64", "I64", "BOOL", "U8", "X", 5, None]),
    "shape": st.lists(st.integers(-2, 2 ** 40), max_size=4) | _json_value,
    "data_offsets": st.lists(st.integers(-5, 2 ** 50), min_size=0, max_size=3) | _json_value,
})


@given(entries=st.dictionaries(st.text(max_size=30) | st.sampled_from(["layers/dense/kernel", "__states__/x/0",
                                                                        "__optimizer__/0/step"]),
                               _header_entry | _json_value, max_size=4),
       meta_edit=st.dictionaries(st.sampled_from(["format", "format_version", "kind", "config", "sha256",
                                                  "compile_config", "states"]), st.text(max_size=20), max_size=3),
       body=st.binary(max_size=64))
@settings(max_examples=_examples())
def test_fuzz_native_headers(tmp_path_factory, entries, meta_edit, body):
    """Crafted safetensors headers: any tensor entries, any metadata values, any body."""
    meta = {"format": "rnnstate", "format_version": "1", "kind": "model", "config": json.dumps(SPEC)}
    meta.update(meta_edit)
    header = json.dumps({"__metadata__": meta, **entries}).encode()
    path = tmp_path_factory.mktemp("h") / "m.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + body)
    target = _model()
    before = [w.copy() for w in target.get_weights()]
    for op in (lambda: load_model(path), lambda: target.load_weights(path)):
        try:
            op()
        except Exception as e:          # noqa: BLE001
            _assert_clean(e, path)
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)


@given(data=st.data())
@settings(max_examples=_examples())
def test_fuzz_native_compile_config(tmp_path_factory, data):
    """Mutated compile configs and optimizer tensors of a compiled model's file: load or a clean refusal."""
    base, tensors = _compiled()
    entry = data.draw(mutated_json(json.loads(base["compile_config"])))
    tensors = dict(tensors)
    if data.draw(st.booleans()):
        name = data.draw(st.sampled_from(sorted(k for k in tensors if k.startswith("__optimizer__/"))))
        shape = data.draw(st.sampled_from([(), (1,), (1000,), tensors[name].shape, (2, 2)]))
        fill = data.draw(st.sampled_from([0.0, -1.0, 0.5, float("nan"), float("inf"), 1e30]))
        tensors[name] = np.full(shape, fill, np.float32)
    path = tmp_path_factory.mktemp("c") / "m.safetensors"
    path.write_bytes(native.dumps(tensors, {**base, "compile_config": json.dumps(entry)}))
    try:
        load_model(path)
    except Exception as e:              # noqa: BLE001
        _assert_clean(e, path)


@functools.lru_cache(maxsize=None)
def _compiled():
    m = rnnstate.Sequential([rnnstate.Input((T, F)), L.GRU(3), L.Dense(1)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    m.fit(rng.standard_normal((4, T, F)).astype("float32"), rng.standard_normal((4, 1)).astype("float32"),
          batch_size=2, epochs=1, verbose=0)
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"rnnstate_fuzz_{os.getpid()}.safetensors")
    m.save(path)
    meta, tensors = native.loads(open(path, "rb").read(), path)
    os.remove(path)
    return {k: v for k, v in meta.items() if k not in ("format", "format_version", "sha256")}, dict(tensors)



# ---- configs and HDF5 files: in a memory-capped child process -------------------------------------------
def _child_run(func, tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               MALLOC_ARENA_MAX="2")            # few malloc arenas: the address-space cap measures data, not arenas
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({CHILD_CAP_BYTES}, {CHILD_CAP_BYTES}))\n"
            f"import tests.conftest, tests.test_fuzz_files as m\n"
            f"def hwm():  # this process's own peak RSS (ru_maxrss would include the parent's at fork time)\n"
            f"    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
            f"start = hwm()\n"
            f"m.{func}(*sys.argv[1:])\n"
            f"print('growth_kib', hwm() - start)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path), *map(str, args)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"child died or failed (rc {out.returncode}):\n{out.stderr[-4000:]}"
    growth = int(out.stdout.strip().splitlines()[-1].split()[1])
    assert growth < CHILD_PEAK_GROWTH_KIB, f"peak memory grew by {growth} KiB"
    return growth


def child_configs(workdir):
    """Mutated model configs through model_from_json (max_params cap) and through native files."""
    import pathlib
    workdir = pathlib.Path(workdir)
    tensors = {p: w.numpy() for p, w in rnnstate.saving._walk.native_entries(_model())}

    @given(spec=mutated_json(SPEC))
    @settings(max_examples=_examples())
    def run(spec):
        text = json.dumps(spec)
        try:
            model_from_json(text, max_params=10 ** 6)
        except Exception as e:          # noqa: BLE001
            _assert_clean(e, "<json string>")
        path = workdir / "m.safetensors"
        path.write_bytes(native.dumps(tensors, {"kind": "model", "config": text}))
        try:
            load_model(path)
        except Exception as e:          # noqa: BLE001
            _assert_clean(e, path)

    run()


_H5_MUTATIONS = ["external", "virtual", "soft_link", "external_link", "filter", "dtype", "shape", "compound",
                 "attr_names", "scalar", "chunked", "compact", "delete", "group_for_dataset", "flip"]


def _keras_parts():
    m = _model()
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"rnnstate_fuzz_{os.getpid()}.keras")
    m.save(path)
    with zipfile.ZipFile(path) as zf:
        parts = zf.read("config.json"), zf.read("model.weights.h5")
    os.remove(path)
    return parts


def child_keras(workdir):
    """Crafted .keras archives: HDF5 structures (external storage, virtual datasets, links, filters,
    dtypes, shapes, attributes), mutated config.json, byte flips inside model.weights.h5, zip oddities."""
    import pathlib

    import h5py
    workdir = pathlib.Path(workdir)
    config, weights = _keras_parts()
    secret = workdir / "secret.bin"
    secret.write_bytes(b"\x01" * 4096)
    src = workdir / "src.h5"
    with h5py.File(src, "w") as g:
        g["x"] = np.ones((4096,), "float32")
    with h5py.File(io.BytesIO(weights), "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)

    def h5_mutate(data, f):
        name = data.draw(st.sampled_from(names))
        ds = f[name]
        shape, kind = ds.shape, data.draw(st.sampled_from(_H5_MUTATIONS))
        n = int(np.prod(shape)) if shape else 1
        if kind in ("flip",):
            return kind
        del f[name]
        if kind == "external":
            f.create_dataset(name, shape, "float32", external=[(str(secret), 0, 4 * n)])
        elif kind == "virtual":
            layout = h5py.VirtualLayout((n,), "float32")
            source = str(src) if data.draw(st.booleans()) else "/nonexistent/nowhere.h5"
            layout[:] = h5py.VirtualSource(source, "x", shape=(4096,))[:n]
            f.create_virtual_dataset(name, layout, fillvalue=0)
        elif kind == "soft_link":
            f[name] = h5py.SoftLink(data.draw(st.sampled_from(["/", "/layers", "/nowhere", "/" + names[0]])))
        elif kind == "external_link":
            f[name] = h5py.ExternalLink(str(src), "x")
        elif kind == "filter":
            f.create_dataset(name, data=np.zeros(shape, "float32"), chunks=True if shape else None,
                             scaleoffset=2 if shape else None)
        elif kind == "dtype":
            dt = data.draw(st.sampled_from(["int8", "uint64", "float16", "float64", "S4", "bool", "complex64"]))
            f.create_dataset(name, data=np.zeros(shape, dt))
            return f"dtype:{dt}"
        elif kind == "shape":
            new = tuple(data.draw(st.lists(st.integers(0, 7), max_size=3)))
            f.create_dataset(name, data=np.zeros(new, "float32"))
        elif kind == "compound":
            f.create_dataset(name, data=np.zeros(shape, [("a", "f4"), ("b", "i4")]))
        elif kind == "attr_names":
            f.create_dataset(name, data=np.zeros(shape, "float32"))
            parent = f[name].parent
            parent.attrs["name"] = data.draw(st.sampled_from([b"lstm", "dense", b"\xff\xfe", "x" * 300, 5]))
        elif kind == "scalar":
            f.create_dataset(name, data=np.float32(1.0))
        elif kind == "chunked":
            f.create_dataset(name, data=np.zeros(shape, "float32"), chunks=True if shape else None,
                             compression="gzip" if shape else None)
        elif kind == "compact":
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.COMPACT)
            space = h5py.h5s.create_simple(shape) if shape else h5py.h5s.create(h5py.h5s.SCALAR)
            h5py.h5d.create(f.id, name.encode(), h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        elif kind == "group_for_dataset":
            f.create_group(name)
        return kind

    @given(data=st.data())
    @settings(max_examples=_examples())
    def run(data):
        cfg = config
        if data.draw(st.integers(0, 3)) == 0:
            cfg = json.dumps(data.draw(mutated_json(json.loads(config)))).encode()
        b = io.BytesIO(weights)
        with h5py.File(b, "a") as f:
            kind = h5_mutate(data, f)
        h5 = bytearray(b.getvalue())
        if kind == "flip":
            for _ in range(data.draw(st.integers(1, 6))):
                i = data.draw(st.integers(0, len(h5) - 1))
                h5[i] ^= data.draw(st.integers(1, 255))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=data.draw(st.sampled_from([zipfile.ZIP_STORED,
                                                                              zipfile.ZIP_DEFLATED]))) as zf:
            if data.draw(st.integers(0, 9)) > 0:
                zf.writestr("config.json", cfg)
            zf.writestr("model.weights.h5", bytes(h5))
            if data.draw(st.booleans()):
                zf.writestr(data.draw(st.sampled_from(["metadata.json", "../evil", "model.weights.npz"])),
                            data.draw(st.binary(max_size=20)))
        path = workdir / "m.keras"
        path.write_bytes(buf.getvalue())
        (workdir / "w.weights.h5").write_bytes(bytes(h5))
        try:
            load_model(path)
        except Exception as e:          # noqa: BLE001
            _assert_clean(e, path)
        target = _model()
        before = [w.copy() for w in target.get_weights()]
        try:
            target.load_weights(workdir / "w.weights.h5")
        except Exception as e:          # noqa: BLE001
            _assert_clean(e, workdir / "w.weights.h5")
            for x, y in zip(before, target.get_weights()):
                np.testing.assert_array_equal(x, y)
        else:
            assert kind in ("chunked", "compact", "attr_names", "flip", "dtype:float16", "dtype:float64"), kind

    run()


def child_all(workdir):
    child_configs(workdir)
    child_keras(workdir)


def test_fuzz_configs_keras_and_h5_files_in_capped_child(tmp_path):
    """One child process (one import of torch) runs both the config and the HDF5 / .keras fuzzers."""
    _child_run("child_all", tmp_path)


# ---- state stores: files and operations (in-process) ---------------------------------------------------
def _store_model():
    inp = rnnstate.Input(shape=(None, F))
    return rnnstate.Model(inp, L.Dense(2)(L.GRU(3, return_sequences=True)(L.LSTM(U, return_sequences=True)(inp))))


STORE_MODEL = _store_model()


def _snapshot(store):
    return store.keys(), {k: [t.clone() for s in store.get(k).values() for t in s] for k in store.keys()}


def _same(a, b):
    assert a[0] == b[0]
    for k in a[1]:
        assert all(torch.equal(x, y) for x, y in zip(a[1][k], b[1][k]))


_keys = st.one_of(st.text(max_size=3), st.integers(-3, 3), st.booleans(),
                  st.tuples(st.integers(0, 2), st.booleans()), st.just(1.5), st.just([1]), st.none())


@given(meta=mutated_json({"format": "rnnstate.StateStore/1", "keys": [["s", "a"], ["i", 1], ["b", True]],
                          "layers": "LAYOUT"}),
       rows=st.integers(0, 5), bad_tensor=st.sampled_from([None, "nan", "shape", "dtype", "extra", "missing"]))
@settings(max_examples=_examples(2))
def test_fuzz_store_files(tmp_path_factory, meta, rows, bad_tensor):
    from safetensors.torch import save_file
    store = StateStore(STORE_MODEL)
    store.step(["keep", 9], np.ones((2, F), "float32"))
    before = _snapshot(store)
    layout = store._layout()
    md = {k: (json.dumps(layout) if v == "LAYOUT" else v if isinstance(v, str) else json.dumps(v))
          for k, v in meta.items()} if isinstance(meta, dict) else {"format": json.dumps(meta)}
    tensors = {f"{name}/{field}": torch.zeros(rows, n) for name, fields, sizes in layout
               for field, n in zip(fields, sizes)}
    first = next(iter(tensors))
    if bad_tensor == "nan":
        tensors[first] = torch.full_like(tensors[first], float("nan"))
    elif bad_tensor == "shape":
        tensors[first] = torch.zeros(rows, 1, 2)
    elif bad_tensor == "dtype":
        tensors[first] = tensors[first].long()
    elif bad_tensor == "extra":
        tensors["x/y"] = torch.zeros(1)
    elif bad_tensor == "missing":
        del tensors[first]
    path = tmp_path_factory.mktemp("s") / "s.safetensors"
    save_file(tensors, str(path), metadata=md)
    try:
        store.load(path)
    except Exception as e:              # noqa: BLE001
        _assert_clean(e, path)
        _same(before, _snapshot(store))
    else:                               # loaded: one row per key, keys distinct and typed as saved
        assert len(store) == rows == len(json.loads(md["keys"]))


@st.composite
def _ops(draw):
    ops = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["step", "step", "step", "set", "drop", "bad_step", "empty"]))
        keys = draw(st.lists(_keys, min_size=1, max_size=4))
        ops.append((kind, keys, draw(st.integers(0, 2 ** 31))))
    return ops


@given(ops=_ops(), max_streams=st.sampled_from([None, 2, 3]))
@settings(max_examples=_examples(2))
def test_fuzz_store_operations(ops, max_streams):
    """Random steps / sets / drops with random key types and bad inputs: a successful step's outputs equal
    each stream's own run from its own state (oracle: the Streamer with explicit states, key by key); a
    failed operation changes nothing; keys of different types never share a state."""
    store = StateStore(STORE_MODEL, max_streams=max_streams)
    streamer = rnnstate.states.Streamer(STORE_MODEL)
    for kind, keys, seed in ops:
        rng = np.random.default_rng(seed)
        before = _snapshot(store)
        x = rng.standard_normal((len(keys), F)).astype("float32")
        try:
            if kind == "step":
                expected = {}
                for i, k in enumerate(keys):
                    try:
                        start = store.get(k) if k in store else None
                    except (ValueError, TypeError):
                        start = None
                    y1, _ = streamer.step(x[i:i + 1], start)
                    expected[i] = y1
                y = store.step(keys, x)
                for i in expected:
                    np.testing.assert_allclose(y[i].detach().numpy(), expected[i][0].detach().numpy(), atol=1e-5)
            elif kind == "bad_step":
                store.step(keys, rng.standard_normal((len(keys), F + 1)).astype("float32"))
                raise AssertionError("a wrong feature size was accepted")
            elif kind == "empty":
                store.step([], np.zeros((0, F), "float32"))
                raise AssertionError("an empty step was accepted")
            elif kind == "set":
                store.set(keys[0], {name: [torch.full((1, n), float(seed % 7)) for n in l.state_size]
                                    for name, l in ((l.name, l) for l in streamer.layers)})
            else:
                store.drop(keys[0])
        except AssertionError:
            raise
        except Exception as e:          # noqa: BLE001
            assert isinstance(e, (ValueError, TypeError, KeyError)), f"{type(e).__name__}: {e}"
            assert "StateStore" in str(e) or "LSTM" in str(e) or "GRU" in str(e) or "input" in str(e).lower() \
                or "feature" in str(e).lower() or "shape" in str(e).lower(), str(e)
            _same(before, _snapshot(store))
        typed = [(type(k), k) for k in store.keys()]
        assert len(set(typed)) == len(typed)
        if max_streams is not None:
            assert len(store) <= max_streams
