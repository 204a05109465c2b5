"""A compiled model saved to a native file comes back compiled, with its optimizer state: fit resumes
exactly where it stopped (oracle: the same model trained without the interruption)."""
import numpy as np
import pytest
import torch

import rnnstate
from rnnstate import layers as L
from rnnstate.models import load_model
from rnnstate.saving import FileFormatError, native

RNG = np.random.default_rng(0)
X = RNG.standard_normal((48, 5, 3)).astype("float32")
Y = RNG.standard_normal((48, 1)).astype("float32")


def _model(optimizer, loss="mse", metrics=("mae",)):
    rnnstate.utils.set_random_seed(0)
    m = rnnstate.Sequential([rnnstate.Input((5, 3)), L.GRU(4), L.Dense(1)])
    m.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    return m


@pytest.mark.parametrize("make_opt", [lambda: "adam", lambda: rnnstate.optimizers.SGD(0.05, momentum=0.9),
                                      lambda: rnnstate.optimizers.RMSprop(0.01)])
def test_fit_resumes_exactly_after_save_and_load(make_opt, tmp_path):
    straight = _model(make_opt())
    straight.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    first = _model(make_opt())
    first.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    first.optimizer.learning_rate = first.optimizer.learning_rate * 0.5        # as ReduceLROnPlateau would
    straight_lr = first.optimizer.learning_rate
    first.save(tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors")
    assert again.compiled and type(again.optimizer) is type(first.optimizer)
    assert again.optimizer.iterations == first.optimizer.iterations == 3
    assert again.optimizer.learning_rate == pytest.approx(straight_lr)
    assert again.metrics_names == first.metrics_names
    first.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    again.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    if make_opt() == "adam":       # and with the learning rate left alone, equal to training straight through
        other = _model("adam")
        other.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        other.save(tmp_path / "n.safetensors")
        resumed = load_model(tmp_path / "n.safetensors")
        resumed.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        for a, b in zip(straight.get_weights(), resumed.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_compile_false_and_non_data_configs_load_uncompiled(tmp_path):
    m = _model("adam")
    m.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    m.save(tmp_path / "m.safetensors")
    assert not getattr(load_model(tmp_path / "m.safetensors", compile=False), "compiled", False)
    f = _model("adam", loss=lambda y, p: ((y - p) ** 2).mean(-1))       # a function: not stored as data
    f.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    f.save(tmp_path / "f.safetensors")
    loaded = load_model(tmp_path / "f.safetensors")
    assert not getattr(loaded, "compiled", False)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), f.predict(X, verbose=0))
    w = _model("adam")
    w.load_weights(tmp_path / "m.safetensors")                          # optimizer entries are skipped
    np.testing.assert_array_equal(w.predict(X, verbose=0), m.predict(X, verbose=0))


def test_optimizer_state_of_the_wrong_shape_is_refused(tmp_path):
    m = _model("adam")
    m.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    m.save(tmp_path / "m.safetensors")
    meta, tensors = native.loads((tmp_path / "m.safetensors").read_bytes(), "m")
    tensors = dict(tensors)
    name = next(k for k in tensors if k.startswith("__optimizer__/") and k.endswith("exp_avg"))
    tensors[name] = np.zeros(tensors[name].shape[:-1] + (tensors[name].shape[-1] + 1,), np.float32)
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "sha256")}
    (tmp_path / "bad.safetensors").write_bytes(native.dumps(tensors, meta))
    with pytest.raises(FileFormatError, match="optimizer state .*shape"):
        load_model(tmp_path / "bad.safetensors")
    assert torch.is_tensor(next(load_model(tmp_path / "m.safetensors").parameters()))
