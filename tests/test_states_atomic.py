"""State operations are atomic and state files are checked: a rejected `set_states` / `StateStore.step` /
`set` / `load` changes nothing; stream keys are typed (1, True and "1" are three streams); a StateStore file
whose keys don't match its rows, or that is malformed in any way, is refused with FileFormatError; stale temp
files of a save target are removed on its next save (and nothing else is)."""
import json
import os
import time

import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L
from rnnstate.saving import FileFormatError
from rnnstate.states import StateStore

from .conftest import F, T, U


def _model():
    inp = rnnstate.Input(shape=(None, F))
    h = L.LSTM(U, return_sequences=True)(inp)
    return rnnstate.Model(inp, L.Dense(2)(L.GRU(3, return_sequences=True)(h)))


def _snapshot(store):
    return store.keys(), {k: {n: [t.clone() for t in st] for n, st in store.get(k).items()} for k in store.keys()}


def _same_snapshot(a, b):
    assert a[0] == b[0]
    for k in a[1]:
        for n in a[1][k]:
            for x, y in zip(a[1][k][n], b[1][k][n]):
                assert torch.equal(x, y)


def _filled(rng, max_streams=None, on_evict=None, model=None):
    store = StateStore(model or _model(), max_streams=max_streams, on_evict=on_evict)
    store.step(["a", "b", 7], rng.standard_normal((3, F)).astype("float32"))
    store.step(["b"], rng.standard_normal((1, F)).astype("float32"))
    return store


# ---- set_states -----------------------------------------------------------------------------------------
def test_rejected_set_states_changes_no_layer(rng):
    inp = rnnstate.Input((T, F), batch_size=2)
    a = L.LSTM(U, stateful=True, return_sequences=True, name="first")
    b = L.GRU(3, stateful=True, name="second")
    model = rnnstate.Model(inp, b(a(inp)))
    model.predict(rng.standard_normal((2, T, F)).astype("float32"), batch_size=2)
    before = {k: [t.clone() for t in v] for k, v in model.get_states().items()}
    good_first = [np.ones((2, U), "float32"), np.ones((2, U), "float32")]
    for bad_second in ([np.ones((2, 4), "float32")], [np.ones((5, 3), "float32")], "junk"):
        with pytest.raises((ValueError, TypeError), match="second"):
            model.set_states({"first": good_first, "second": bad_second})
        after = model.get_states()
        for k in before:
            for x, y in zip(before[k], after[k]):
                assert torch.equal(x, y), f"layer {k} changed by a rejected set_states"
    bidi = L.Bidirectional(L.LSTM(U, stateful=True))
    bidi(torch.zeros(2, T, F))
    fw = [t.clone() for t in bidi.get_states()["forward"]]
    with pytest.raises(ValueError):
        bidi.set_states({"forward": good_first, "backward": [np.ones((2, U + 1), "float32")] * 2})
    assert all(torch.equal(x, y) for x, y in zip(fw, bidi.get_states()["forward"]))


# ---- StateStore.step / set -------------------------------------------------------------------------------
def test_failed_step_evicts_admits_and_advances_nothing(rng):
    evicted = []
    store = _filled(rng, max_streams=3, on_evict=lambda k, s: evicted.append(k))
    before = _snapshot(store)
    with pytest.raises(ValueError):                                       # wrong feature size: F + 1
        store.step(["new1", "a"], rng.standard_normal((2, F + 1)).astype("float32"))
    _same_snapshot(before, _snapshot(store))
    assert evicted == [] and "new1" not in store

    def boom(k, s):
        raise RuntimeError("the eviction sink is down")
    store.on_evict = boom
    with pytest.raises(RuntimeError, match="sink"):
        store.step(["new2"], rng.standard_normal((1, F)).astype("float32"))
    _same_snapshot(before, _snapshot(store))


def test_empty_or_malformed_keys_are_refused_cleanly(rng):
    store = _filled(rng)
    before = _snapshot(store)
    with pytest.raises(ValueError, match="`keys` is empty"):
        store.step([], np.zeros((0, F), "float32"))
    with pytest.raises(ValueError, match="`keys` must be a list"):
        store.step("ab", np.zeros((2, F), "float32"))
    with pytest.raises(ValueError, match="stream keys must be str, int"):
        store.step([[1]], np.zeros((1, F), "float32"))
    _same_snapshot(before, _snapshot(store))


def test_keys_are_typed(rng):
    store = StateStore(_model())
    x = rng.standard_normal((3, F)).astype("float32")
    store.step([1, True, "1"], x)
    assert store.keys() == [1, True, "1"] and len(store) == 3
    assert [type(k) for k in store.keys()] == [int, bool, str]
    h_int, h_bool = store.get(1), store.get(True)
    name = next(iter(h_int))
    assert not torch.equal(h_int[name][0], h_bool[name][0])              # different inputs, different states
    store.step([np.int64(1)], x[:1])                                       # numpy ints are ints
    assert store.keys() == [True, "1", 1] and len(store) == 3
    store.set((1, True), store.get(True))
    assert (1, True) in store and (True, 1) not in store and (1, 1) not in store
    store.drop(True)
    assert 1 in store and True not in store


def test_rejected_set_changes_nothing(rng):
    evicted = []
    store = _filled(rng, max_streams=3, on_evict=lambda k, s: evicted.append(k))
    before = _snapshot(store)
    good = store.get("a")
    name = next(iter(good))
    bad = dict(good)
    bad[name] = type(good[name])(*[torch.zeros(1, U + 2) for _ in good[name]])
    with pytest.raises(ValueError):
        store.set("new", bad)
    _same_snapshot(before, _snapshot(store))
    assert evicted == []
    store.set("new", good)                                                # a valid set evicts the LRU ("a")
    assert evicted == ["a"] and store.keys() == [7, "b", "new"]


# ---- StateStore files ------------------------------------------------------------------------------------
def _rewrite(path, out, meta_edit=None, tensor_edit=None):
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(path))
    if meta_edit:
        meta_edit(meta)
    if tensor_edit:
        tensor_edit(tensors)
    save_file(tensors, str(out), metadata=meta)
    return out


def _keys_edit(fn):
    def edit(meta):
        meta["keys"] = json.dumps(fn(json.loads(meta["keys"])))
    return edit


BAD_FILES = {
    "more_keys_than_rows": (_keys_edit(lambda k: k + [["s", "x"], ["s", "y"]]), None, "one row per key"),
    "fewer_keys": (_keys_edit(lambda k: k[:1]), None, "one row per key"),
    "duplicate_keys": (_keys_edit(lambda k: [k[0]] * len(k)), None, "distinct"),
    "bad_key_tag": (_keys_edit(lambda k: [["z", 1]] + k[1:]), None, "keys`[0]"),
    "bool_as_int": (_keys_edit(lambda k: [["i", True]] + k[1:]), None, "keys`[0]"),
    "deep_key": (_keys_edit(lambda k: [json.loads('["t", ' * 50 + "[]" + "]" * 50)] + k[1:]), None, "keys`[0]"),
    "keys_not_json": (lambda m: m.__setitem__("keys", "[[[["), None, "not valid JSON"),
    "keys_deep_json": (lambda m: m.__setitem__("keys", "[" * 100_000 + "]" * 100_000), None, "JSON"),
    "no_keys": (lambda m: m.pop("keys"), None, "`keys`"),
    "no_layers": (lambda m: m.pop("layers"), None, "`layers`"),
    "wrong_format": (lambda m: m.__setitem__("format", "other"), None, "not a StateStore file"),
    "extra_tensor": (None, lambda t: t.__setitem__("evil", torch.zeros(3, 2)), "tensors: expected exactly"),
    "nan": (None, lambda t: next(iter(t.values())).fill_(float("nan")), "finite"),
    "int_dtype": (None, lambda t: t.__setitem__(next(iter(t)), next(iter(t.values())).long()), "float dtype"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_store_files_are_refused_and_change_nothing(rng, tmp_path, case):
    model = _model()
    store = _filled(rng, model=model)
    store.save(tmp_path / "s.safetensors")
    meta_edit, tensor_edit, text = BAD_FILES[case]
    bad = _rewrite(tmp_path / "s.safetensors", tmp_path / "bad.safetensors", meta_edit, tensor_edit)
    target = _filled(np.random.default_rng(5), model=model)
    target.step(["only-here"], rng.standard_normal((1, F)).astype("float32"))
    before = _snapshot(target)
    with pytest.raises(FileFormatError, match="bad.safetensors") as e:
        target.load(bad)
    assert text in str(e.value)
    _same_snapshot(before, _snapshot(target))


def test_store_file_not_safetensors_is_refused(rng, tmp_path):
    store = _filled(rng)
    for name, data in (("empty", b""), ("junk", b"\x08\0\0\0\0\0\0\0{}junk!!"),
                       ("big", (1 << 60).to_bytes(8, "little"))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FileFormatError, match=name):
            store.load(tmp_path / name)
    assert store.keys() == ["a", 7, "b"]


def test_store_roundtrip_keeps_typed_keys(rng, tmp_path):
    model = _model()
    store = StateStore(model)
    store.step([1, True, "1", (2, "x")], rng.standard_normal((4, F)).astype("float32"))
    store.save(tmp_path / "s.safetensors")
    again = StateStore(model).load(tmp_path / "s.safetensors")
    assert again.keys() == [1, True, "1", (2, "x")]
    assert [type(k) for k in again.keys()] == [int, bool, str, tuple]


# ---- stale temp files ----------------------------------------------------------------------------------
def test_stale_temp_files_of_the_target_are_removed_on_next_save(rng, tmp_path):
    import subprocess
    import sys
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                                           # a pid that no longer runs
    model = rnnstate.Sequential([rnnstate.Input((T, F)), L.LSTM(U), L.Dense(2)])
    stale = [f".m.safetensors.{dead.pid}.0123456789ab.tmp",               # killed save, this version
             ".m.safetensors.0123456789ab.tmp"]                           # killed save, earlier versions
    survive = [f".m.safetensors.{os.getppid()}.0123456789ab.tmp",         # a live process may be writing it
               ".m.safetensors.0123456789ab.tmp.bak", "m.safetensors.tmp", ".m.safetensors.xyz.tmp",
               ".other.safetensors.0123456789ab.tmp", f".m.safetensors.{dead.pid}.0123456789abc.tmp",
               "notes.txt"]
    for name in stale + survive:
        (tmp_path / name).write_bytes(b"x" * 100)
    old = time.time() - 60
    os.utime(tmp_path / stale[1], (old, old))
    model.save(tmp_path / "m.safetensors")
    assert sorted(os.listdir(tmp_path)) == sorted(survive + ["m.safetensors"])
    # a StateStore save cleans its own target's leftovers the same way (and earlier versions' names)
    store = _filled(rng)
    for name in (f".s.safetensors.{dead.pid}.00112233aabb.tmp", "s.safetensors.ab_cd123.tmp"):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (old, old))
    store.save(tmp_path / "s.safetensors")
    assert sorted(os.listdir(tmp_path)) == sorted(survive + ["m.safetensors", "s.safetensors"])
