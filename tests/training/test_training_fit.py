import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from _training_fakes import DenseModel, SeqClassifier, TwoInputModel, toy_sequence_data
from rnnstate.training import LambdaCallback, losses, optimizers


def _seed(s=0):
    try:
        from rnnstate.utils import set_random_seed
        set_random_seed(s)
    except ImportError:   # pragma: no cover - utils written elsewhere
        import random
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)


def test_fit_reduces_loss_and_learns_toy_task():
    _seed(0)
    x, y, _ = toy_sequence_data(n=128)
    m = SeqClassifier()
    m.compile(optimizers.Adam(learning_rate=0.02), "categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert list(h.history) == ["loss", "accuracy"] and h.epoch == list(range(8))
    assert h.history["loss"][-1] < 0.7 * h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.8
    assert m.history is h and not m.training   # left in eval() mode
    loss, acc = m.evaluate(x, y, verbose=0)
    assert acc > 0.8
    probs = m.predict(x, batch_size=50, verbose=0)
    assert isinstance(probs, np.ndarray) and probs.shape == (128, 3) and probs.dtype == np.float32
    assert (probs.argmax(-1) == y.argmax(-1)).mean() == pytest.approx(acc)


@pytest.mark.parametrize("loss,y_form", [
    (["categorical_crossentropy", None, None], "list_none"),
    ({"dense": "categorical_crossentropy"}, "dict"),
    ({"dense": "categorical_crossentropy"}, "single"),
    (["categorical_crossentropy", None, None], "only_needed"),
])
def test_outputs_without_loss_need_no_targets(loss, y_form):
    _seed(1)
    x, y, _ = toy_sequence_data(n=64)
    m = SeqClassifier(return_state=True)
    m.compile("adam", loss=loss, metrics=["accuracy"])
    ys = {"list_none": [y, None, None], "dict": {"dense": y}, "single": y, "only_needed": [y]}[y_form]
    h = m.fit(x, ys, epochs=2, batch_size=16, verbose=0, validation_data=(x, ys))
    # Keras 3 naming: metrics of a multi-output model are prefixed by the output name
    assert list(h.history) == ["loss", "dense_accuracy", "val_loss", "val_dense_accuracy"]
    res = m.evaluate(x, ys, verbose=0, return_dict=True)
    assert set(res) == {"loss", "dense_accuracy"}
    out = m.predict(x, verbose=0)
    assert [o.shape for o in out] == [(64, 3), (64, 8), (64, 8)]
    batch = {"list_none": [y[:8], None, None], "dict": {"dense": y[:8]}, "single": y[:8], "only_needed": [y[:8]]}
    assert set(m.train_on_batch(x[:8], batch[y_form], return_dict=True)) == {"loss", "dense_accuracy"}


def test_multi_output_losses_are_logged_per_output_and_weighted():
    _seed(2)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 10, size=(40, 4))
    extra = rng.normal(size=(40, 2))
    y_out, y_aux = rng.normal(size=(40, 1)), rng.normal(size=(40, 2))
    m = TwoInputModel()
    m.compile("sgd", loss={"out": "mse", "aux": "mae"}, loss_weights={"out": 1.0, "aux": 0.5}, metrics={"aux": "mse"})
    h = m.fit({"tokens": tokens, "extra": extra}, {"out": y_out, "aux": y_aux}, epochs=1, batch_size=40, verbose=0,
              shuffle=False)
    assert list(h.history) == ["loss", "out_loss", "aux_loss", "aux_mse"]
    hist = {k: v[0] for k, v in h.history.items()}
    assert hist["loss"] == pytest.approx(hist["out_loss"] + 0.5 * hist["aux_loss"], rel=1e-5)
    # integer tokens stay int64 for the Embedding; float64 features become float32
    assert m.seen_dtypes[0] == (torch.int64, torch.float32)
    values = m.evaluate([tokens, extra], [y_out, y_aux], verbose=0)
    assert len(values) == 4 and m.metrics_names == ["loss", "out_loss", "aux_loss", "aux_mse"]


def test_validation_split_takes_the_tail_before_shuffling():
    x = np.arange(20, dtype="float32").reshape(20, 1)
    y = np.zeros((20, 1), "float32")
    m = DenseModel(n_in=1)
    seen = []
    orig = m._run_graph

    def spy(inputs, training):
        seen.append((training, inputs[0][:, 0].tolist()))
        return orig(inputs, training)

    m._run_graph = spy
    m.compile("sgd", "mse")
    m.fit(x, y, validation_split=0.25, batch_size=4, epochs=1, shuffle=True, verbose=0)
    train_rows = sorted(v for t, vals in seen if t for v in vals)
    val_rows = [v for t, vals in seen if not t for v in vals]
    assert train_rows == list(range(15)) and val_rows == [15.0, 16.0, 17.0, 18.0, 19.0]
    with pytest.raises(ValueError, match="leaves no samples"):
        m.fit(x[:1], y[:1], validation_split=0.5, verbose=0)


def test_dataloader_input_and_sample_weights():
    _seed(3)
    x, y, labels = toy_sequence_data(n=64)
    ds = TensorDataset(torch.tensor(x), torch.tensor(labels), torch.ones(64))   # float64 x cast to float32
    loader = DataLoader(ds, batch_size=16, shuffle=False)
    m = SeqClassifier(logits=True)
    m.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["acc"])
    val_loader = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(labels)), batch_size=32)
    h = m.fit(loader, epochs=2, verbose=0, validation_data=val_loader)
    assert list(h.history) == ["loss", "acc", "val_loss", "val_acc"]
    # unit sample weights give the same loss as none
    full = m.evaluate(x, labels, verbose=0, return_dict=True)
    weighted = m.evaluate(x, labels, sample_weight=np.ones(64), verbose=0, return_dict=True)
    assert weighted["loss"] == pytest.approx(full["loss"], rel=1e-6)
    zero_half = np.r_[np.ones(32), np.zeros(32)]
    half = m.evaluate(x, labels, sample_weight=zero_half, batch_size=64, verbose=0, return_dict=True)["loss"]
    first = m.evaluate(x[:32], labels[:32], verbose=0, return_dict=True)["loss"]
    assert half == pytest.approx(0.5 * first, rel=1e-5)   # Keras: divided by the number of samples
    preds = m.predict(DataLoader(TensorDataset(torch.tensor(x)), batch_size=10), verbose=0)
    assert preds.shape == (64, 3)
    with pytest.raises(ValueError, match="y and sample_weight must come from its batches"):
        m.fit(loader, labels, verbose=0)


def test_generator_with_steps_per_epoch():
    x, y, _ = toy_sequence_data(n=32)

    def gen():
        while True:
            for i in range(0, 32, 8):
                yield x[i:i + 8], y[i:i + 8]

    m = SeqClassifier()
    m.compile("adam", "categorical_crossentropy")
    calls = []
    cb = LambdaCallback(on_train_batch_end=lambda b, logs: calls.append((b, sorted(logs))))
    h = m.fit(gen(), steps_per_epoch=3, epochs=2, verbose=0, callbacks=[cb])
    assert len(h.history["loss"]) == 2 and calls == [(b, ["loss"]) for b in (0, 1, 2)] * 2


def test_class_weight_and_train_test_on_batch():
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.array([0, 1] * 4, "float32").reshape(8, 1)
    m = DenseModel(n_in=4, activation="sigmoid")
    m.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    plain = m.test_on_batch(x, y, return_dict=True)
    weighted = m.test_on_batch(x, y, sample_weight=np.where(y[:, 0] == 1, 3.0, 1.0))
    out = m._run_graph([torch.tensor(x)], False)[0].detach()
    per = -(torch.tensor(y) * out.log() + (1 - torch.tensor(y)) * (1 - out).log())[:, 0]
    assert weighted[0] == pytest.approx(float((per * torch.tensor(np.where(y[:, 0] == 1, 3.0, 1.0))).mean()),
                                        rel=1e-5)
    assert plain["loss"] == pytest.approx(float(per.mean()), rel=1e-5) and "accuracy" in plain
    before = [p.detach().clone() for p in m.parameters()]
    logs = m.train_on_batch(x, y, class_weight={0: 1.0, 1: 3.0}, return_dict=True)
    assert logs["loss"] == pytest.approx(weighted[0], rel=1e-5)   # loss before the update
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))
    assert m.predict_on_batch(x).shape == (8, 1)


def test_input_dtypes():
    m = DenseModel(n_in=3)
    m.compile("sgd", "mse")
    xb = np.array([[True, False, True]] * 4)
    xi = np.arange(12, dtype="int32").reshape(4, 3)
    for xx in (xb, xi, xi.astype("float64"), torch.tensor(xi), xi.tolist()):
        m.train_on_batch(xx, np.zeros((4, 1)))
    assert m.predict(xi, verbose=0).dtype == np.float32


def test_initial_epoch_batch_shuffle_and_steps_per_epoch():
    x, y, _ = toy_sequence_data(n=40)
    m = SeqClassifier()
    m.compile("adam", "categorical_crossentropy")
    h = m.fit(x, y, epochs=3, initial_epoch=1, batch_size=16, shuffle="batch", verbose=0)
    assert h.epoch == [1, 2] and len(h.history["loss"]) == 2
    seen = []
    orig = m._run_graph
    m._run_graph = lambda inputs, training: seen.append(inputs[0].shape[0]) or orig(inputs, training)
    # Keras 3 semantics: passes continue across epochs; an epoch ends early when its pass runs out
    h = m.fit(x, y, epochs=2, batch_size=16, steps_per_epoch=4, shuffle=False, verbose=0)
    assert seen == [16, 16, 8, 16, 16, 8] and len(h.history["loss"]) == 2
    seen.clear()
    m.fit(x, y, epochs=3, batch_size=16, steps_per_epoch=2, shuffle=False, verbose=0)
    assert seen == [16, 16, 8, 16, 16]
    seen.clear()
    m.predict(x, batch_size=16, steps=10, verbose=0)
    assert seen == [16, 16, 8]                       # predict stops after one pass


def test_seeded_fits_are_identical():
    x, y, _ = toy_sequence_data(n=48)

    def run():
        _seed(123)
        m = SeqClassifier()
        m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
        return m.fit(x, y, epochs=2, batch_size=8, shuffle=True, verbose=0).history

    assert run() == run()


def test_verbose_output(capsys):
    x, y, _ = toy_sequence_data(n=16)
    m = SeqClassifier()
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=2, batch_size=8, verbose=2, validation_data=(x, y))
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert out.count("2/2 - ") == 2 and "val_accuracy:" in out
    m.fit(x, y, epochs=1, batch_size=8, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "loss:" in out and "2/2" in out   # tqdm bar with the metrics
