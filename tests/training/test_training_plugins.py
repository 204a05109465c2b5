"""torch's ecosystem in compile/fit: torch loss modules (oracle: the module called by hand as torch
defines it), torchmetrics metrics (oracle: the value computed directly), Keras metric names (oracle:
keras.metrics on the same inputs), torch.optim.lr_scheduler objects (oracle: the same scheduler
stepped on a bare torch optimizer), and metric objects rnnstate cannot drive (must raise)."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import rnnstate  # noqa: E402
from rnnstate import layers as L  # noqa: E402
from rnnstate.training import LearningRateScheduler, TorchLRScheduler, metrics  # noqa: E402
from rnnstate.utils import set_random_seed  # noqa: E402

keras = pytest.importorskip("keras")
torchmetrics = pytest.importorskip("torchmetrics")

B, T, FEAT, C = 16, 4, 3, 4
RNG = np.random.default_rng(5)
X = RNG.standard_normal((B, T, FEAT)).astype("float32")
LABELS = RNG.integers(0, C, B)


def _model(seq=False, units=C, activation=None):
    set_random_seed(0)
    inp = rnnstate.Input((T, FEAT))
    h = L.LSTM(5, return_sequences=seq)(inp)
    return rnnstate.Model(inp, L.Dense(units, activation=activation)(h))


def _out(m, x=X):
    with torch.no_grad():
        return m(x)


# ---- torch loss modules --------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["int", "float_labels", "column", "one_hot"])
def test_cross_entropy_module_is_called_input_then_target(target):
    m = _model()
    m.compile("sgd", loss=torch.nn.CrossEntropyLoss())
    y = {"int": LABELS, "float_labels": LABELS.astype("float32"), "column": LABELS[:, None],
         "one_hot": np.eye(C, dtype="float32")[LABELS]}[target]
    expected = F.cross_entropy(_out(m), torch.as_tensor(LABELS))
    assert m.evaluate(X, y, verbose=0) == pytest.approx(float(expected), rel=1e-6)


def test_cross_entropy_on_sequences_moves_the_class_axis_and_takes_sample_weights():
    m = _model(seq=True)
    m.compile("sgd", loss=torch.nn.CrossEntropyLoss())
    y = RNG.integers(0, C, (B, T))
    logits = _out(m)                                   # (B, T, C)
    per = F.cross_entropy(logits.reshape(-1, C), torch.as_tensor(y).reshape(-1), reduction="none").reshape(B, T)
    assert m.evaluate(X, y, verbose=0) == pytest.approx(float(per.mean()), rel=1e-6)
    sw = RNG.uniform(size=B).astype("float32")
    weighted = (per * torch.as_tensor(sw)[:, None]).sum() / per.numel()   # Keras' sum_over_batch_size
    assert m.evaluate(X, y, sample_weight=sw, verbose=0) == pytest.approx(float(weighted), rel=1e-6)


def test_mse_module_does_not_broadcast_a_rank_one_target_and_trains():
    m = _model(units=1)
    m.compile(rnnstate.training.optimizers.SGD(0.1), loss=torch.nn.MSELoss(), metrics=[torch.nn.L1Loss()])
    y = RNG.standard_normal(B).astype("float32")          # (B,) for a (B, 1) output
    pred = _out(m)[:, 0]
    logs = m.evaluate(X, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(float(F.mse_loss(pred, torch.as_tensor(y))), rel=1e-6)
    assert logs["l1_loss"] == pytest.approx(float(F.l1_loss(pred, torch.as_tensor(y))), rel=1e-6)
    h = m.fit(X, y, epochs=5, batch_size=B, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]


# ---- torchmetrics --------------------------------------------------------------------------------
def test_torchmetrics_metric_is_driven_with_update_preds_target():
    from torchmetrics.classification import MulticlassAccuracy
    m = _model(activation="softmax")
    user_metric = MulticlassAccuracy(num_classes=C, average="micro")
    m.compile("sgd", loss="sparse_categorical_crossentropy", metrics=[user_metric])
    logs = m.evaluate(X, LABELS, batch_size=5, verbose=0, return_dict=True)   # several batches
    expected = float((_out(m).argmax(-1).numpy() == LABELS).mean())
    assert logs["multiclass_accuracy"] == pytest.approx(expected, abs=1e-7)
    assert user_metric.update_count == 0   # compile used a copy, as for any metric object


def test_torchmetrics_on_sequence_outputs_flattens_time_steps():
    from torchmetrics.classification import MulticlassAccuracy
    m = _model(seq=True, activation="softmax")
    y = RNG.integers(0, C, (B, T))
    m.compile("sgd", loss="sparse_categorical_crossentropy", metrics=[MulticlassAccuracy(num_classes=C,
                                                                                       average="micro")])
    logs = m.evaluate(X, y, verbose=0, return_dict=True)
    assert logs["multiclass_accuracy"] == pytest.approx(float((_out(m).argmax(-1).numpy() == y).mean()), abs=1e-7)


def test_torchmetrics_with_several_values_or_sample_weights_raise():
    from torchmetrics.classification import MulticlassAccuracy
    m = _model(activation="softmax")
    m.compile("sgd", loss="sparse_categorical_crossentropy", metrics=[MulticlassAccuracy(num_classes=C, average=None)])
    with pytest.raises(ValueError, match=r"computed a value of shape \(4,\)"):
        m.evaluate(X, LABELS, verbose=0)
    m.compile("sgd", loss="sparse_categorical_crossentropy",
              weighted_metrics=[MulticlassAccuracy(num_classes=C)])
    with pytest.raises(ValueError, match="takes no sample weights"):
        m.evaluate(X, LABELS, sample_weight=np.ones(B), verbose=0)


class _KerasLike:
    """A metric object of an unknown kind: update_state/result (not an rnnstate Metric)."""

    def update_state(self, y_true, y_pred):
        pass

    def result(self):
        return 0.0

    def __call__(self, y_true, y_pred):
        return 0.0


@pytest.mark.parametrize("obj", [torch.nn.Linear(2, 2), _KerasLike(), 3, "keras.metrics.Hinge"])
def test_metric_objects_rnnstate_cannot_drive_raise(obj):
    if obj == "keras.metrics.Hinge":
        obj = keras.metrics.Hinge()
    with pytest.raises(ValueError, match="metric|Metric"):
        metrics.get(obj)


# ---- Keras metric names, against keras.metrics -----------------------------------------------------
@pytest.mark.parametrize("name,keras_cls,kind", [
    ("auc", keras.metrics.AUC, "binary"), ("precision", keras.metrics.Precision, "binary"),
    ("recall", keras.metrics.Recall, "binary"), ("auc", keras.metrics.AUC, "multi"),
    ("precision", keras.metrics.Precision, "multi"),
    ("top_k_categorical_accuracy", keras.metrics.TopKCategoricalAccuracy, "multi"),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_keras_metric_names_match_keras(name, keras_cls, kind, weighted):
    n, k = 23, 8
    if kind == "binary":
        yt = RNG.integers(0, 2, (n, 1)).astype("float32")
        yp = RNG.uniform(size=(n, 1)).astype("float32")
    else:
        yt = np.eye(k, dtype="float32")[RNG.integers(0, k, n)]
        yp = RNG.uniform(size=(n, k)).astype("float32")
    sw = RNG.uniform(size=n).astype("float32") if weighted else None
    ours, theirs = metrics.get(name), keras_cls()
    assert ours.name == name and ours.direction == "up"
    for sl in (slice(0, 9), slice(9, n)):
        w = None if sw is None else sw[sl]
        ours.update_state(torch.tensor(yt[sl]), torch.tensor(yp[sl]), None if w is None else torch.tensor(w))
        theirs.update_state(yt[sl], yp[sl], sample_weight=w)
    assert ours.result() == pytest.approx(float(theirs.result()), abs=1e-6)
    converted = metrics.get(keras_cls())       # a keras.metrics object becomes rnnstate's own
    assert type(converted) is type(ours)


def test_auc_in_compile_reports_keras_value():
    m = _model(units=1, activation="sigmoid")
    y = RNG.integers(0, 2, (B, 1)).astype("float32")
    m.compile("sgd", loss="binary_crossentropy", metrics=["auc", keras.metrics.Precision(thresholds=0.4, name="p40")])
    logs = m.evaluate(X, y, batch_size=5, verbose=0, return_dict=True)
    ref_auc, ref_p = keras.metrics.AUC(), keras.metrics.Precision(thresholds=0.4)
    ref_auc.update_state(y, _out(m).numpy())
    ref_p.update_state(y, _out(m).numpy())
    assert logs["auc"] == pytest.approx(float(ref_auc.result()), abs=1e-6)
    assert logs["p40"] == pytest.approx(float(ref_p.result()), abs=1e-6)


# ---- learning-rate schedules ---------------------------------------------------------------------
def _reference_lrs(make_sched, steps):
    """The learning rates a torch scheduler gives on a bare optimizer after each of `steps` steps."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched, out = make_sched(opt), []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_torch_epoch_scheduler_as_callback():
    m = _model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.compile(opt, loss=torch.nn.CrossEntropyLoss())
    h = m.fit(X, LABELS, epochs=3, batch_size=8, verbose=0,
              callbacks=[torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)])
    expected = _reference_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5), 3)
    assert h.history["learning_rate"] == pytest.approx(expected)


def test_torch_batch_scheduler_steps_every_batch():
    m = _model()
    m.compile(rnnstate.training.optimizers.SGD(0.1), loss=torch.nn.CrossEntropyLoss())
    make = lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=6)  # noqa: E731
    cb = TorchLRScheduler(make(m.optimizer.torch_optimizer))
    assert cb.step_every == "batch"
    h = m.fit(X, LABELS, epochs=3, batch_size=8, verbose=0, callbacks=[cb])   # 2 batches per epoch
    expected = _reference_lrs(make, 6)
    assert h.history["learning_rate"] == pytest.approx([expected[1], expected[3], expected[5]])


def test_torch_plateau_scheduler_and_wrong_optimizer():
    m = _model()
    m.compile(rnnstate.training.optimizers.SGD(0.0), loss=torch.nn.CrossEntropyLoss())  # lr 0: loss never improves
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(m.optimizer.torch_optimizer, factor=0.5, patience=0)
    m.optimizer.torch_optimizer.param_groups[0]["lr"] = 0.0
    h = m.fit(X, LABELS, epochs=2, batch_size=B, verbose=0, callbacks=[plateau])
    assert h.history["learning_rate"] == [0.0, 0.0]   # 0 * factor: the scheduler ran on the monitored loss
    assert plateau.num_bad_epochs == 0 and plateau.last_epoch == 2
    other = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="different optimizer"):
        m.fit(X, LABELS, epochs=1, verbose=0, callbacks=[torch.optim.lr_scheduler.StepLR(other, 1)])


def test_keras_learning_rate_scheduler_one_and_two_argument_schedules():
    m = _model()
    m.compile(rnnstate.training.optimizers.SGD(0.1), loss=torch.nn.CrossEntropyLoss())
    h = m.fit(X, LABELS, epochs=3, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    h = m.fit(X, LABELS, epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert h.history["learning_rate"] == pytest.approx([0.1 / 6, 0.1 / 12])
