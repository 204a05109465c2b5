"""callbacks.TensorBoard: event files read back with tensorboard's EventAccumulator, against History."""
import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import rnnstate  # noqa: E402
from rnnstate import callbacks, layers  # noqa: E402


def _fit(tmp_path, **kw):
    rnnstate.utils.set_random_seed(0)
    model = rnnstate.Sequential([layers.Input((5, 3)), layers.LSTM(4), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = np.random.RandomState(0).randn(16, 5, 3).astype("float32")
    y = x.sum(axis=(1, 2))[:, None]
    tb = callbacks.TensorBoard(log_dir=tmp_path, **kw)
    assert tb.log_dir == str(tmp_path)
    hist = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0, callbacks=[tb])
    return model, hist


def _read(path):
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def _values(acc, tag):
    return [e.step for e in acc.Scalars(tag)], [e.value for e in acc.Scalars(tag)]


def test_epoch_scalars_match_history(tmp_path):
    model, hist = _fit(tmp_path)
    train, val = _read(tmp_path / "train"), _read(tmp_path / "validation")
    assert set(train.Tags()["scalars"]) == {"epoch_loss", "epoch_mae", "epoch_learning_rate"}
    assert set(val.Tags()["scalars"]) == {"epoch_loss", "epoch_mae", "evaluation_loss_vs_iterations",
                                          "evaluation_mae_vs_iterations"}
    # 12 training samples / batch 8 -> 2 optimizer steps per epoch
    steps, vals = _values(val, "evaluation_loss_vs_iterations")
    assert steps == [2, 4]
    np.testing.assert_allclose(vals, hist.history["val_loss"], rtol=1e-6)
    for name in ("loss", "mae"):
        steps, vals = _values(train, f"epoch_{name}")
        assert steps == [0, 1]
        np.testing.assert_allclose(vals, hist.history[name], rtol=1e-6)
        steps, vals = _values(val, f"epoch_{name}")
        assert steps == [0, 1]
        np.testing.assert_allclose(vals, hist.history[f"val_{name}"], rtol=1e-6)
    lr = model.optimizer.torch_optimizer.param_groups[0]["lr"] if hasattr(model.optimizer, "torch_optimizer") \
        else model.optimizer.param_groups[0]["lr"]
    np.testing.assert_allclose(_values(train, "epoch_learning_rate")[1], [lr, lr], rtol=1e-6)
    assert train.Tags()["histograms"] == []


def test_batch_scalars_and_histograms(tmp_path):
    model, hist = _fit(tmp_path, update_freq="batch", histogram_freq=1)
    train = _read(tmp_path / "train")
    # 12 training samples / batch 8 -> 2 batches per epoch, 4 global batches, steps from 1
    steps, vals = _values(train, "batch_loss")
    assert steps == [1, 2, 3, 4]
    assert all(np.isfinite(vals))
    # the last batch's running loss of an epoch is the epoch loss
    np.testing.assert_allclose([vals[1], vals[3]], hist.history["loss"], rtol=1e-6)
    paths = [w.path for w in model.weights]     # Keras layout: <cell>/kernel, <cell>/recurrent_kernel, ...
    assert len(set(paths)) == 5 and paths[-2].endswith("/kernel")
    assert set(train.Tags()["histograms"]) == {p + "/histogram" for p in paths}
    kernel = train.Histograms(paths[-2] + "/histogram")
    assert [e.step for e in kernel] == [0, 1]
    w = model.layers[-1].get_weights()[0]     # after epoch 1: the last histogram's sum and count
    np.testing.assert_allclose(kernel[-1].histogram_value.sum, w.sum(), rtol=1e-5)
    assert kernel[-1].histogram_value.num == w.size


def test_update_freq_int_and_refusals(tmp_path):
    _fit(tmp_path, update_freq=3)
    assert _values(_read(tmp_path / "train"), "batch_loss")[0] == [3]
    with pytest.raises(ValueError, match="profile_batch"):
        callbacks.TensorBoard(profile_batch=2)
    with pytest.raises(ValueError, match="update_freq"):
        callbacks.TensorBoard(update_freq="step")


def test_missing_tensorboard_message(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"rnnstate\[tensorboard\]"):
        callbacks.TensorBoard()


def test_only_rank0_writes(tmp_path, monkeypatch):
    from rnnstate.training import distributed
    monkeypatch.setattr(distributed, "is_chief", lambda: False)
    _fit(tmp_path, update_freq="batch", histogram_freq=1)
    assert not any(tmp_path.iterdir())
