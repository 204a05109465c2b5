import csv
import os

import numpy as np
import pytest
import torch

from _training_fakes import DenseModel
from rnnstate.training import (Callback, CSVLogger, EarlyStopping, LambdaCallback, ModelCheckpoint, ReduceLROnPlateau,
                               TerminateOnNaN, optimizers)

RNG = np.random.default_rng(5)
X = RNG.normal(size=(32, 3)).astype("float32")
Y = X @ np.array([[1.0], [-2.0], [0.5]], "float32")


def _model(lr=0.05):
    torch.manual_seed(0)
    m = DenseModel(n_in=3)
    m.compile(optimizers.SGD(learning_rate=lr), "mse", metrics=["mae"])
    return m


def _scripted(key, values):
    """A callback (placed before the one under test) that overwrites logs[key] per epoch."""
    return LambdaCallback(on_epoch_end=lambda epoch, logs: logs.__setitem__(key, values[epoch]))


def _fit(m, callbacks, epochs=10, **kw):
    return m.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks, **kw)


def test_early_stopping_stops_and_restores_best_weights():
    m = _model()
    weights = []
    keep = LambdaCallback(on_epoch_end=lambda e, logs: weights.append({k: v.clone()
                                                                       for k, v in m.state_dict().items()}))
    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    h = _fit(m, [_scripted("val_loss", [1.0, 0.5, 0.6, 0.7, 0.4, 0.3]), keep, es])
    assert len(h.history["loss"]) == 4 and es.stopped_epoch == 3 and es.best_epoch == 1
    assert h.history["val_loss"] == [1.0, 0.5, 0.6, 0.7]
    for k, v in m.state_dict().items():
        assert torch.equal(v, weights[1][k])   # best epoch, not the last one
    assert not torch.equal(weights[3]["dense.weight"], weights[1]["dense.weight"])


def test_early_stopping_modes_baseline_and_start_epoch():
    m = _model()
    es = EarlyStopping(monitor="mae", mode="auto", patience=0, min_delta=0.2)
    h = _fit(m, [_scripted("mae", [1.0, 0.9, 0.5]), es], epochs=3)   # 0.9 is not better by > 0.2: stop at once
    assert len(h.history["loss"]) == 2
    es = EarlyStopping(monitor="val_acc", patience=1)
    h = _fit(m, [_scripted("val_acc", [0.1, 0.2, 0.3, 0.3, 0.3]), es], epochs=5)   # 'acc' -> maximize
    assert len(h.history["loss"]) == 4
    es = EarlyStopping(monitor="val_loss", patience=1, baseline=0.5)
    h = _fit(m, [_scripted("val_loss", [0.9, 0.95, 0.97, 0.99]), es], epochs=4)   # never beat the baseline
    assert len(h.history["loss"]) == 2
    es = EarlyStopping(monitor="val_loss", patience=0, start_from_epoch=3)
    h = _fit(m, [_scripted("val_loss", [1, 2, 3, 4, 5, 6]), es], epochs=6)
    assert len(h.history["loss"]) == 5   # epochs 0-2 ignored; epoch 3 sets the best; epoch 4 is worse -> stop
    assert es.stopped_epoch == 4


def test_reduce_lr_on_plateau_lowers_torch_lr():
    m = _model(lr=0.1)
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=0.02)
    h = _fit(m, [_scripted("val_loss", [1.0] * 5), cb], epochs=5)
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.02])
    assert m.optimizer.learning_rate == pytest.approx(0.02)
    assert all(g["lr"] == pytest.approx(0.02) for g in m.optimizer.torch_optimizer.param_groups)


def test_csv_logger_writes_rows(tmp_path):
    path = tmp_path / "log.csv"
    m = _model()
    h = _fit(m, [CSVLogger(path)], epochs=3, validation_data=(X, Y))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    np.testing.assert_allclose([float(r[3]) for r in rows[1:]], h.history["val_loss"], rtol=1e-6)
    _fit(m, [CSVLogger(path, separator=";", append=True)], epochs=1, validation_data=(X, Y))
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("0;")   # appended, no second header
    _fit(m, [CSVLogger(path)], epochs=2, validation_data=(X, Y), validation_freq=2)
    rows = list(csv.reader(open(path, newline="")))
    assert len(rows) == 3 and rows[1][0] == "0"


def test_model_checkpoint_formats_path_and_saves(tmp_path):
    m = _model()
    pattern = str(tmp_path / "ck" / "w-{epoch:02d}-{val_loss:.2f}.pt")
    _fit(m, [_scripted("val_loss", [0.5, 0.25, 0.75]), ModelCheckpoint(pattern, save_weights_only=True)], epochs=3,
         validation_data=(X, Y))
    names = [os.path.basename(p) for kind, p in m.saved]
    assert names == ["w-01-0.50.pt", "w-02-0.25.pt", "w-03-0.75.pt"]
    assert all(kind == "save_weights" and os.path.exists(p) for kind, p in m.saved)
    m.saved.clear()
    best = ModelCheckpoint(str(tmp_path / "best-{epoch}.keras"), save_best_only=True)
    _fit(m, [_scripted("val_loss", [0.5, 0.25, 0.75, 0.1]), best], epochs=4, validation_data=(X, Y))
    assert [(k, os.path.basename(p)) for k, p in m.saved] == [("save", "best-1.keras"), ("save", "best-2.keras"),
                                                             ("save", "best-4.keras")]
    with pytest.raises(KeyError, match="val_acc"):
        _fit(m, [ModelCheckpoint(str(tmp_path / "{val_acc}.pt"))], epochs=1)


def test_hooks_order_stop_training_and_batch_logs():
    events = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin{epoch}")
        def on_train_batch_end(self, batch, logs=None):
            events.append(f"batch{batch}:{sorted(logs)}")
            if batch == 1:
                self.model.stop_training = True
        def on_test_begin(self, logs=None): events.append("test_begin")
        def on_epoch_end(self, epoch, logs=None): events.append(f"epoch_end{epoch}:{sorted(logs)}")
        def on_train_end(self, logs=None): events.append("train_end")

    m = _model()
    h = m.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[Recorder()], validation_data=(X, Y))
    assert events == ["train_begin", "epoch_begin0", "batch0:['loss', 'mae']", "batch1:['loss', 'mae']",
                      "test_begin", "epoch_end0:['loss', 'mae', 'val_loss', 'val_mae']", "train_end"]
    assert len(h.history["loss"]) == 1


def test_terminate_on_nan_and_bad_callbacks():
    m = _model(lr=1e6)
    x = X * 1e6
    h = m.fit(x, Y, batch_size=8, epochs=5, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(h.history["loss"]) == 1
    with pytest.raises(TypeError, match="Callback instances"):
        m.fit(X, Y, verbose=0, callbacks=[lambda e: None])
